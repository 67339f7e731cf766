"""Stage 1 of the easy-VQA experiments: building the "pre-trained VLM" that every PEFT method then adapts.

- :func:`pretrain_vlm`: the vision encoder is pre-trained as an image classifier, then vision encoder, projector and
  head are trained with MiniLM frozen on easy-VQA train *without* the held-out question types (default
  ``yesno-shape``), so that a second stage can adapt the frozen VLM to the held-out type with each PEFT method. The
  head still covers all 13 answers.
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

from ..data.easyvqa import COLOR_NAMES, QUESTION_TYPES, SHAPE_NAMES, VQAExample, load_easyvqa, load_images
from ..training.formats import ModelCall
from ..training.progress import progress_bar
from ..training.stream import TaskExample
from ..training.vqa import ANSWER_NAMES, VQAFormat
from .vlm import TinyVLM, TinyVLMConfig, resolve_text_model_path

__all__ = [
    "DEFAULT_PRETRAIN",
    "PRETRAIN_FILE",
    "cached_pretrained_vlm",
    "evaluate_vlm",
    "pretrain_vision",
    "pretrain_vlm",
]

# Stage-1 settings used by cached_pretrained_vlm unless overridden (about 4–5 minutes on 2 CPU cores).
DEFAULT_PRETRAIN: dict[str, Any] = {
    "steps": 400,
    "batch_size": 32,
    "lr": 1e-3,
    "seed": 0,
    "held_out_types": ("yesno-shape",),
    "vision_steps": 300,
    "vision_batch_size": 64,
    "vision_lr": 2e-3,
}
_RECIPE_VERSION = 1  # bump when the training code changes what a setting produces
_MAX_LENGTH = 32  # easy-VQA questions are at most 13 MiniLM tokens
PRETRAIN_FILE = "pretraining.json"


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
        for start in progress_bar(range(0, len(examples), batch_size), enabled=progress, desc="eval", leave=False):
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


class _Sampler:
    """Seeded draws, from the pooled examples or type-balanced, optionally answer-balanced per yes/no question.

    Type-balanced: the k-th example of the run comes from type ``types[k mod n]`` (types in a seeded order), so every
    batch holds the types in (nearly) equal shares; each type is walked through its own permutation (reshuffled each
    pass). Answer-balanced (yes/no types only): an example is drawn from a uniformly chosen (question text, answer)
    group, so within the draws every question is answered "yes" as often as "no".
    """

    def __init__(
        self, examples: Sequence[VQAExample], *, seed: int, balance_types: bool, balance_answers: bool = False
    ) -> None:
        if balance_types:
            groups: dict[str, list[VQAExample]] = {}
            for example in examples:
                groups.setdefault(example.question_type, []).append(example)
            self.pools = [groups[t] for t in QUESTION_TYPES if t in groups]
        else:
            self.pools = [list(examples)]
        self.generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.pools), generator=self.generator).tolist()
        self.pools = [self.pools[i] for i in order]
        self.answer_groups: list[list[list[VQAExample]] | None] = []
        for pool in self.pools:
            yes_no = balance_answers and all(e.question_type.startswith("yesno") for e in pool)
            by_pair: dict[tuple[str, int], list[VQAExample]] = {}
            for example in pool if yes_no else ():
                by_pair.setdefault((example.question, example.answer), []).append(example)
            self.answer_groups.append([by_pair[key] for key in sorted(by_pair)] if yes_no else None)
        self.queues: list[list[int]] = [[] for _ in self.pools]
        self.drawn = 0

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def __call__(self, count: int) -> list[VQAExample]:
        picked = []
        for _ in range(count):
            pool = self.drawn % len(self.pools)
            self.drawn += 1
            groups = self.answer_groups[pool]
            if groups is not None:
                group = groups[self._randint(len(groups))]
                picked.append(group[self._randint(len(group))])
                continue
            if not self.queues[pool]:
                self.queues[pool] = torch.randperm(len(self.pools[pool]), generator=self.generator).tolist()
            picked.append(self.pools[pool][self.queues[pool].pop()])
        return picked


def _image_labels(examples: Sequence[VQAExample]) -> dict[str, tuple[int, int]]:
    """Per image path: (colour index, shape index), -1 where no training question of that type tells it."""
    labels: dict[str, list[int]] = {}
    for example in examples:
        slot = {"color": 0, "shape": 1}.get(example.question_type)
        if slot is None:
            continue
        names = COLOR_NAMES if slot == 0 else SHAPE_NAMES
        labels.setdefault(example.image_path, [-1, -1])[slot] = names.index(ANSWER_NAMES[example.answer])
    return {path: (color, shape) for path, (color, shape) in labels.items()}


def pretrain_vision(
    vision: nn.Module,
    examples: Sequence[VQAExample],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    image_size: int = 64,
    progress: bool = True,
) -> list[float]:
    """Stage 1a: train the vision encoder alone as an image classifier (colour and shape), as PaLI's ViT is.

    The labels come only from the "what colour" / "what shape" questions among ``examples`` (so a held-out type
    leaks nothing); two linear heads on the mean of the image tokens, discarded afterwards.

    Returns:
        The loss of every step.
    """
    labelled = sorted(_image_labels(examples).items())
    if not labelled:
        return []
    width = vision.norm.normalized_shape[0]
    heads = nn.ModuleList([nn.Linear(width, len(COLOR_NAMES)), nn.Linear(width, len(SHAPE_NAMES))])
    params = [*vision.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, steps, warmup))
    generator = torch.Generator().manual_seed(seed + 1)
    queue: list[int] = []
    losses = []
    vision.train()
    for _ in progress_bar(range(steps), enabled=progress, desc="stage-1a vision", unit="step"):
        picked = []
        for _ in range(batch_size):
            if not queue:
                queue = torch.randperm(len(labelled), generator=generator).tolist()
            picked.append(labelled[queue.pop()])
        pixels = load_images([path for path, _ in picked], size=image_size)
        targets = torch.tensor([label for _, label in picked])  # (B, 2)
        pooled = vision(pixels).mean(1)
        loss = sum(
            nn.functional.cross_entropy(head(pooled), targets[:, i], ignore_index=-1)
            for i, head in enumerate(heads)
            if (targets[:, i] >= 0).any()
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 6))
    return losses


def pretrain_vlm(
    out_dir: str | os.PathLike | None,
    *,
    steps: int = DEFAULT_PRETRAIN["steps"],
    batch_size: int = DEFAULT_PRETRAIN["batch_size"],
    lr: float = DEFAULT_PRETRAIN["lr"],
    seed: int = DEFAULT_PRETRAIN["seed"],
    held_out_types: Sequence[str] = DEFAULT_PRETRAIN["held_out_types"],
    vision_steps: int = DEFAULT_PRETRAIN["vision_steps"],
    vision_batch_size: int = DEFAULT_PRETRAIN["vision_batch_size"],
    vision_lr: float = DEFAULT_PRETRAIN["vision_lr"],
    config: TinyVLMConfig | None = None,
    eval_per_type: int | None = None,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.05,
    max_grad_norm: float = 1.0,
    balance_types: bool = True,
    balance_answers: bool = False,
    progress: bool = True,
    limit_train: int | None = None,
) -> dict[str, Any]:
    """Stage 1: build a "pre-trained VLM" from a new :class:`TinyVLM` with MiniLM frozen throughout.

    Two phases, as PaLI pairs a separately pre-trained ViT with a language model:

    a. ``vision_steps`` steps of :func:`pretrain_vision`: the vision encoder alone learns colour and shape as image
       classification (labels from the training split's "what" questions of the kept types). From scratch, learning
       shapes only through the frozen encoder is several times slower.
    b. ``steps`` steps on VQA: vision encoder, projector and head trained through the frozen MiniLM on easy-VQA train
       without ``held_out_types``. With ``balance_types`` (default) every batch holds the kept question types in
       equal shares: at natural frequencies the yes/no colour questions are 2/3 of the data and the question text
       alone answers 88 % of them (easy-VQA's templates are biased), so the "what" questions, which force the model
       to read the image, would come too rarely for a short CPU run.

    AdamW, linear warm-up and cosine decay, gradient clipping; MiniLM runs in train mode (its dropout on), as the
    PEFT methods of stage 2 will.

    Args:
        out_dir: Where the model is saved (atomically, :meth:`TinyVLM.save_pretrained`, with the returned metrics in
            ``pretraining.json``); ``None`` saves nothing.
        steps, batch_size, lr: Phase b's optimiser steps, examples per step and peak learning rate.
        seed: Seed of the initialisation, data order and dropout.
        held_out_types: Question types left out of training (a proper subset of ``QUESTION_TYPES``).
        vision_steps, vision_batch_size, vision_lr: Phase a (``vision_steps=0`` skips it).
        config: The architecture (default :class:`TinyVLMConfig`).
        eval_per_type: Score on the first N test examples of each question type (``None``: the whole test split).
        limit_train: Use only the first N training examples (tests).

    Returns:
        Metrics: ``accuracy`` (test accuracy per question type and ``all``, the held-out types included: zero-shot),
        ``majority_baseline`` per type, ``train_seconds`` (both phases; ``vision_seconds`` of them phase a),
        ``losses`` (phase b, per step), ``initial_loss`` / ``final_loss`` (means of phase b's first and last 10
        steps), ``vision_losses``, ``trainable_params`` per part and the settings.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("vision_batch_size", vision_batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected a positive integer.")
    if not isinstance(vision_steps, int) or vision_steps < 0:
        raise ValueError(f"vision_steps={vision_steps!r} is invalid: expected a non-negative integer.")
    if not (lr > 0 and vision_lr > 0):
        raise ValueError(f"lr={lr!r} and vision_lr={vision_lr!r} must be positive numbers.")
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
    counts = model.parameter_counts()
    began = time.perf_counter()
    vision_losses = pretrain_vision(
        model.vision,
        train,
        steps=vision_steps,
        batch_size=vision_batch_size,
        lr=vision_lr,
        seed=seed,
        image_size=config.image_size,
        progress=progress,
    )
    vision_seconds = time.perf_counter() - began

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    warmup = max(1, round(warmup_ratio * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, steps, warmup))
    fmt = VQAFormat(image_size=config.image_size)
    tokenizer = _tokenizer(config)
    draw = _Sampler(train, seed=seed, balance_types=balance_types, balance_answers=balance_answers)
    losses: list[float] = []
    bar = progress_bar(range(steps), enabled=progress, desc="stage-1b VLM", unit="step")
    for _ in bar:
        batch = fmt.collate([TaskExample(0, e) for e in draw(batch_size)], tokenizer, _MAX_LENGTH)
        loss = fmt.loss(lambda inputs, task_ids: model(**inputs), batch) / fmt.count(batch)  # mean over the batch
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"Stage-1 loss became {value} at step {len(losses) + 1}; try a lower lr.")
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(value, 6))
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
        "vision_seconds": round(vision_seconds, 1),
        "initial_loss": round(sum(losses[:10]) / len(losses[:10]), 4),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "losses": losses,
        "vision_losses": vision_losses,
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
            "vision_steps": vision_steps,
            "vision_batch_size": vision_batch_size,
            "vision_lr": vision_lr,
            "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio,
            "max_grad_norm": max_grad_norm,
            "balance_types": balance_types,
            "balance_answers": balance_answers,
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
    vision_steps: int = DEFAULT_PRETRAIN["vision_steps"],
    vision_batch_size: int = DEFAULT_PRETRAIN["vision_batch_size"],
    vision_lr: float = DEFAULT_PRETRAIN["vision_lr"],
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
        "vision_steps": vision_steps,
        "vision_batch_size": vision_batch_size,
        "vision_lr": vision_lr,
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
            vision_steps=vision_steps,
            vision_batch_size=vision_batch_size,
            vision_lr=vision_lr,
            config=replace(config),
            eval_per_type=eval_per_type,
            progress=progress,
        )
        for entry in model_dir.iterdir():
            os.rename(entry, temp / entry.name)
        model_dir.rmdir()
        (temp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")
        cache._finish(temp, source)
        return cache._rename_into_place(temp, target, source, what="the stage-1 VLM")
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
