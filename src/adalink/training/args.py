"""``TrainArgs``: every option of ``adalink train``, one typed field each, validated with errors that name the flag.

The command line is generated from this dataclass (:func:`adalink.options.add_dataclass_options`), so a
field's ``help`` is its flag's help.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import GENERATION_TASK_NAMES, TASK_NAMES
from ..errors import ConfigError, UsageError
from ..models.precision import DTYPES, QUANTIZATIONS, BaseLoading
from .early_checks import check_train_options
from .methods import check_knobs, method_class, method_names, settable_fields
from .stream import MIXING
from .tracking import tracker_names

__all__ = ["TrainArgs"]


@dataclass
class TrainArgs:
    model: str = field(
        default="minilm",
        metadata={"help": "minilm, smollm2-135m, a local directory or a cached hub name; easyvqa: easyvqa-vlm"},
    )
    task: str = field(
        default="tweets",
        metadata={
            "help": f"comma-separated tasks from {', '.join(TASK_NAMES)} (classification), "
            f"{', '.join(GENERATION_TASK_NAMES)} (generative, --format sft) or easyvqa (images)"
        },
    )
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
    max_length: int = field(default=64, metadata={"help": "max input tokens"})
    seed: int = field(default=0, metadata={"help": "seed of the head init, data order and dropout"})
    task_mixing: str = field(
        default="proportional",
        metadata={
            "help": "how often each task of a multi-task run is drawn: proportional (to its size), sqrt (∝ √size, "
            "T5's temperature 2) or equal"
        },
    )
    optimizer: str = field(default="adamw", metadata={"help": "adamw or adafactor"})
    schedule: str = field(default="linear", metadata={"help": "linear (warmup + linear decay) or rsqrt"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps spent warming up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    format: str = field(
        default="auto",
        metadata={
            "help": "auto, classification, text2text or sft (generative: prompt -> response, from --train-file or "
            "--task headlines; auto picks it for a generative task)"
        },
    )
    output_dir: str | None = field(default=None, metadata={"help": "default runs/<model>-<task>-<method>"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output-dir"})
    max_eval: int | None = field(
        default=None,
        metadata={"help": "evaluate on the first N test examples per task (and N validation ones for --eval-every)"},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "your own training data: CSV, JSON Lines, Parquet or a datasets save_to_disk directory; split "
            "80/10/10 unless --eval-file is given"
        },
    )
    eval_file: str | None = field(
        default=None,
        metadata={"help": "held-out data in any --train-file format, split 50/50 into validation and test"},
    )
    text_column: str = field(default="text", metadata={"help": "text column of --train-file/--eval-file"})
    label_column: str = field(default="label", metadata={"help": "label column of --train-file/--eval-file"})
    task_name: str | None = field(
        default=None,
        metadata={
            "help": "name of the task read from --train-file (default: the file's name, or its folder's where the "
            "file is named after a split, e.g. reviews/train.csv -> reviews); results, adapters and servers use it"
        },
    )
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (accelerate)"})
    method_config: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of further fields of the method's config, e.g. '{\"unified\": true}' (adalink) or "
            '\'{"num_virtual_tokens": 64, "residual": true}\' (prompt_tuning); `adalink methods` lists methods'
        },
    )
    question_types: str | None = field(
        default=None,
        metadata={
            "help": "easyvqa only: comma-separated question types to train and test on (color, shape, yesno-color, "
            "yesno-shape; e.g. yesno-shape, the type held out of stage 1); default all"
        },
    )
    # evaluation, config and tracking
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
    # generative (sft)
    prompt_column: str = field(default="prompt", metadata={"help": "--format sft: prompt column of --train-file"})
    response_column: str = field(default="response", metadata={"help": "--format sft: response column of --train-file"})
    max_new_tokens: int = field(default=64, metadata={"help": "--format sft: longest generated response (tokens)"})
    # precision and memory
    dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype of the frozen base weights: float32, bfloat16 or float16 (the method's own parameters and "
            "the optimiser state stay float32)"
        },
    )
    quantize: str = field(
        default="none",
        metadata={
            "help": "quantize the frozen base's linear layers: none, int8 (torchao weight-only; CPU or GPU), nf4 or "
            "int8-bnb (bitsandbytes; made for a GPU); see docs/scaling.md"
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute the blocks' activations in the backward pass (transformers' own, non-reentrant)"},
    )

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        model = Path(self.model).name if os.sep in self.model else self.model
        return Path("runs") / f"{model}-{self.task.replace(',', '+')}-{self.method}"

    def validate(self) -> None:
        checks = [
            ("max_steps", self.max_steps > 0, "a positive integer"),
            ("batch_size", self.batch_size > 0, "a positive integer"),
            ("grad_accum", self.grad_accum > 0, "a positive integer"),
            ("max_length", self.max_length > 0, "a positive integer"),
            ("rank", self.rank is None or self.rank > 0, "a positive integer"),
            ("dropout", self.dropout is None or 0 <= self.dropout < 1, "a number in [0, 1)"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "a number in [0, 1)"),
            ("lr", self.lr is None or self.lr > 0, "a positive number"),
            ("head_lr", self.head_lr is None or self.head_lr > 0, "a positive number"),
            ("task_mixing", self.task_mixing in MIXING, " or ".join(MIXING)),
            ("eval_every", self.eval_every >= 0, "0 (off) or a positive integer"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, "0 (never) or a positive integer"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is invalid: expected {expected}.")
        if self.early_stopping_patience and not self.eval_every:
            raise UsageError("--early-stopping-patience counts evaluations: it needs --eval-every N.")
        if self.task_name is not None and (not self.train_file or not self.task_name.strip()):
            raise UsageError(
                f"--task-name {self.task_name!r} is invalid: expected a non-empty name for the task of --train-file"
                + ("" if self.train_file else " (packaged tasks keep their own names)")
                + "."
            )
        tracker_names(self.report_to)  # fails early on an unknown tracker
        check_knobs(method_class(self.method), rank=self.rank, dropout=self.dropout)  # before any model loads
        self.method_options()  # fails early on a malformed --method-config
        self._validate_precision()
        check_train_options(self)  # names, the model and the data file's columns, before anything loads

    def _validate_precision(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype!r} is invalid: expected one of {', '.join(DTYPES)}.")
        if self.quantize not in QUANTIZATIONS:
            raise UsageError(f"--quantize {self.quantize!r} is invalid: expected one of {', '.join(QUANTIZATIONS)}.")
        if self.method == "full" and (self.dtype != "float32" or self.quantize != "none"):
            raise UsageError(
                f"--dtype {self.dtype} --quantize {self.quantize} does not apply to --method full: full tuning trains "
                "the base weights themselves, which need float32 (use --mixed-precision bf16 for lower-precision "
                "compute, or a PEFT method over a lower-precision base)."
            )
        BaseLoading.from_options(asdict(self)).check_method(self.method)

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

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        skip = {"resume", "output_dir", "save_every", "keep_checkpoints", "max_eval"}
        skip |= {"config", "report_to", "logging_dir"}  # how the run was described and watched, not what it does
        key = {k: v for k, v in asdict(self).items() if k not in skip}
        if self.eval_every:  # the validation examples scored pick the best step
            key["max_eval"] = self.max_eval
        for name in ("eval_every", "early_stopping_patience"):  # checkpoints from before these options still resume
            if not key[name]:
                del key[name]
        if key["task_mixing"] == "proportional":  # checkpoints from before --task-mixing existed still resume
            del key["task_mixing"]
        del key["gradient_checkpointing"]  # the same gradients, recomputed or kept: either may resume the other
        if not self.eval_every:  # then it only shapes the test evaluation, after training
            del key["max_new_tokens"]
        defaults = (("dtype", "float32"), ("quantize", "none"), ("prompt_column", "prompt"), ("task_name", None))
        for name, default in (*defaults, ("response_column", "response")):  # older checkpoints still resume
            if key[name] == default:
                del key[name]
        for name in ("model", "train_file", "eval_file"):  # one file, however it is spelled
            if key[name] and os.path.exists(key[name]):
                key[name] = os.path.abspath(key[name])
        return key
