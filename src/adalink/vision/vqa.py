"""easy-VQA on the tiny vision-language model: the harness format.

:class:`VQAFormat` is the harness format for :class:`~adalink.vision.TinyVLM`: questions are tokenized, images loaded
(:func:`adalink.data.load_images`, decoded once per process), and the model's 13-way answer head gives the logits.
Every task shares that head (labels are answer indices, ``VQAExample.answer``). Stage 1, which builds the
"pre-trained VLM" that runs adapt, is :mod:`adalink.vision.pretrain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..data.easyvqa import COLOR_NAMES, SHAPE_NAMES, VQAExample
from ..data.images import load_images
from ..errors import UsageError
from ..tasks.examples import TaskExample
from ..tasks.formats import ClassificationFormat, TaskInfo
from .vlm import TinyVLM

__all__ = [
    "ANSWER_NAMES",
    "TASK_NAME",
    "VQAFormat",
]

ANSWER_NAMES: tuple[str, ...] = tuple(sorted((*COLOR_NAMES, *SHAPE_NAMES, "no", "yes")))
"""The 13 easy-VQA answers in the order of ``VQAData.answer_names`` (sorted), i.e. the head's output order."""
TASK_NAME = "easyvqa"


class VQAFormat(ClassificationFormat):
    """The classification interface for easy-VQA on a :class:`TinyVLM`: one shared 13-way answer head.

    Args:
        tasks: The run's tasks; each must have the 13 answers (:data:`ANSWER_NAMES`) as labels. Default: one task
            named :data:`TASK_NAME`. Several tasks (e.g. one per question type, each with its own AdaLink) share the
            head, so every task's label slice is the whole head.
        image_size: Side the images are resized to (the model's ``config.image_size``; set by :meth:`build_base`).
    """

    name = "vqa"
    # Paper §3.2 multimodal AdaLink: one for the text tokens, one for the image tokens (the projector's output).
    modalities: ClassVar[dict[str, str]] = {"text": "input_embeddings", "image": "projector"}

    def __init__(self, tasks: Sequence[TaskInfo] | None = None, *, image_size: int = 64) -> None:
        tasks = list(tasks) if tasks is not None else [TaskInfo(TASK_NAME, ANSWER_NAMES)]
        if not tasks:
            raise UsageError("VQAFormat needs at least one task.")
        for task in tasks:
            if tuple(task.label_names) != ANSWER_NAMES:
                raise UsageError(
                    f"VQAFormat task {task.name!r} has labels {tuple(task.label_names)}; expected the 13 easy-VQA "
                    f"answers {ANSWER_NAMES} (all tasks share the answer head)."
                )
        self.tasks = tasks
        self.offsets = [0] * len(tasks)
        self.num_labels = len(ANSWER_NAMES)
        self.mask = torch.ones(len(tasks), self.num_labels, dtype=torch.bool)
        self.image_size = image_size

    # takes no ``loading`` (the TinyVLM is built float32): ModelSetup.build_base refuses --dtype/--quantize for it
    def build_base(self, path: str, *, seed: int) -> nn.Module:  # type: ignore[override]
        """Load the (stage-1) :class:`TinyVLM` saved in ``path``; its head is kept, not re-initialised."""
        torch.manual_seed(seed)
        model = TinyVLM.from_pretrained(path)
        if model.config.num_answers != self.num_labels:
            raise UsageError(
                f"{path}: the model's head has {model.config.num_answers} answers; VQAFormat needs {self.num_labels}."
            )
        self.image_size = model.config.image_size
        return model

    @staticmethod
    def head_modules(model: nn.Module) -> list[str]:
        return ["classifier"] if isinstance(getattr(model, "classifier", None), nn.Module) else []

    def collate(self, items: Sequence[TaskExample], tokenizer: Any, max_length: int) -> dict[str, torch.Tensor]:
        examples = [cast(VQAExample, item.example) for item in items]  # an easy-VQA run's tasks hold VQAExamples
        text = tokenizer(
            [example.question for example in examples],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "pixel_values": load_images([example.image_path for example in examples], size=self.image_size),
            "labels": torch.tensor([example.answer for example in examples], dtype=torch.long),
            "task_ids": torch.tensor([item.task for item in items], dtype=torch.long),
        }
