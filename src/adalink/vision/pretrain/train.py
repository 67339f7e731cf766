"""Stage 1 proper: train a new :class:`~adalink.vision.TinyVLM` into the "pre-trained VLM" (MiniLM frozen)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...data.easyvqa import COLOR_NAMES, QUESTION_TYPES, SHAPE_NAMES, VQAExample, load_easyvqa
from ...data.images import load_images
from ...errors import RunFailedError, UsageError
from ...progress import progress_bar
from ...tasks.examples import TaskExample
from ...tasks.formats import ModelCall
from ..config import TinyVLMConfig, resolve_text_model_path
from ..vlm import TinyVLM
from ..vqa import ANSWER_NAMES, VQAFormat
from .sampling import QuestionSampler
from .settings import Stage1Settings

__all__ = ["PRETRAIN_FILE", "evaluate_vlm", "pretrain_vision", "pretrain_vlm"]

_MAX_LENGTH = 32  # easy-VQA questions are at most 13 MiniLM tokens
PRETRAIN_FILE = "pretraining.json"


def _tokenizer(config: TinyVLMConfig) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_model_path(config.text_model))


@torch.no_grad()
def evaluate_vlm(
    model: nn.Module,
    tokenizer: Any,
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
    width = int(vision.norm.normalized_shape[0])
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
    settings: Stage1Settings | None = None,
    *,
    eval_per_type: int | None = None,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.05,
    max_grad_norm: float = 1.0,
    balance_types: bool = True,
    balance_answers: bool = False,
    progress: bool = True,
    limit_train: int | None = None,
    **overrides: Any,
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
        settings: Steps, batch sizes, learning rates, seed, held-out question types and architecture of both phases
            (default :class:`Stage1Settings`).
        eval_per_type: Score on the first N test examples of each question type (``None``: the whole test split).
        weight_decay, warmup_ratio, max_grad_norm: Phase b's AdamW weight decay, warm-up share and clipping norm.
        balance_types, balance_answers: How phase b draws its examples (:class:`QuestionSampler`).
        limit_train: Use only the first N training examples (tests).
        **overrides: Fields of :class:`Stage1Settings` that replace those of ``settings`` (``steps=24``, ...).

    Returns:
        Metrics: ``accuracy`` (test accuracy per question type and ``all``, the held-out types included: zero-shot),
        ``majority_baseline`` per type, ``train_seconds`` (both phases; ``vision_seconds`` of them phase a),
        ``losses`` (phase b, per step), ``initial_loss`` / ``final_loss`` (means of phase b's first and last 10
        steps), ``vision_losses``, ``trainable_params`` per part and the settings.
    """
    settings = Stage1Settings.of(settings, overrides)
    config = settings.config
    data = load_easyvqa(limit_train=limit_train)
    if data.answer_names != ANSWER_NAMES:
        raise UsageError(f"easy-VQA answers {data.answer_names} differ from the head's {ANSWER_NAMES}.")
    train = [e for e in data.train if e.question_type not in settings.held_out_types]
    if not train:
        raise UsageError("No training examples left after removing the held-out question types.")

    torch.manual_seed(settings.seed)
    model = TinyVLM(config)
    model.text_model.requires_grad_(False)
    counts = model.parameter_counts()
    began = time.perf_counter()
    vision_losses = pretrain_vision(
        model.vision,
        train,
        steps=settings.vision_steps,
        batch_size=settings.vision_batch_size,
        lr=settings.vision_lr,
        seed=settings.seed,
        image_size=config.image_size,
        progress=progress,
    )
    vision_seconds = time.perf_counter() - began

    fmt = VQAFormat(image_size=config.image_size)
    tokenizer = _tokenizer(config)
    draw = QuestionSampler(train, seed=settings.seed, balance_types=balance_types, balance_answers=balance_answers)
    optimiser = {"weight_decay": weight_decay, "warmup_ratio": warmup_ratio, "max_grad_norm": max_grad_norm}
    losses = _train_vqa(model, fmt, tokenizer, draw, settings, progress=progress, **optimiser)
    seconds = time.perf_counter() - began

    test = _test_subset(data.test, eval_per_type)
    metrics: dict[str, Any] = {
        "accuracy": evaluate_vlm(model, tokenizer, test, fmt=fmt, progress=progress),
        "majority_baseline": {t: round(data.majority_baseline(t), 4) for t in QUESTION_TYPES},
        "eval_examples": len(test),
        "held_out_types": list(settings.held_out_types),
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
            "total": sum(p.numel() for p in model.parameters() if p.requires_grad),
        },
        "frozen_text_params": counts["text"],
        "settings": {
            **{k: v for k, v in settings.to_dict().items() if k != "held_out_types"},
            **optimiser,
            "balance_types": balance_types,
            "balance_answers": balance_answers,
            "limit_train": limit_train,
        },
    }
    if out_dir is not None:
        model.save_pretrained(out_dir, extra_json={PRETRAIN_FILE: metrics})
    return metrics


def _train_vqa(
    model: TinyVLM,
    fmt: VQAFormat,
    tokenizer: Any,
    draw: QuestionSampler,
    settings: Stage1Settings,
    *,
    weight_decay: float,
    warmup_ratio: float,
    max_grad_norm: float,
    progress: bool,
) -> list[float]:
    """Phase b: train every parameter that requires grad on VQA batches; returns the loss of every step."""
    steps = settings.steps
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=weight_decay)
    warmup = max(1, round(warmup_ratio * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, steps, warmup))
    losses: list[float] = []
    bar = progress_bar(range(steps), enabled=progress, desc="stage-1b VLM", unit="step")
    for _ in bar:
        batch = fmt.collate([TaskExample(0, e) for e in draw(settings.batch_size)], tokenizer, _MAX_LENGTH)
        loss = fmt.loss(lambda inputs, task_ids: model(**inputs), batch) / fmt.count(batch)  # mean over the batch
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RunFailedError(f"Stage-1 loss became {value} at step {len(losses) + 1}; try a lower lr.")
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(value, 6))
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    bar.close()
    return losses
