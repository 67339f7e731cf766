"""What a finished run leaves in its output directory: the adapter (for full tuning: every weight, as its adapter
file), ``run.json`` (how to rebuild it: model, format, tasks and labels, the resolved method config, arguments) and
``metrics.json``. Runs of full tuning written before it became a method hold a plain checkpoint under ``model/``
(``"saves_adapter": false``); they still load.

With ``--eval-every`` the directory holds the weights of the best validation score, and ``last/`` (the same files,
no ``metrics.json``) those of the last step; ``adalink eval --adapter <run>/last`` scores them. ``config.yaml``
(:mod:`.config_file`) is written when the run starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import GenerationData, TextClassificationData, VQAData
from ..io import write_json_atomic
from ..peft_model import PeftModel
from ..runs.reading import RUN_FILE
from ..tasks.formats import ClassificationFormat, TextToTextFormat
from ..tasks.sft import SFTFormat
from .args import TrainArgs
from .optimizer import head_parameter_ids

__all__ = ["METRICS_FILE", "RUN_FILE", "run_metrics", "save_outputs"]

METRICS_FILE = "metrics.json"


def run_metrics(
    args: TrainArgs,
    datasets: Sequence[TextClassificationData | VQAData | GenerationData],
    scores: dict[str, float],
    model: torch.nn.Module,
    fmt: ClassificationFormat | TextToTextFormat | SFTFormat,
    *,
    tokens: int,
    seconds: float,
    history: list[float],
) -> dict[str, Any]:
    """The ``metrics.json`` document: test scores, parameter counts (the new head apart), cost and losses."""
    params = {id(p): p for p in model.parameters()}.values()
    heads = head_parameter_ids(model, fmt)
    trainable = [p for p in params if p.requires_grad]
    return {
        "score": sum(scores.values()) / len(scores),
        "metric": getattr(fmt, "metric", "exact_match" if fmt.name == "text2text" else "accuracy"),
        "per_task": scores,
        "majority_baseline": {
            d.name: d.majority_baseline(split="test", max_examples=args.run.max_eval) for d in datasets
        },
        "trainable_params": sum(p.numel() for p in trainable if id(p) not in heads),
        "head_params": sum(p.numel() for p in trainable if id(p) in heads),
        "total_params": sum(p.numel() for p in params),
        "train_seconds": round(seconds, 3),
        "train_tokens": tokens,
        "train_tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        "steps": len(history),  # --max-steps, or fewer when --early-stopping-patience stopped the run
        "initial_loss": _mean(history[:10]),  # mean of the first 10 steps
        "final_loss": _mean(history[-10:]),  # mean of the last 10 steps
        "losses": history,  # the mean training loss of each step (examples/sft_own_prompts.py plots them)
        "model": args.base.model,
        "method": args.tuning.method,
        "method_config": model.peft_config.to_dict() if isinstance(model, PeftModel) else None,
        "tasks": [d.name for d in datasets],
        "format": fmt.name,
    }


def save_outputs(
    out: Path,
    args: TrainArgs,
    model_path: str,
    fmt: ClassificationFormat | TextToTextFormat | SFTFormat,
    model: PeftModel,
    metrics: dict[str, Any] | None,
) -> None:
    """Write the adapter, ``run.json`` and ``metrics.json`` (unless ``metrics`` is None) into ``out``;
    ``metrics.json`` comes last, so its presence means the rest is complete."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    run = {
        "model": args.base.model,
        "model_path": model_path,
        "format": fmt.name,
        "tasks": [{"name": t.name, "label_names": list(t.label_names)} for t in fmt.tasks],
        "method": args.tuning.method,
        "method_config": model.peft_config.to_dict(),  # every field, the method's defaults resolved
        "seed": args.run.seed,
        "max_length": args.data.max_length,
        # where the tasks' data came from: the user's files (absolute paths), or the packaged tasks named in "tasks"
        "data": {
            k: str(Path(v).resolve())
            for k, v in (("train_file", args.data.train_file), ("eval_file", args.data.eval_file))
            if v
        }
        or "packaged",
        "args": args.options(),  # flat, as runs have always written it
    }
    write_json_atomic(out / RUN_FILE, run)
    if metrics is not None:
        write_json_atomic(out / METRICS_FILE, metrics)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


STALL_STEPS = 20  # a run shorter than this is too short to judge
STALL_FRACTION = 0.02  # the mean loss of the last 10 steps within 2 % of the first 10: it has not moved


def stalled_loss_warning(history: Sequence[float], lr: float, max_steps: int) -> str | None:
    """A one-line warning when the training loss has not moved, else None.

    "Not moved": after at least 20 steps, the mean of the last 10 losses is within 2 % of the mean of the first 10 —
    the sign of a rate too low for the method or too few steps, which the test score alone cannot tell from a broken
    setup.
    """
    if len(history) < STALL_STEPS:
        return None
    first, last = _mean(list(history[:10])), _mean(list(history[-10:]))
    if first is None or last is None or first <= 0 or (first - last) / first >= STALL_FRACTION:
        return None
    return (
        f"warning: the training loss has not moved ({first:.4f} over the first 10 steps, {last:.4f} over the last 10 "
        f"of {len(history)}); the rate ({lr:g}) may be too low for this method or --max-steps {max_steps} too few."
    )
