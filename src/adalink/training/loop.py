"""``adalink train``: the training loop, as a recipe of small steps composed from the harness's pieces.

The loop runs under ``accelerate`` (one process, or several with ``accelerate launch``); the data order is a pure
function of (seed, step) (:mod:`.stream`), so checkpoints need no data-loader state and a resumed run matches an
uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import TextClassificationData, VQAData
from .args import TrainArgs
from .calls import routed_call, to_device
from .checkpoints import CheckpointError, latest_checkpoint, read_checkpoint, restore_rng, rng_state, write_checkpoint
from .evaluation import evaluate
from .formats import TaskInfo
from .loading import ModelSetup, load_tasks, setup_model
from .methods import AttachedMethod, attach_method
from .optimizer import build_optimizer, build_schedule, head_parameter_ids
from .outputs import run_metrics, save_outputs
from .progress import progress_bar
from .stream import MixedTaskStream

__all__ = ["TrainingDivergedError", "train"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class _Run:
    """What one training run works on; ``model`` and ``optimizer`` are accelerate's wrappers once prepared."""

    setup: ModelSetup
    attached: AttachedMethod
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    stream: MixedTaskStream
    checkpoints: Path


@dataclass
class _Totals:
    """Progress that checkpoints carry over a resumption."""

    step: int = 0  # optimiser steps done
    tokens: int = 0  # input tokens trained on, all processes
    seconds: float = 0.0  # time spent in steps (not in evaluation or checkpoints)
    history: list[float] = field(default_factory=list)  # mean loss of every step

    def checkpoint_state(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "train_seconds": self.seconds, "history": self.history}


def train(args: TrainArgs) -> dict[str, Any]:
    """Train, evaluate on the test split(s), save the adapter, ``run.json`` and ``metrics.json``."""
    args.validate()
    accelerator = _accelerator(args)
    datasets = load_tasks(args)
    run = _build(args, datasets)
    totals = _resume_or_start(args, accelerator, run)
    run.model, run.optimizer = accelerator.prepare(run.model, run.optimizer)
    _train_steps(args, accelerator, run, totals)
    metrics = _evaluate_and_save(args, accelerator, run, datasets, totals)
    accelerator.wait_for_everyone()
    return metrics


def _accelerator(args: TrainArgs):
    """The process group, refused when the launcher and accelerate disagree or the batch does not split evenly."""
    from accelerate import Accelerator

    # On a machine without CUDA, gloo on CPU; without cpu=True accelerate would start lone single-process runs.
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=not torch.cuda.is_available())
    world = accelerator.num_processes
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world:
        raise ValueError(
            f"The launcher started {launched} processes but accelerate joined {world}: each would train alone "
            "into the same directory. Launch with `accelerate launch --multi_gpu --num_processes N -m adalink train`."
        )
    if args.batch_size % (world * args.grad_accum):
        raise ValueError(
            f"--batch-size {args.batch_size} must split evenly over {world} process(es) "
            f"x --grad-accum {args.grad_accum}."
        )
    return accelerator


def _build(args: TrainArgs, datasets: list[TextClassificationData | VQAData]) -> _Run:
    """The base model with the method attached, its optimiser and schedule, and the stream of training batches."""
    setup = setup_model(args.model, args.format, [TaskInfo(d.name, d.label_names) for d in datasets])
    base = setup.build_base(seed=args.seed)
    attached = attach_method(
        args.method,
        base,
        rank=args.rank,
        dropout=args.dropout,
        tasks=[d.name for d in datasets],
        heads=setup.fmt.head_modules(base),
        modalities=setup.fmt.modalities,
        options=args.method_options(),
    )
    model = attached.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(args, trainable, head_parameter_ids(model, setup.fmt))
    scheduler = build_schedule(args, optimizer)
    stream = MixedTaskStream(
        [d.train for d in datasets], seed=args.seed, global_batch_size=args.batch_size, mixing=args.task_mixing
    )
    checkpoints = args.resolved_output_dir() / "checkpoints"
    return _Run(setup, attached, model, optimizer, scheduler, stream, checkpoints)


def _resume_or_start(args: TrainArgs, accelerator, run: _Run) -> _Totals:
    """With ``--resume``, restore the last checkpoint (weights, optimiser, schedule, RNG); else seed dropout."""
    checkpoint = latest_checkpoint(run.checkpoints) if args.resume else None
    if args.resume and checkpoint is None:
        accelerator.print(f"--resume: no checkpoint in {run.checkpoints}; starting from step 0.")
    if checkpoint is None:
        torch.manual_seed(args.seed * 7919 + accelerator.process_index)  # dropout masks: per process, reproducible
        return _Totals()
    tensors, optim_state, sched_state, state = read_checkpoint(checkpoint)
    key = args.resume_key()
    if state["args"] != key:
        changed = sorted(k for k in state["args"].keys() | key.keys() if state["args"].get(k) != key.get(k))
        raise ValueError(f"--resume: {checkpoint} was made with different settings for {changed}; pass the same ones.")
    _restore_trainable(run.model, tensors, checkpoint)
    try:
        run.optimizer.load_state_dict(optim_state)
        run.scheduler.load_state_dict(sched_state)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: its optimiser state does not fit this run ({err}).") from None
    restore_rng(checkpoint, accelerator.process_index)
    accelerator.print(f"Resuming from {checkpoint} (step {state['step']}).")
    return _Totals(state["step"], state["tokens"], state["train_seconds"], state["history"])


def _restore_trainable(model: torch.nn.Module, tensors: dict[str, torch.Tensor], checkpoint: Path) -> None:
    """Copy a checkpoint's trainable tensors into ``model``, refusing names or shapes that do not fit it."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    wrong = sorted(n for n in params if n not in tensors or tensors[n].shape != params[n].shape)
    if wrong or set(tensors) - set(params):
        raise CheckpointError(
            f"{checkpoint} does not fit this run's trainable parameters (missing or differently shaped: {wrong[:5]}, "
            f"unexpected: {sorted(set(tensors) - set(params))[:5]})."
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])


def _train_steps(args: TrainArgs, accelerator, run: _Run, totals: _Totals) -> None:
    """Steps ``totals.step + 1 .. --max-steps``, with a progress bar and a checkpoint every ``--save-every``."""
    call = routed_call(run.model, run.attached.task_aware)
    run.model.train()
    progress = progress_bar(
        range(totals.step, args.max_steps),
        enabled=accelerator.is_main_process,
        initial=totals.step,
        total=args.max_steps,
        desc="train",
        unit="step",
    )
    for step in progress:
        began = time.perf_counter()
        mean_loss, step_tokens = _accumulate_gradients(args, accelerator, run, call, step)
        if not math.isfinite(mean_loss):
            last = latest_checkpoint(run.checkpoints)
            raise TrainingDivergedError(
                f"The loss became {mean_loss} at step {step + 1}; stopped without applying it. Last good checkpoint: "
                f"{last if last else 'none yet'}. Try a lower --lr."
            )
        _apply_update(args, accelerator, run)
        totals.seconds += time.perf_counter() - began
        totals.tokens += int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), reduction="sum"))
        totals.history.append(round(mean_loss, 6))
        totals.step = step + 1
        recent = totals.history[-20:]
        progress.set_postfix(
            loss=f"{sum(recent) / len(recent):.4f}",
            lr=f"{run.scheduler.get_last_lr()[0]:.2e}",
            tok_s=f"{totals.tokens / max(totals.seconds, 1e-9):.0f}",
        )
        if totals.step % args.save_every == 0 or totals.step == args.max_steps:
            _checkpoint(args, accelerator, run, totals)
    progress.close()


def _accumulate_gradients(args: TrainArgs, accelerator, run: _Run, call, step: int) -> tuple[float, int]:
    """Forward and backward over this process's micro-batches of ``step``; (mean loss of all processes, tokens).

    The loss is the mean over the GLOBAL batch's examples (classification) or target tokens (text-to-text), whatever
    the split into processes and micro-batches: each sums its losses and divides by the global count; DDP's gradient
    average over processes is undone by the factor ``world``.
    """
    world, fmt = accelerator.num_processes, run.setup.fmt
    micro = args.batch_size // world // args.grad_accum
    items = run.stream.batch(step, rank=accelerator.process_index, world_size=world)
    batches = [
        to_device(
            fmt.collate(items[i * micro : (i + 1) * micro], run.setup.tokenizer, args.max_length), accelerator.device
        )
        for i in range(args.grad_accum)
    ]
    count = sum(fmt.count(b) for b in batches)
    global_count = int(accelerator.reduce(torch.tensor(count, device=accelerator.device), reduction="sum"))
    step_loss, step_tokens = torch.zeros((), device=accelerator.device), 0
    for i, batch in enumerate(batches):
        sync = nullcontext() if i == args.grad_accum - 1 else accelerator.no_sync(run.model)
        with sync, accelerator.autocast():
            loss = fmt.loss(call, batch) * world / max(global_count, 1)
            accelerator.backward(loss)
        step_loss += loss.detach()
        step_tokens += int(batch["attention_mask"].sum())
    return float(accelerator.reduce(step_loss, reduction="mean")), step_tokens


def _apply_update(args: TrainArgs, accelerator, run: _Run) -> None:
    if args.max_grad_norm > 0:
        accelerator.clip_grad_norm_(run.model.parameters(), args.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def _checkpoint(args: TrainArgs, accelerator, run: _Run, totals: _Totals) -> None:
    """Every process's RNG state gathered; the main process writes the checkpoint of step ``totals.step``."""
    from accelerate.utils import gather_object

    rng_states = gather_object([rng_state()]) if accelerator.num_processes > 1 else [rng_state()]
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(run.model)
        write_checkpoint(
            run.checkpoints,
            totals.step,
            trainable={n: p for n, p in unwrapped.named_parameters() if p.requires_grad},
            optimizer=run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(),
            rng_states=rng_states,
            state={"args": args.resume_key(), **totals.checkpoint_state()},
            keep=args.keep_checkpoints,
        )
    accelerator.wait_for_everyone()


def _evaluate_and_save(
    args: TrainArgs, accelerator, run: _Run, datasets: list[TextClassificationData | VQAData], totals: _Totals
) -> dict[str, Any]:
    """On the main process: score the test split(s), write the outputs and print the score; elsewhere ``{}``."""
    unwrapped = accelerator.unwrap_model(run.model)
    if not accelerator.is_main_process:
        return {}
    path, fmt, tokenizer = run.setup
    rouge_l: dict[str, float] = {}
    scores = evaluate(
        unwrapped,
        run.attached.task_aware,
        fmt,
        tokenizer,
        datasets,
        split="test",
        max_examples=args.max_eval,
        max_length=args.max_length,
        rouge_l=rouge_l,
    )
    metrics = run_metrics(
        args, datasets, scores, unwrapped, fmt, tokens=totals.tokens, seconds=totals.seconds, history=totals.history
    )
    if rouge_l:
        metrics["rouge_l"] = rouge_l
    out = args.resolved_output_dir()
    save_outputs(out, args, path, fmt, run.attached.saves_adapter, unwrapped, tokenizer, metrics)
    print(
        f"{fmt.name} {metrics['metric']} on test: {metrics['score']:.4f} "
        f"({', '.join(f'{k} {v:.4f}' for k, v in metrics['per_task'].items())}); saved to {out}"
    )
    return metrics
