"""``TrainArgs``: every option of ``adalink train``, one typed field each, in five groups, validated with errors that
name the flag.

Each module receives the group it uses:

- ``base``, :class:`~adalink.models.options.ModelOptions`: loading the base (its ``loading``: dtype, quantization,
  checkpointing; :mod:`adalink.models.precision`) and the sharding checks (:mod:`.sharding`);
- ``data``, :class:`~adalink.tasks.options.TaskOptions`: loading the tasks (:func:`adalink.runs.loading.load_tasks`),
  the model's format, the batches' length and mixing;
- ``tuning``, :class:`MethodOptions`: the method's config (:func:`.methods.resolve_method_config`);
- ``optim``, :class:`OptimOptions`: the optimiser and schedule (:mod:`.optimizer`), the steps and batches;
- ``run``, :class:`RunOptions`: the seed, checkpoints, evaluation while training, trackers and accelerate.

The loop, the checkpoints' resume key and the run's outputs take the whole :class:`TrainArgs`. On the command line, in
``config.yaml``, in ``run.json`` (``"args"``) and in the checkpoints the options stay flat, one name each
(:meth:`TrainArgs.options`), and ``TrainArgs(max_steps=40, lr=1e-3)`` takes them flat too. The command line and the
``--config`` file are generated from these classes (:mod:`.config_file`), so a field's ``help`` is its flag's help.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from ..models.options import ModelOptions
from ..models.precision import DTYPES, QUANTIZATIONS
from ..tasks.options import TaskOptions
from .early_checks import check_train_options
from .methods import check_knobs, method_class, method_names, settable_fields
from .stream import MIXING
from .tracking import tracker_names

__all__ = ["GROUPS", "MethodOptions", "OptimOptions", "RunOptions", "TrainArgs"]


@dataclass
class MethodOptions:
    """Which method a run trains, and what the command line sets of its config (the rest is the config's own)."""

    method: str = field(default="adalink", metadata={"help": "one of: " + ", ".join(method_names())})
    rank: int | None = field(
        default=None,
        metadata={
            "help": "the method's size: AdaLink's and LoRA's rank r, the bottleneck adapters' width m (default: the "
            "method's own; refused for methods without one, e.g. prompt tuning; see `adalink methods`)"
        },
    )
    dropout: float | None = field(
        default=None,
        metadata={"help": "dropout on the method's own input (default: the method's own; AdaLink: the paper's 0.1)"},
    )
    method_config: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of further fields of the method's config, e.g. '{\"unified\": true}' (adalink) or "
            '\'{"num_virtual_tokens": 64, "residual": true}\' (prompt_tuning); `adalink methods` lists methods'
        },
    )

    def method_options(self) -> dict[str, Any]:
        """``--method-config`` as a dict of config fields (empty when not given).

        Raises:
            ValueError: If it is not a JSON object or names fields the method's config does not let it set.
        """
        if not self.method_config:
            return {}
        try:
            options = json.loads(self.method_config)
        except json.JSONDecodeError as err:
            raise UsageError(f"--method-config {self.method_config!r} is not valid JSON: {err}.") from None
        if not isinstance(options, dict):
            raise UsageError(f"--method-config {self.method_config!r}: expected a JSON object of config fields.")
        cls = method_class(self.method)
        settable = settable_fields(cls)
        unknown = sorted(set(options) - set(settable))
        if unknown:
            raise ConfigError(
                f"--method-config: {unknown} are not fields {cls.__name__} lets you set here; expected some of "
                f"{settable} (--rank, --dropout and --task set the others)."
            )
        return options


@dataclass
class OptimOptions:
    """The optimiser, its learning rates and schedule, and the steps and batches it takes."""

    lr: float | None = field(
        default=None, metadata={"help": "peak learning rate (default: the method's own; `adalink methods` lists them)"}
    )
    head_lr: float | None = field(
        default=None,
        metadata={"help": "peak learning rate of the new classification head, for every method (default: --lr)"},
    )
    max_steps: int = field(default=300, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=16, metadata={"help": "global batch per optimiser step (all processes)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step on each process"})
    optimizer: str = field(default="adamw", metadata={"help": "adamw or adafactor"})
    schedule: str = field(default="linear", metadata={"help": "linear (warmup + linear decay) or rsqrt"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps spent warming up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})


@dataclass
class RunOptions:
    """Where the run writes, how it is checkpointed, evaluated while training, watched and computed."""

    seed: int = field(default=0, metadata={"help": "seed of the head init, data order and dropout"})
    output_dir: str | None = field(default=None, metadata={"help": "default runs/<model>-<task>-<method>"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output-dir"})
    max_eval: int | None = field(
        default=None,
        metadata={"help": "evaluate on the first N test examples per task (and N validation ones for --eval-every)"},
    )
    eval_every: int = field(
        default=0,
        metadata={
            "help": "score the validation split every N steps (and at the last); the run directory then holds the "
            "best-scoring adapter (the last one under last/) and the test score is the best one's (0 = off)"
        },
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={"help": "with --eval-every: stop after N evaluations without a better mean score (0 = never)"},
    )
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (accelerate)"})
    config: str | None = field(
        default=None,
        metadata={
            "help": "YAML file of these options (keys: the option names with underscores, e.g. max_steps: 300); "
            "options given on the command line override it. Every run directory holds its own as config.yaml"
        },
    )
    report_to: str = field(
        default="none",
        metadata={"help": "trackers, comma-separated: tensorboard, mlflow, trackio, wandb, all (installed) or none"},
    )
    logging_dir: str | None = field(default=None, metadata={"help": "where trackers write (default <output-dir>/logs)"})


# TrainArgs' attribute -> (its class, its title in `adalink train --help` and config.yaml)
GROUPS: dict[str, tuple[type, str]] = {
    "base": (ModelOptions, "model"),
    "data": (TaskOptions, "data"),
    "tuning": (MethodOptions, "method"),
    "optim": (OptimOptions, "optimisation"),
    "run": (RunOptions, "run"),
}
_GROUP_OF = {f.name: group for group, (cls, _) in GROUPS.items() for f in fields(cls)}  # option -> its group


@dataclass(init=False)
class TrainArgs:
    """Every option of ``adalink train``: ``TrainArgs(max_steps=40, task="bbc")`` (flat, as the command line and the
    files name them) or ``TrainArgs(optim=OptimOptions(...))``; a flat option beside its group overrides its field."""

    base: ModelOptions
    data: TaskOptions
    tuning: MethodOptions
    optim: OptimOptions
    run: RunOptions

    def __init__(
        self,
        base: ModelOptions | None = None,
        data: TaskOptions | None = None,
        tuning: MethodOptions | None = None,
        optim: OptimOptions | None = None,
        run: RunOptions | None = None,
        **options: Any,
    ) -> None:
        unknown = [name for name in options if name not in _GROUP_OF]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(_GROUP_OF), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected some of {list(_GROUP_OF)}"
            raise TypeError(f"TrainArgs: {unknown} are not options of adalink train{hint}")
        given = {"base": base, "data": data, "tuning": tuning, "optim": optim, "run": run}
        for group, (cls, _) in GROUPS.items():
            own = {name: value for name, value in options.items() if _GROUP_OF[name] == group}
            value = given[group]
            setattr(self, group, cls(**own) if value is None else replace(value, **own))

    def options(self) -> dict[str, Any]:
        """Every option by its flat name, group by group (``run.json``'s ``"args"``, ``config.yaml``, trackers)."""
        return {f.name: getattr(getattr(self, g), f.name) for g, (cls, _) in GROUPS.items() for f in fields(cls)}

    def resolved_output_dir(self) -> Path:
        if self.run.output_dir:
            return Path(self.run.output_dir)
        model = Path(self.base.model).name if os.sep in self.base.model else self.base.model
        return Path("runs") / f"{model}-{self.data.task.replace(',', '+')}-{self.tuning.method}"

    def validate(self) -> None:
        data, tuning, optim, run = self.data, self.tuning, self.optim, self.run
        checks = [
            ("max_steps", optim.max_steps > 0, "a positive integer"),
            ("batch_size", optim.batch_size > 0, "a positive integer"),
            ("grad_accum", optim.grad_accum > 0, "a positive integer"),
            ("max_length", data.max_length > 0, "a positive integer"),
            ("rank", tuning.rank is None or tuning.rank > 0, "a positive integer"),
            ("dropout", tuning.dropout is None or 0 <= tuning.dropout < 1, "a number in [0, 1)"),
            ("warmup_ratio", 0 <= optim.warmup_ratio < 1, "a number in [0, 1)"),
            ("lr", optim.lr is None or optim.lr > 0, "a positive number"),
            ("head_lr", optim.head_lr is None or optim.head_lr > 0, "a positive number"),
            ("task_mixing", data.task_mixing in MIXING, " or ".join(MIXING)),
            ("eval_every", run.eval_every >= 0, "0 (off) or a positive integer"),
            ("early_stopping_patience", run.early_stopping_patience >= 0, "0 (never) or a positive integer"),
        ]
        for name, ok, expected in checks:
            if not ok:
                value = getattr(getattr(self, _GROUP_OF[name]), name)
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is invalid: expected {expected}.")
        if run.early_stopping_patience and not run.eval_every:
            raise UsageError("--early-stopping-patience counts evaluations: it needs --eval-every N.")
        if data.task_name is not None and (not data.train_file or not data.task_name.strip()):
            raise UsageError(
                f"--task-name {data.task_name!r} is invalid: expected a non-empty name for the task of --train-file"
                + ("" if data.train_file else " (packaged tasks keep their own names)")
                + "."
            )
        tracker_names(run.report_to)  # fails early on an unknown tracker
        check_knobs(method_class(tuning.method), rank=tuning.rank, dropout=tuning.dropout)  # before any model loads
        tuning.method_options()  # fails early on a malformed --method-config
        self._validate_precision()
        # names, the model and the data file's columns, before anything loads
        check_train_options(
            data,
            model=self.base.model,
            optimizer=optim.optimizer,
            schedule=optim.schedule,
            mixed_precision=run.mixed_precision,
        )

    def _validate_precision(self) -> None:
        base, method = self.base, self.tuning.method
        if base.dtype not in DTYPES:
            raise UsageError(f"--dtype {base.dtype!r} is invalid: expected one of {', '.join(DTYPES)}.")
        if base.quantize not in QUANTIZATIONS:
            raise UsageError(f"--quantize {base.quantize!r} is invalid: expected one of {', '.join(QUANTIZATIONS)}.")
        if method == "full" and (base.dtype != "float32" or base.quantize != "none"):
            raise UsageError(
                f"--dtype {base.dtype} --quantize {base.quantize} does not apply to --method full: full tuning trains "
                "the base weights themselves, which need float32 (use --mixed-precision bf16 for lower-precision "
                "compute, or a PEFT method over a lower-precision base)."
            )
        base.loading.check_method(method)

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption (flat, as checkpoints have always held it)."""
        skip = {"resume", "output_dir", "save_every", "keep_checkpoints", "max_eval"}
        skip |= {"config", "report_to", "logging_dir"}  # how the run was described and watched, not what it does
        key = {k: v for k, v in self.options().items() if k not in skip}
        if self.run.eval_every:  # the validation examples scored pick the best step
            key["max_eval"] = self.run.max_eval
        for name in ("eval_every", "early_stopping_patience"):  # checkpoints from before these options still resume
            if not key[name]:
                del key[name]
        if key["task_mixing"] == "proportional":  # checkpoints from before --task-mixing existed still resume
            del key["task_mixing"]
        del key["gradient_checkpointing"]  # the same gradients, recomputed or kept: either may resume the other
        if not self.run.eval_every:  # then it only shapes the test evaluation, after training
            del key["max_new_tokens"]
        defaults = (("dtype", "float32"), ("quantize", "none"), ("prompt_column", "prompt"), ("task_name", None))
        for name, default in (*defaults, ("response_column", "response")):  # older checkpoints still resume
            if key[name] == default:
                del key[name]
        for name in ("model", "train_file", "eval_file"):  # one file, however it is spelled
            if key[name] and os.path.exists(key[name]):
                key[name] = os.path.abspath(key[name])
        return key
