"""Read and load a finished run directory: what ``adalink eval/predict/merge/export``, ``adalink serve`` and the bench
start from.

A run directory holds ``run.json`` (:data:`RUN_FILE`: model, format, tasks and labels, the resolved method config,
arguments), ``metrics.json`` and the adapter (``adapter_config.json`` + ``adapter_model.safetensors``; full tuning's
holds every weight). Full-tuning runs from before full tuning was a method hold a whole model under ``model/``; they
load as a :class:`~adalink.PeftModel` too. ``adalink train`` writes it (:mod:`adalink.training.outputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import DEFAULT_MAX_NEW_TOKENS, GenerationData, TextClassificationData, VQAData
from ..methods.base import METHOD_CONFIGS
from ..models.precision import BaseLoading
from ..peft_model import PeftModel
from ..tasks.evaluation import evaluate
from ..tasks.formats import ClassificationFormat, TaskInfo, TextToTextFormat
from ..tasks.sft import SFTFormat
from .base_model import RUN_FILE, load_run_model, read_run
from .loading import setup_model

__all__ = ["RUN_FILE", "LoadedRun", "load_run", "read_run", "run_shares_base"]


@dataclass
class LoadedRun:
    directory: Path
    run: dict[str, Any]
    model: PeftModel
    fmt: ClassificationFormat | TextToTextFormat | SFTFormat
    tokenizer: Any
    base_path: str  # the base checkpoint's directory

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.fmt.tasks]

    def evaluate(
        self,
        datasets: Sequence[TextClassificationData | VQAData | GenerationData],
        *,
        split: str,
        max_examples: int | None,
        rouge_l: dict[str, float] | None = None,
        exact_match: dict[str, float] | None = None,
        examples_out: list[dict[str, Any]] | None = None,
    ) -> dict[str, float]:
        """The score per task on ``split`` (first ``max_examples``), at the run's own ``max_length``; ``rouge_l`` /
        ``exact_match`` / ``examples_out``: as in :func:`~adalink.tasks.evaluation.evaluate`."""
        return evaluate(
            self.model,
            self.fmt,
            self.tokenizer,
            datasets,
            split=split,
            max_examples=max_examples,
            max_length=self.run["max_length"],
            rouge_l=rouge_l,
            exact_match=exact_match,
            examples_out=examples_out,
        )

    @property
    def max_new_tokens(self) -> int:
        """sft: the longest generation of ``adalink predict`` (the run's ``--max-new-tokens``, else the default)."""
        return self.run.get("args", {}).get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS


def run_shares_base(run: dict[str, Any]) -> bool:
    """Whether a run's adapter leaves the base weights as they are (so it can share a served base model): every
    method's but full tuning's (``MethodConfig.shares_base``); a run from before full tuning was a method says
    ``"saves_adapter": false``."""
    cls = METHOD_CONFIGS.get(run.get("method", ""))
    return run.get("saves_adapter", True) and (cls is None or cls.shares_base)


def load_run(
    directory: str | Path,
    *,
    model: str | None = None,
    ignore_fingerprint: bool = False,
    loading: BaseLoading | None = None,
) -> LoadedRun:
    """Rebuild the base model of a run (:func:`~.base_model.build_run_base`) and attach its adapter (refused on a
    different base model), with its task format and tokenizer; ``loading``: how to hold the base (default: as the run
    trained on it, without checkpointing)."""
    directory = Path(directory)
    run = read_run(directory)
    tasks = [TaskInfo(t["name"], tuple(t["label_names"])) for t in run["tasks"]]
    setup = setup_model(model or run["model"], run["format"], tasks)
    loaded = load_run_model(directory, run, model=model, ignore_fingerprint=ignore_fingerprint, loading=loading)
    return LoadedRun(directory, run, loaded.model, setup.fmt, loaded.tokenizer or setup.tokenizer, setup.path)
