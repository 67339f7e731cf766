"""``TrainArgs``: every option of ``adalink train``, one typed field each, validated with errors that name the flag.

The command line is generated from this dataclass (:func:`adalink.commands.options.add_dataclass_options`), so a
field's ``help`` is its flag's help.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import TASK_NAMES
from ..methods.base import METHOD_CONFIGS
from .methods import method_names
from .stream import MIXING

__all__ = ["TrainArgs"]


@dataclass
class TrainArgs:
    model: str = field(
        default="minilm",
        metadata={"help": "minilm, smollm2-135m, a local directory or a cached hub name; easyvqa: easyvqa-vlm"},
    )
    task: str = field(
        default="tweets", metadata={"help": f"comma-separated tasks from {', '.join(TASK_NAMES)}, or easyvqa (images)"}
    )
    method: str = field(default="adalink", metadata={"help": "one of: " + ", ".join(method_names())})
    rank: int = field(default=8, metadata={"help": "AdaLink rank r"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the method's own input (AdaLink: paper's 0.1)"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate (default: 2e-3 adalink, 5e-5 full)"})
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
    format: str = field(default="auto", metadata={"help": "auto, classification or text2text"})
    output_dir: str | None = field(default=None, metadata={"help": "default runs/<model>-<task>-<method>"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output-dir"})
    max_eval: int | None = field(default=None, metadata={"help": "evaluate on the first N test examples per task"})
    train_file: str | None = field(default=None, metadata={"help": "your own CSV/JSONL training data"})
    eval_file: str | None = field(default=None, metadata={"help": "your own CSV/JSONL evaluation data"})
    text_column: str = field(default="text", metadata={"help": "text column of --train-file/--eval-file"})
    label_column: str = field(default="label", metadata={"help": "label column of --train-file/--eval-file"})
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
            ("rank", self.rank > 0, "a positive integer"),
            ("dropout", 0 <= self.dropout < 1, "a number in [0, 1)"),
            ("optimizer", self.optimizer in ("adamw", "adafactor"), "adamw or adafactor"),
            ("schedule", self.schedule in ("linear", "rsqrt"), "linear or rsqrt"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "a number in [0, 1)"),
            ("lr", self.lr is None or self.lr > 0, "a positive number"),
            ("head_lr", self.head_lr is None or self.head_lr > 0, "a positive number"),
            ("task_mixing", self.task_mixing in MIXING, " or ".join(MIXING)),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is invalid: expected {expected}.")
        self.method_options()  # fails early on a malformed --method-config

    def method_options(self) -> dict[str, Any]:
        """``--method-config`` as a dict of config fields (empty when not given).

        Raises:
            ValueError: If it is not a JSON object, is given with ``--method full``, or names fields the method's
                config does not have.
        """
        if not self.method_config:
            return {}
        try:
            options = json.loads(self.method_config)
        except json.JSONDecodeError as err:
            raise ValueError(f"--method-config {self.method_config!r} is not valid JSON: {err}.") from None
        if not isinstance(options, dict):
            raise ValueError(f"--method-config {self.method_config!r}: expected a JSON object of config fields.")
        if self.method == "full":
            raise ValueError("--method-config does not apply to --method full (it has no config).")
        cls = METHOD_CONFIGS.get(self.method)
        if cls is None:
            return options  # attach_method names the unknown method
        settable = cls.field_names() - {"rank", "dropout", "tasks", "modules_to_save"}
        unknown = sorted(set(options) - settable)
        if unknown:
            raise ValueError(
                f"--method-config: {unknown} are not fields {cls.__name__} lets you set here; expected some of "
                f"{sorted(settable)} (--rank, --dropout and --task set the others)."
            )
        return options

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        skip = {"resume", "output_dir", "save_every", "keep_checkpoints", "max_eval"}
        key = {k: v for k, v in asdict(self).items() if k not in skip}
        if key["task_mixing"] == "proportional":  # checkpoints from before --task-mixing existed still resume
            del key["task_mixing"]
        for name in ("model", "train_file", "eval_file"):  # one file, however it is spelled
            if key[name] and os.path.exists(key[name]):
                key[name] = os.path.abspath(key[name])
        return key
