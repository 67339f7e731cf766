"""What an experiment is made of: the runs to make, the rows of its table, and how its claims are judged.

Every run is one call of the training harness (:func:`adalink.training.loop.train`) described by a
:class:`TrainRun`; a :class:`Condition` groups the runs whose per-task scores form one row of a table (one run, or
one per task for "single-task" rows); an :class:`Experiment` lists its conditions, the paper's numbers beside them
and a ``judge`` that turns the per-condition :class:`~adalink.stats.Summary` into verdicts. The paper's
tables built from these are :mod:`.tables`.

Scale (compute: 2 shared CPU cores) is set by :class:`Scale`: steps, evaluation examples and the text model; the
defaults are what ``docs/paper-reproduction.md`` reports, ``--quick`` shrinks them to a smoke test.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..stats import Summary
from .verdicts import Verdict

__all__ = ["PROTOCOL_DROPOUT", "Condition", "Experiment", "Judge", "Scale", "TrainRun", "protocol_lr"]

# Every experiment run trains a method that has a dropout at 0.1 (the paper's AdaLink dropout, and the harness's
# default for every method when the committed runs were made), so those runs stay the runs their ids name.
PROTOCOL_DROPOUT = 0.1
# AdaLink's recipe when the committed runs were made (issue 26 later moved the library's default to init
# scaled_normal at 5e-3 for decoders): the reproduction keeps it, so its runs stay the runs their ids name.
_PROTOCOL_ADALINK_LR = 2e-3
_PROTOCOL_ADALINK_INIT = "kaiming_uniform"


def protocol_lr(method: str) -> float:
    """The learning rate an experiment run of ``method`` uses when its spec leaves ``lr`` unset."""
    from ..training.methods import default_lr

    return _PROTOCOL_ADALINK_LR if method == "adalink" else default_lr(method)


@dataclass(frozen=True)
class TrainRun:
    """One training run (without its seed): the harness options it sets."""

    model: str  # --model
    task: str  # --task (comma-separated = multi-task)
    method: str = "adalink"  # --method
    rank: int = 8  # --rank, for methods with a size (`size_field`); part of the run id for every method
    max_steps: int = 200  # --max-steps
    max_eval: int | None = 1000  # --max-eval (first N test examples per task)
    batch_size: int = 16  # --batch-size
    lr: float | None = None  # --lr (None: the method's default, 5e-5 for full tuning)
    head_lr: float | None = None  # --head-lr (None: --lr); the classification head (new, or stage 1's) trains at it
    question_types: str | None = None  # --question-types (easyvqa only)
    overrides: tuple[tuple[str, Any], ...] = ()  # --method-config fields (Table 3: ("unified", True))
    task_mixing: str = "proportional"  # --task-mixing (multi-task runs)

    def key(self) -> dict[str, Any]:
        """The settings that identify the run. ``task_mixing`` (added after runs were committed) is left out at its
        default, so the runs finished before it existed keep their ids (and are not made again)."""
        key = asdict(self)
        if key["task_mixing"] == "proportional":
            del key["task_mixing"]
        return key

    def train_options(self) -> dict[str, Any]:
        """The :class:`~adalink.training.args.TrainArgs` fields this spec sets: ``--rank`` only for a method with a
        size, and every method that has a dropout at :data:`PROTOCOL_DROPOUT`."""
        from ..methods.base import METHOD_CONFIGS

        cls = METHOD_CONFIGS[self.method]
        options = {k: v for k, v in asdict(self).items() if k != "overrides"}
        if cls.size_field is None:
            del options["rank"]
        if "dropout" in cls.field_names():
            options["dropout"] = PROTOCOL_DROPOUT
        overrides = dict(self.overrides)
        if self.method == "adalink":  # the recipe the committed runs were made with, whatever the defaults are now
            options["lr"] = options["lr"] or _PROTOCOL_ADALINK_LR
            overrides = {"init": _PROTOCOL_ADALINK_INIT, **overrides}
        if overrides:
            options["method_config"] = json.dumps(overrides)
        return {k: v for k, v in options.items() if v is not None or k == "max_eval"}

    def command(self, seed: int) -> str:
        """The equivalent ``adalink train`` command line (options at their harness default left out)."""
        parts = ["adalink train"]
        for key, value in {**self.train_options(), "seed": seed}.items():
            default = key == "task_mixing" and value == "proportional"
            if value is not None and not default:
                parts.append(f"--{key.replace('_', '-')} {shlex.quote(str(value))}")
        return " ".join(parts)


@dataclass(frozen=True)
class Condition:
    """One row of a table: the runs (one per task for single-task rows) whose per-task scores it averages."""

    label: str  # row name, e.g. "AdaLink r=64 (text + image)"
    specs: tuple[TrainRun, ...]  # runs of one seed; their per-task scores are pooled, the row score is their mean
    paper: str = ""  # the paper's number(s) for this row, as printed in the table
    x: float | None = None  # position on a numeric x axis (rank sweeps), else None


Judge = Callable[[Mapping[str, Summary]], list[Verdict]]


@dataclass(frozen=True)
class Experiment:
    """A table of the paper redone at our scale."""

    name: str  # `adalink experiment NAME`
    title: str  # heading in the report
    paper_table: str  # which table(s) of the paper, and their metric
    protocol: str  # what is trained and evaluated, in one paragraph
    conditions: tuple[Condition, ...]
    judge: Judge
    plot: str = "bar"  # "bar" (one bar per condition) or "line" (score against Condition.x, log scale)
    x_label: str = ""  # axis label of a line plot
    note: str = ""  # a reference point printed under the table (e.g. the un-adapted model's score)


@dataclass(frozen=True)
class Scale:
    """How big the runs are (compute budget)."""

    text_model: str = "minilm"  # model of the text experiments
    text_steps: int = 200  # optimiser steps of a text run
    text_head_lr: float | None = 1e-2  # the new head of a classification run, the same for every method
    text_eval: int | None = 500  # test examples per task of a text run
    vqa_steps: int = 200  # optimiser steps of an easy-VQA run
    # the stage-1 answer head in the easy-VQA method comparisons (Tables 1/4, lr-easyvqa), the same for every method:
    # the rate stage 1 trained it at (Stage1Settings.lr); the AdaLink-only sweeps keep it at AdaLink's rate
    vqa_head_lr: float | None = 1e-3
    vqa_eval: int | None = 500  # held-out-type test examples of an easy-VQA run
    smollm_steps: int = 30  # SmolLM2 text-to-text runs (4.5 s/step on 2 cores)
    smollm_eval: int | None = 100

    def quick(self) -> Scale:
        """A smoke-test scale: a few steps, a few evaluation examples."""
        return replace(self, text_steps=10, text_eval=64, vqa_steps=10, vqa_eval=64, smollm_steps=2, smollm_eval=8)
