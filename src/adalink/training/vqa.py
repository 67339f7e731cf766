"""easy-VQA on the tiny vision-language model: the task format, and stage 1 (building the "pre-trained VLM").

- :class:`VQAFormat` is the harness format for :class:`~adalink.vision.TinyVLM`: questions are tokenized, images
  loaded (:func:`adalink.data.load_images`, decoded once per process), and the model's 13-way answer head gives the
  logits. Every task shares that head (labels are answer indices, ``VQAExample.answer``).
- :func:`pretrain_vlm` is stage 1: the vision encoder, projector and head are trained from scratch with MiniLM frozen,
  on easy-VQA train *without* the held-out question types (default ``yesno-shape``), so that a second stage can adapt
  the frozen VLM to the held-out type with each PEFT method. The head still covers all 13 answers.
- :func:`cached_pretrained_vlm` builds that model once per setting under
  ``default_cache_dir() / "models" / "easyvqa-vlm-<settings hash>"``: trained into a temporary sibling, completed by
  a marker written last (which also records the MiniLM weight file it was trained against), renamed into place;
  reused while the marker is valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.easyvqa import COLOR_NAMES, QUESTION_TYPES, SHAPE_NAMES, VQAExample, load_easyvqa, load_images
from ..vision.vlm import TinyVLM, TinyVLMConfig, resolve_text_model_path
from .formats import ClassificationFormat, ModelCall, TaskInfo
from .stream import TaskExample

__all__ = [
    "ANSWER_NAMES",
    "DEFAULT_PRETRAIN",
    "TASK_NAME",
    "VQAFormat",
    "cached_pretrained_vlm",
    "evaluate_vlm",
    "pretrain_vlm",
]

ANSWER_NAMES: tuple[str, ...] = tuple(sorted((*COLOR_NAMES, *SHAPE_NAMES, "no", "yes")))
"""The 13 easy-VQA answers in the order of ``VQAData.answer_names`` (sorted), i.e. the head's output order."""
TASK_NAME = "easyvqa"

# Stage-1 settings used by cached_pretrained_vlm unless overridden (about 4–5 minutes on 2 CPU cores).
DEFAULT_PRETRAIN: dict[str, Any] = {
    "steps": 300,
    "batch_size": 32,
    "lr": 2e-3,
    "seed": 0,
    "held_out_types": ("yesno-shape",),
}
_RECIPE_VERSION = 1  # bump when the training code changes what a setting produces
_MAX_LENGTH = 32  # easy-VQA questions are at most 13 MiniLM tokens
PRETRAIN_FILE = "pretraining.json"


class VQAFormat(ClassificationFormat):
    """The classification interface for easy-VQA on a :class:`TinyVLM`: one shared 13-way answer head.

    Args:
        tasks: The run's tasks; each must have the 13 answers (:data:`ANSWER_NAMES`) as labels. Default: one task
            named :data:`TASK_NAME`. Several tasks (e.g. one per question type, each with its own AdaLink) share the
            head, so every task's label slice is the whole head.
        image_size: Side the images are resized to (the model's ``config.image_size``; set by :meth:`build_base`).
    """

    name = "vqa"

    def __init__(self, tasks: Sequence[TaskInfo] | None = None, *, image_size: int = 64) -> None:
        tasks = list(tasks) if tasks is not None else [TaskInfo(TASK_NAME, ANSWER_NAMES)]
        if not tasks:
            raise ValueError("VQAFormat needs at least one task.")
        for task in tasks:
            if tuple(task.label_names) != ANSWER_NAMES:
                raise ValueError(
                    f"VQAFormat task {task.name!r} has labels {tuple(task.label_names)}; expected the 13 easy-VQA "
                    f"answers {ANSWER_NAMES} (all tasks share the answer head)."
                )
        self.tasks = tasks
        self.offsets = [0] * len(tasks)
        self.num_labels = len(ANSWER_NAMES)
        self.mask = torch.ones(len(tasks), self.num_labels, dtype=torch.bool)
        self.image_size = image_size

    def build_base(self, path: str, *, seed: int) -> nn.Module:
        """Load the (stage-1) :class:`TinyVLM` saved in ``path``; its head is kept, not re-initialised."""
        torch.manual_seed(seed)
        model = TinyVLM.from_pretrained(path)
        if model.config.num_answers != self.num_labels:
            raise ValueError(
                f"{path}: the model's head has {model.config.num_answers} answers; VQAFormat needs {self.num_labels}."
            )
        self.image_size = model.config.image_size
        return model

    @staticmethod
    def head_modules(model: nn.Module) -> list[str]:
        return ["classifier"] if isinstance(getattr(model, "classifier", None), nn.Module) else []

    def collate(self, items: Sequence[TaskExample], tokenizer, max_length: int) -> dict[str, torch.Tensor]:
        examples: list[VQAExample] = [item.example for item in items]
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


# ------------------------------------------------------------------------------------------------------ stage 1


def _check_held_out(held_out_types: Sequence[str]) -> tuple[str, ...]:
    held = tuple(sorted(set(held_out_types)))
    unknown = [t for t in held if t not in QUESTION_TYPES]
    if unknown or len(held) == len(QUESTION_TYPES):
        raise ValueError(
            f"held_out_types={list(held_out_types)!r} is invalid: expected a proper subset of {list(QUESTION_TYPES)}."
        )
    return held


def _tokenizer(config: TinyVLMConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_model_path(config.text_model))


@torch.no_grad()
def evaluate_vlm(
    model: nn.Module,
    tokenizer,
    examples: Sequence[VQAExample],
    *,
    fmt: VQAFormat | None = None,
    batch_size: int = 256,
    call: ModelCall | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Accuracy per question type (and ``"all"``) on ``examples``; ``call(inputs, task_ids)`` runs the model."""
    fmt = fmt or VQAFormat()
    call = call or (lambda inputs, task_ids: model(**inputs))
    was_training = model.training
    model.eval()
    correct = dict.fromkeys(QUESTION_TYPES, 0)
    total = dict.fromkeys(QUESTION_TYPES, 0)
    try:
        for start in tqdm(range(0, len(examples), batch_size), desc="eval", leave=False, disable=not progress):
            chunk = examples[start : start + batch_size]
            batch = fmt.collate([TaskExample(0, e) for e in chunk], tokenizer, _MAX_LENGTH)
            predicted, _ = fmt.predict(call, batch)
            for example, answer in zip(chunk, predicted, strict=True):
                total[example.question_type] += 1
                correct[example.question_type] += int(answer == example.answer)
    finally:
        model.train(was_training)
    scores = {t: correct[t] / total[t] for t in QUESTION_TYPES if total[t]}
    scores["all"] = sum(correct.values()) / max(1, sum(total.values()))
    return scores


def _test_subset(examples: Sequence[VQAExample], per_type: int | None) -> list[VQAExample]:
    """The first ``per_type`` test examples of each question type (a uniform sample: splits are hash-ordered)."""
    if per_type is None:
        return list(examples)
    taken = dict.fromkeys(QUESTION_TYPES, 0)
    subset = []
    for example in examples:
        if taken[example.question_type] < per_type:
            taken[example.question_type] += 1
            subset.append(example)
    return subset


def _schedule(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain_vlm(
    out_dir: str | os.PathLike | None,
    *,
    steps: int = DEFAULT_PRETRAIN["steps"],
    batch_size: int = DEFAULT_PRETRAIN["batch_size"],
    lr: float = DEFAULT_PRETRAIN["lr"],
    seed: int = DEFAULT_PRETRAIN["seed"],
    held_out_types: Sequence[str] = DEFAULT_PRETRAIN["held_out_types"],
    config: TinyVLMConfig | None = None,
    eval_per_type: int | None = None,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.05,
    max_grad_norm: float = 1.0,
    progress: bool = True,
    limit_train: int | None = None,
) -> dict[str, Any]:
    """Stage 1: train the vision encoder, projector and head of a new :class:`TinyVLM` with MiniLM frozen.

    Training data: easy-VQA train without ``held_out_types``, in a seeded random order (reshuffled every epoch).
    AdamW, linear warm-up and cosine decay, gradient clipping; MiniLM runs in train mode (its dropout on), as the
    PEFT methods of stage 2 will.

    Args:
        out_dir: Where the model is saved (atomically, :meth:`TinyVLM.save_pretrained`, with the returned metrics in
            ``pretraining.json``); ``None`` saves nothing.
        steps, batch_size, lr, seed: Optimiser steps, examples per step, peak learning rate, seed of the
            initialisation, data order and dropout.
        held_out_types: Question types left out of training (a proper subset of ``QUESTION_TYPES``).
        config: The architecture (default :class:`TinyVLMConfig`).
        eval_per_type: Score on the first N test examples of each question type (``None``: the whole test split).
        limit_train: Use only the first N training examples (tests).

    Returns:
        Metrics: ``accuracy`` (test accuracy per question type and ``all``, the held-out types included: zero-shot),
        ``majority_baseline`` per type, ``train_seconds``, ``losses`` (per step), ``initial_loss`` / ``final_loss``
        (means of the first and last 10 steps), ``trainable_params`` per part and the settings.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected a positive integer.")
    if not lr > 0:
        raise ValueError(f"lr={lr!r} is invalid: expected a positive number.")
    held = _check_held_out(held_out_types)
    config = config or TinyVLMConfig()
    data = load_easyvqa(limit_train=limit_train)
    if data.answer_names != ANSWER_NAMES:
        raise ValueError(f"easy-VQA answers {data.answer_names} differ from the head's {ANSWER_NAMES}.")
    train = [e for e in data.train if e.question_type not in held]
    if not train:
        raise ValueError("No training examples left after removing the held-out question types.")

    torch.manual_seed(seed)
    model = TinyVLM(config)
    model.text_model.requires_grad_(False)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    counts = model.parameter_counts()
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    warmup = max(1, round(warmup_ratio * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, steps, warmup))
    fmt = VQAFormat(image_size=config.image_size)
    tokenizer = _tokenizer(config)
    order = torch.Generator().manual_seed(seed)
    permutation: list[int] = []
    losses: list[float] = []

    bar = tqdm(range(steps), desc="stage-1 VLM", unit="step", disable=not progress)
    began = time.perf_counter()
    for _ in bar:
        picked = []
        while len(picked) < batch_size:
            if not permutation:
                permutation = torch.randperm(len(train), generator=order).tolist()
            picked.append(train[permutation.pop()])
        batch = fmt.collate([TaskExample(0, e) for e in picked], tokenizer, _MAX_LENGTH)
        loss = fmt.loss(lambda inputs, task_ids: model(**inputs), batch)
        if not math.isfinite(float(loss)):
            raise RuntimeError(f"Stage-1 loss became {float(loss)} at step {len(losses) + 1}; try a lower lr.")
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss), 6))
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    bar.close()
    seconds = time.perf_counter() - began

    test = _test_subset(data.test, eval_per_type)
    accuracy = evaluate_vlm(model, tokenizer, test, fmt=fmt, progress=progress)
    metrics: dict[str, Any] = {
        "accuracy": accuracy,
        "majority_baseline": {t: round(data.majority_baseline(t), 4) for t in QUESTION_TYPES},
        "eval_examples": len(test),
        "held_out_types": list(held),
        "train_examples": len(train),
        "train_seconds": round(seconds, 1),
        "initial_loss": round(sum(losses[:10]) / len(losses[:10]), 4),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "losses": losses,
        "trainable_params": {
            "vision": counts["vision"],
            "projector": counts["projector"],
            "head": counts["head"],
            "total": sum(p.numel() for p in trainable),
        },
        "frozen_text_params": counts["text"],
        "settings": {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio,
            "max_grad_norm": max_grad_norm,
            "limit_train": limit_train,
            "config": config.to_dict(),
        },
    }
    if out_dir is not None:
        model.save_pretrained(out_dir, extra_json={PRETRAIN_FILE: metrics})
    return metrics


# --------------------------------------------------------------------------------------------------- the cache


def _settings_key(settings: dict[str, Any]) -> str:
    text = json.dumps({"recipe": _RECIPE_VERSION, **settings}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text_weights_file(config: TinyVLMConfig) -> Path:
    directory = Path(resolve_text_model_path(config.text_model))
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"No model.safetensors or pytorch_model.bin in {directory}.")


def cached_pretrained_vlm(
    cache_dir: str | os.PathLike | None = None,
    *,
    steps: int = DEFAULT_PRETRAIN["steps"],
    batch_size: int = DEFAULT_PRETRAIN["batch_size"],
    lr: float = DEFAULT_PRETRAIN["lr"],
    seed: int = DEFAULT_PRETRAIN["seed"],
    held_out_types: Sequence[str] = DEFAULT_PRETRAIN["held_out_types"],
    config: TinyVLMConfig | None = None,
    eval_per_type: int | None = 500,
    progress: bool = True,
) -> Path:
    """The stage-1 VLM for these settings, trained once (see :func:`pretrain_vlm`) and reused afterwards.

    Lives in ``<cache_dir>/models/easyvqa-vlm-<hash of the settings>`` (``cache_dir`` defaults to
    :func:`adalink.models.default_cache_dir`). Built in a temporary sibling, finished by a marker written last that
    lists every file with its size and records the text-model weight file; renamed into place. A directory whose
    marker is missing or stale (another MiniLM installed) is rebuilt; a process that loses a race uses the winner's.
    The stage-1 metrics are in ``pretraining.json`` inside the directory.
    """
    from .. import models as cache

    config = config or TinyVLMConfig()
    held = _check_held_out(held_out_types)
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "held_out_types": list(held),
        "config": config.to_dict(),
        "eval_per_type": eval_per_type,
    }
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache.default_cache_dir()
    target = root / "models" / f"easyvqa-vlm-{_settings_key(settings)}"
    source = _text_weights_file(config)
    if cache._is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cache._remove_leftovers(target)
    print(
        f"adalink: training the stage-1 easy-VQA VLM once into {target} ({steps} steps; reused afterwards)",
        file=sys.stderr,
        flush=True,
    )
    temp = target.parent / f".{target.name}.tmp-{cache._host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    temp.mkdir()
    try:
        model_dir = temp / "model"  # pretrain_vlm saves atomically; its output is then moved up into temp
        pretrain_vlm(
            model_dir,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            held_out_types=held,
            config=replace(config),
            eval_per_type=eval_per_type,
            progress=progress,
        )
        for entry in model_dir.iterdir():
            os.rename(entry, temp / entry.name)
        model_dir.rmdir()
        (temp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")
        cache._finish(temp, source)
        return _rename_into_place(temp, target, source)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _rename_into_place(temp: Path, target: Path, source: Path) -> Path:
    from .. import models as cache

    for _ in range(5):
        try:
            os.rename(temp, target)  # atomic; fails if target exists and is not empty
            cache._fsync(target.parent, directory=True)
            return target
        except OSError:
            if cache._is_complete(target, source):  # a concurrent build won: keep its directory, drop ours
                return target
            if not target.exists():
                continue
            aside = target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"
            try:  # an unfinished or outdated target: move it out of the way, then retry the rename
                os.rename(target, aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
    raise RuntimeError(f"Could not move the stage-1 VLM into {target}.")
