"""The options of a run that choose its tasks, their data, its format and how its examples are cut and mixed.

:class:`TaskOptions` is the data group of :class:`adalink.training.args.TrainArgs` (``adalink train --task ...``): it
lives here so that loading a run's tasks (:func:`adalink.runs.loading.load_tasks`, :func:`.sft.load_sft_tasks`), the
bench and the server's readers need no part of the training harness. A field's ``help`` is its flag's help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import GENERATION_TASK_NAMES, TASK_NAMES

__all__ = ["TaskOptions"]


@dataclass
class TaskOptions:
    """Which tasks a run trains on and how their examples become batches."""

    task: str = field(
        default="tweets",
        metadata={
            "help": f"comma-separated tasks from {', '.join(TASK_NAMES)} (classification), "
            f"{', '.join(GENERATION_TASK_NAMES)} (generative, --format sft) or easyvqa (images)"
        },
    )
    format: str = field(
        default="auto",
        metadata={
            "help": "auto, classification, text2text or sft (generative: prompt -> response, from --train-file or "
            "--task headlines; auto picks it for a generative task)"
        },
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
    question_types: str | None = field(
        default=None,
        metadata={
            "help": "easyvqa only: comma-separated question types to train and test on (color, shape, yesno-color, "
            "yesno-shape; e.g. yesno-shape, the type held out of stage 1); default all"
        },
    )
    prompt_column: str = field(default="prompt", metadata={"help": "--format sft: prompt column of --train-file"})
    response_column: str = field(default="response", metadata={"help": "--format sft: response column of --train-file"})
    max_new_tokens: int = field(default=64, metadata={"help": "--format sft: longest generated response (tokens)"})
    max_length: int = field(default=64, metadata={"help": "max input tokens"})
    task_mixing: str = field(
        default="proportional",
        metadata={
            "help": "how often each task of a multi-task run is drawn: proportional (to its size), sqrt (∝ √size, "
            "T5's temperature 2) or equal"
        },
    )
