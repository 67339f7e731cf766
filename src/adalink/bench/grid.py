"""The bench grid: one :class:`BenchRun` per (model, task, method, learning rate, seed), its file, and the plan.

The plan follows the survey's protocol (§11.1): for each (model, task, method) the first seed trains at every
learning rate of the sweep; the rate with the best validation score is then re-run on the remaining seeds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "RUN_FILLED_FIELDS",
    "BenchRun",
    "best_lr",
    "default_method_config",
    "lr_slug",
    "read_document",
    "read_result",
    "recipe",
    "resolve_lr",
    "result_path",
]

# config fields that each run fills in from its own tasks and heads: not part of the method's recipe
RUN_FILLED_FIELDS = ("tasks", "modules_to_save", "roles")


def recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a method config's ``to_dict()`` that describe the method, not the run's tasks and heads."""
    return {key: value for key, value in config.items() if key not in RUN_FILLED_FIELDS}


def default_method_config(method: str) -> dict[str, Any]:
    """The recipe a bench run of ``method`` trains with: its config's own defaults (the bench sets none)."""
    from ..training.methods import method_class

    return recipe(method_class(method)().to_dict())


@dataclass(frozen=True)
class BenchRun:
    """Everything that decides one run's outcome (its file name and hash are derived from it)."""

    profile: str  # profile name (quick, paper)
    model: str  # alias or local checkpoint directory
    task: str  # packaged task name
    method: str  # registered method name, or full
    lr: float  # peak learning rate
    head_lr: float | None  # peak learning rate of the new classification head (None = lr)
    seed: int  # seed of the head init, data order and dropout
    batch_size: int  # global batch per optimiser step
    grad_accum: int  # micro-batches per step (batch_size / microbatch)
    max_length: int  # max input tokens
    max_steps: int | None  # fixed steps, or None = epochs over the train split (at least min_steps)
    epochs: float  # epochs when max_steps is None
    min_steps: int  # lower bound on steps when max_steps is None
    max_eval: int | None  # first N validation/test examples per task
    validate: bool  # also score the validation split (needed to pick the learning rate)
    infer_batches: int  # timed inference batches
    infer_batch_size: int  # examples per timed inference batch
    infer_rounds: int  # alternating timing rounds
    generic_texts: int  # texts of the forgetting probe
    threads: int  # torch threads of the worker (0 = torch's default)
    # the method's config without the run's tasks and heads (default_method_config); None in files written before
    # runs recorded it
    method_config: dict[str, Any] | None = None

    @property
    def model_slug(self) -> str:
        name = Path(self.model).name if os.sep in self.model else self.model
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"

    @property
    def run_id(self) -> str:
        name = f"{self.profile}__{self.model_slug}__{self.task}__{self.method}__lr{lr_slug(self.lr)}__seed{self.seed}"
        return name if self.method_config is None else f"{name}__cfg{self.config_tag}"

    @property
    def config_tag(self) -> str:
        """8 hex digits of the method config's hash: runs of one method with different configs get different files."""
        return hashlib.sha256(json.dumps(self.method_config, sort_keys=True).encode()).hexdigest()[:8]

    def key(self) -> str:
        """Hash of the spec: a result written for another spec (a changed profile) is not reused."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_slug(lr: float) -> str:
    """``lr`` in the shortest exponent form that reads back as the same number: ``2e-03``, ``1.5e-02``, ``2.66e-04``
    (run ids named every rate with one digit, so 1.5e-3 and 2e-3 shared a file name)."""
    for digits in range(7):
        text = f"{lr:.{digits}e}"
        if float(text) == lr:
            return text
    return repr(lr)


def resolve_lr(token: str, method: str) -> float:
    """A learning-rate token of ``--lrs``: a number, ``default`` (the method's own default learning rate) or a
    multiple of that default such as ``3x`` or ``0.3x`` (a sweep around each method's default)."""
    from ..training.methods import default_lr

    text = token.strip().lower()
    expected = "a positive number, 'default' or a positive multiple of the default such as '3x'"
    try:
        value = default_lr(method) * float(text[:-1]) if text.endswith("x") else float(text)
    except ValueError:
        if text != "default":
            raise UsageError(f"--lrs entry {token!r} is invalid: expected {expected}.") from None
        value = default_lr(method)
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"--lrs entry {token!r} is invalid: expected {expected}.")
    return float(f"{value:.6g}")  # 3 x 2e-3 is 0.006, not 0.006000000000000001


def result_path(out: Path, spec: BenchRun) -> Path:
    return Path(out) / f"{spec.run_id}.json"


def read_result(out: Path, spec: BenchRun) -> dict[str, Any] | None:
    """The stored result of ``spec``, or None when missing, unreadable or written for a different spec."""
    return read_document(result_path(out, spec), spec)


def read_document(path: Path, spec: BenchRun) -> dict[str, Any] | None:
    """The document at ``path`` if it was written for ``spec``, else None (missing, unreadable, another spec)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if document.get("spec_key") == spec.key() else None


def best_lr(results: list[dict[str, Any]]) -> float | None:
    """The learning rate whose run scored best on validation; ties: the smaller rate. None when no run is ok.

    One rate is no choice: it is returned whether or not its run scored the validation split (the tasks that re-use
    the sweep task's rate do not).

    Raises:
        ValueError: If several rates compete and some of their runs have no validation score: picking by the test
            score would choose on the examples the score is then read from, so it is refused, naming those runs.
    """
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return None
    if len({r["spec"]["lr"] for r in ok}) == 1:
        return ok[0]["spec"]["lr"]
    unscored = [r.get("run_id") or f"lr {r['spec']['lr']:g}" for r in ok if r.get("validation_score") is None]
    if unscored:
        raise UsageError(
            f"Cannot choose a learning rate: {', '.join(unscored)} ha{'s' if len(unscored) == 1 else 've'} no "
            "validation score (the sweep's runs score the validation split; the test score is not used to choose)."
        )
    return max(ok, key=lambda r: (r["validation_score"], -r["spec"]["lr"]))["spec"]["lr"]
