"""The projection of ``benchmarks/memory.py``'s measured rows to larger bases (1B, 7B, 13B), and its section of
MEMORY.md: ``memory = P * w + N * s + T * V * c + T * L * d * a`` (the section itself says what each term is)."""

from __future__ import annotations

from typing import Any

SHAPE = {"params": 134_515_008, "layers": 30, "hidden": 576, "vocab": 49_152}  # SmolLM2-135M, the measured base
RANK = 8
# Bases the projection is made for (public configs): parameters, layers, hidden width, vocabulary.
TARGETS = {
    "1B (TinyLlama-1.1B)": {"params": 1.10e9, "layers": 22, "hidden": 2048, "vocab": 32_000},
    "7B (Llama-2-7B)": {"params": 6.74e9, "layers": 32, "hidden": 4096, "vocab": 32_000},
    "13B (Llama-2-13B)": {"params": 13.0e9, "layers": 40, "hidden": 5120, "vocab": 32_000},
}
GIB = 1024**3


def state_bytes_per_trainable(method: str) -> int:
    """Bytes per trainable parameter beside the base weights: its gradient and AdamW's two moments (float32), plus
    the float32 parameter itself unless it is a base weight (full tuning) already counted in the weights."""
    return 12 if method == "full" else 16


def trainable_at(method: str, shape: dict[str, float]) -> float:
    if method == "full":
        return shape["params"]
    if method == "lora":  # q and v of every layer: (in + out) * r each, as square d x d layers (GQA has fewer)
        return shape["layers"] * 2 * 2 * shape["hidden"] * RANK
    return 2 * shape["hidden"] * RANK  # AdaLink: W_down and W_up at the embeddings


def projection(result: dict[str, Any], logits: dict[str, int]) -> dict[str, float]:
    """GiB projected for each target base from one measured row and the measured memory of the output layer and loss
    (``logits``, by dtype): ``P * w + N * s + T * V * c + T * L * d * a`` (see MEMORY.md)."""
    method, dtype = result["config"]["method"], result["config"]["dtype"]
    tokens = result["batch"][0] * result["batch"][1]
    w = result["weights_bytes"] / SHAPE["params"]
    state = result["trainable_params"] * state_bytes_per_trainable(method)
    head = logits.get(dtype, logits.get("float32", 0))  # the loss runs in float32 whatever the base's dtype
    c = head / (tokens * SHAPE["vocab"])
    rest = max(result["peak_bytes"] - result["weights_bytes"] - state - head, 0)
    a = rest / (tokens * SHAPE["layers"] * SHAPE["hidden"])
    out = {"w": w, "c": c, "a": a}
    for target, shape in TARGETS.items():
        total = shape["params"] * w + trainable_at(method, shape) * state_bytes_per_trainable(method)
        total += tokens * (shape["vocab"] * c + shape["layers"] * shape["hidden"] * a)
        out[target] = total / GIB
    return out


def fits(gib: float, capacity: int) -> str:
    return "yes" if gib + 1.0 <= capacity else "no"  # 1 GiB for the CUDA context and allocator slack


def projection_section(ok: list[dict[str, Any]], logits: dict[str, int]) -> list[str]:
    measured = ", ".join(f"{d} {b / GIB:.2f} GiB" for d, b in logits.items()) or "not measured (c = 0)"
    lines = [
        "### Projection to larger bases (projected from the rows above, not measured)",
        "",
        "From each measured row: `memory = P * w + N * s + T * V * c + T * L * d * a` for a base of `P` parameters, "
        "`L` layers of width `d` and a vocabulary of `V`, at `T` = 2048 tokens per step (8 x 256), where",
        "",
        "- `w`: the row's weight bytes per base parameter (`weights / 134.5M`);",
        "- `N * s`: the method's trainable parameters at that size (AdaLink `2 d r`; LoRA on q, v `4 L d r`; full "
        "`P`) times 16 bytes (float32 weight, gradient, two AdamW moments; 12 for full tuning, whose weights are in "
        "`P * w`);",
        f"- `c`: the output layer and loss measured alone (logits, their float32 copy, log-softmax and gradients; "
        f"{measured} at T x 49,152), per token per vocabulary entry;",
        "- `a`: what is left of the peak (minus weights, state and the loss) per token per unit of `L * d`: the "
        "activations the blocks keep for the backward pass.",
        "",
        "It leaves out: the CUDA context and allocator fragmentation (a 1 GiB margin is added for the fit columns); "
        "that GPU kernels keep other intermediates than the CPU kernels measured here, and that the number of heads "
        "and the FFN width change the per-layer activations' mix (`a` scales with `L * d` only); the int8 rows' `w` "
        "includes SmolLM2's float32 embeddings, 21% of its parameters (2% of a 7B base), so it overstates a 7B "
        "base's int8 weights (about 1.1 B/param, not 1.6); sequence lengths other than 256; optimisers other than "
        "AdamW. The sum assumes every term peaks at once, an upper bound: full tuning's gradients, optimiser state "
        "and loss do not (hence its `a` of 0 with checkpointing), and its verdict is set by `16 P` bytes alone.",
        "",
        "| config | w (B/param) | c | a | "
        + " | ".join(f"{t} GiB" for t in TARGETS)
        + " | 7B fits 24 GiB | 7B fits 80 GiB |",
        "|---|---:|---:|---:|" + "---:|" * len(TARGETS) + "---|---|",
    ]
    verdicts: dict[str, dict[int, list[str]]] = {}
    for r in ok:
        p = projection(r, logits)
        seven = p["7B (Llama-2-7B)"]
        for capacity in (24, 80):
            if fits(seven, capacity) == "yes":
                verdicts.setdefault(r["config"]["method"], {}).setdefault(capacity, []).append(r["name"])
        cells = " | ".join(f"{p[t]:.1f}" for t in TARGETS)
        lines.append(
            f"| {r['name']} | {p['w']:.2f} | {p['c']:.1f} | {p['a']:.1f} | {cells} | {fits(seven, 24)} | "
            f"{fits(seven, 80)} |"
        )
    lines += ["", "**A 7B base (projected, not measured), batch 8 x 256:**", ""]
    for method in ("adalink", "lora", "full"):
        found = verdicts.get(method, {})
        said = [
            f"in {c} GiB: {', '.join(found[c]) if c in found else 'none of the measured set-ups'}" for c in (24, 80)
        ]
        lines.append(f"- {method}: {'; '.join(said)}.")
    return lines
