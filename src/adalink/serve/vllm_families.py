"""What vLLM serves exactly, per architecture of the base: the exported embedding LoRA (the measured matrix,
:mod:`.vllm_matrix`) and AdaLink's output link, a LoRA on ``lm_head`` (:data:`VLLM_OUTPUT_LINK_EXACT`). The checks
:func:`adalink.serve.vllm_engine.export_for_vllm` runs before it exports anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import AdalinkError
from .vllm_matrix import VERDICTS, VLLM_VERSION

__all__ = [
    "FOLD_INSTEAD",
    "VLLM_OUTPUT_LINK_EXACT",
    "VllmError",
    "VllmUnsupportedFamilyError",
    "check_family",
    "check_output_links",
    "family_refusal",
]

# where vLLM 0.32 serves AdaLink's output link (a LoRA on lm_head) exactly, tied and untied heads: measured by
# benchmarks/vllm_output_link.py (benchmarks/results/vllm/output_link.json, docs/vllm.md)
VLLM_OUTPUT_LINK_EXACT = frozenset({"LlamaForCausalLM", "Phi3ForCausalLM", "Qwen3ForCausalLM"})

# what every refusal of vLLM's LoRA serving names instead
FOLD_INSTEAD = (
    "`adalink serve --engine vllm --fold` (each task folded into a plain checkpoint, served by a vLLM engine of its "
    "own behind one endpoint: exact on every architecture vLLM runs, one engine's memory per task), or `adalink serve "
    "--engine adalink` (every architecture, every task in one batch); `adalink merge --adapter RUN --task TASK --out "
    "DIR` writes one folded checkpoint for vLLM by hand."
)


class VllmError(AdalinkError, ValueError):
    """Runs that one vLLM server cannot serve as they are; the message says why and what to use instead."""


class VllmUnsupportedFamilyError(VllmError):
    """vLLM refuses, ignores or changes an embedding LoRA on this architecture (measured: :mod:`.vllm_matrix`)."""


def _architecture(base: str) -> str:
    config_file = Path(base) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return str((config.get("architectures") or [config.get("model_type", "unknown")])[0])


def check_family(base: str) -> None:
    """Refuse a base whose architecture vLLM does not serve an embedding LoRA for exactly (the matrix)."""
    architecture = _architecture(base)
    if VERDICTS.get(architecture, ("unmeasured", ""))[0] == "unmeasured":  # the probe after start-up still catches
        print(  # an adapter vLLM ignores
            f"adalink: warning: vLLM's support for {architecture} is not measured (benchmarks/vllm_matrix.py); "
            "the probe after start-up refuses an adapter vLLM ignores, not one it serves wrongly.",
            file=sys.stderr,
        )
    refusal = family_refusal(base)
    if refusal is not None:
        raise VllmUnsupportedFamilyError(refusal)


def family_refusal(base: str) -> str | None:
    """Why vLLM does not serve an embedding LoRA on ``base``'s architecture exactly, and what works instead; None
    where the matrix measured it exact, or did not measure it."""
    architecture = _architecture(base)
    verdict, said = VERDICTS.get(architecture, ("unmeasured", ""))
    if verdict in ("exact", "unmeasured"):
        return None
    what = {
        "refused": f"refuses the exported embedding LoRA ({said})",
        "ignored": "loads the exported embedding LoRA and ignores it: every task would answer the base's output",
        "differs": f"answers differently from transformers + peft with the exported embedding LoRA ({said})",
        "base not served": f"could not start this base model where it was measured ({said})",
    }[verdict]
    exact = sorted(arch for arch, (v, _) in VERDICTS.items() if v == "exact")
    return (
        f"The base model {base} is a {architecture}: vLLM {VLLM_VERSION} {what}, measured by "
        f"benchmarks/vllm_matrix.py (docs/vllm.md lists every family; exact on vLLM: {', '.join(exact)}). What works "
        f"instead: {FOLD_INSTEAD}"
    )


def check_output_links(runs: list[tuple[Path, dict[str, Any]]], base: str) -> None:
    """Refuse runs with an output link unless vLLM serves it exactly on the base's architecture (measured)."""
    linked = [str(d) for d, run in runs if "output" in (run.get("method_config") or {}).get("boundaries", [])]
    architecture = _architecture(base)
    if linked and architecture not in VLLM_OUTPUT_LINK_EXACT:
        raise VllmUnsupportedFamilyError(
            f"{', '.join(linked)}: AdaLink's output link (boundaries with 'output') exports as a LoRA on lm_head, and "
            f"vLLM {VLLM_VERSION} serving that exactly is measured only for {sorted(VLLM_OUTPUT_LINK_EXACT)} "
            f"(benchmarks/vllm_output_link.py), not for the base's {architecture}. What works instead: {FOLD_INSTEAD}"
        )
