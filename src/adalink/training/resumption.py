"""A run's progress saved and read back: the ``--save-every`` checkpoints (every process's RNG state, the whole
trainable weights and optimiser state, gathered from every shard in an FSDP run) and ``--resume`` from the last one
(weights, optimiser, schedule, RNG and ``--eval-every``'s selection state). The files and their checks are
:mod:`.checkpoints`; what a sharded run gathers and scatters is :mod:`.sharding`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import UsageError
from .args import TrainArgs
from .checkpoints import (
    CheckpointError,
    latest_checkpoint,
    load_trainable,
    optimizer_state_by_index,
    optimizer_state_by_name,
    read_best,
    read_checkpoint,
    restore_rng,
    rng_state,
    trainable_tensors,
    write_checkpoint,
)
from .selection import Selection
from .sharding import full_optimizer_state, full_trainable, is_sharded, load_full_optimizer_state, optimizer_order

__all__ = ["Resumable", "Totals", "load_sharded_optimizer", "resume_or_start", "save_checkpoint"]


class Resumable(Protocol):
    """What a checkpoint saves and a resumption restores (the training loop's run)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    checkpoints: Path
    selection: Selection


@dataclass
class Totals:
    """Progress that checkpoints carry over a resumption."""

    step: int = 0  # optimiser steps done
    tokens: int = 0  # input tokens trained on, all processes
    seconds: float = 0.0  # time spent in steps (not in evaluation or checkpoints)
    history: list[float] = field(default_factory=list)  # mean loss of every step

    def checkpoint_state(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "train_seconds": self.seconds, "history": self.history}


def resume_or_start(args: TrainArgs, accelerator: Any, run: Resumable) -> tuple[Totals, dict | None]:
    """With ``--resume``, restore the last checkpoint into the unprepared ``run``; else seed dropout. A sharded run's
    optimiser state is returned instead of loaded: :func:`load_sharded_optimizer` loads it once the model is sharded.
    """
    checkpoint = latest_checkpoint(run.checkpoints) if args.run.resume else None
    if args.run.resume and checkpoint is None:
        accelerator.print(f"--resume: no checkpoint in {run.checkpoints}; starting from step 0.")
    if checkpoint is None:
        torch.manual_seed(args.run.seed * 7919 + accelerator.process_index)  # dropout masks: per process, reproducible
        return Totals(), None
    tensors, optim_state, sched_state, state = read_checkpoint(checkpoint)
    key = args.resume_key()
    if state["args"] != key:
        changed = sorted(k for k in state["args"].keys() | key.keys() if state["args"].get(k) != key.get(k))
        if "lr" in changed and state["args"].get("lr") is None:  # no --lr given there, so no value to pass here
            raise UsageError(
                f"--resume: {checkpoint} was made before runs recorded the learning rate they resolved (its lr is "
                "null: the method's default of that adalink version, which may differ from today's; AdaLink's moved "
                "from 2e-3 to 5e-3). It cannot be resumed exactly; start the run again, or resume it with the "
                "adalink version that made it."
            )
        raise UsageError(f"--resume: {checkpoint} was made with different settings for {changed}; pass the same ones.")
    load_trainable(run.model, tensors, checkpoint)
    if run.selection.enabled:
        run.selection.restore(state["selection"], read_best(checkpoint))
    sharded = is_sharded(accelerator)
    try:
        if not sharded:  # a sharded run's checkpoint keys the state by name: re-indexed, it loads here too
            names = optimizer_order(run.model, run.optimizer)
            run.optimizer.load_state_dict(optimizer_state_by_index(optim_state, names))
        run.scheduler.load_state_dict(sched_state)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: its optimiser state does not fit this run ({err}).") from None
    restore_rng(checkpoint, accelerator.process_index)
    accelerator.print(f"Resuming from {checkpoint} (step {state['step']}).")
    totals = Totals(state["step"], state["tokens"], state["train_seconds"], state["history"])
    return totals, optim_state if sharded else None


def load_sharded_optimizer(accelerator: Any, run: Resumable, state: dict) -> None:
    """Load a checkpoint's optimiser state into the prepared (sharded) optimiser; every process calls it."""
    names = optimizer_order(accelerator.unwrap_model(run.model), run.optimizer)
    try:
        load_full_optimizer_state(accelerator, run.model, run.optimizer, optimizer_state_by_name(state, names))
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"The checkpoint's optimiser state does not fit this sharded run ({err}).") from None


def save_checkpoint(args: TrainArgs, accelerator: Any, run: Resumable, totals: Totals) -> None:
    """Every process's RNG state gathered (and a sharded run's weights and optimiser state); the main process writes
    the checkpoint of step ``totals.step``."""
    from accelerate.utils import gather_object

    rng_states = gather_object([rng_state()]) if accelerator.num_processes > 1 else [rng_state()]
    sharded = is_sharded(accelerator)
    trainable = full_trainable(accelerator, run.model) if sharded else None  # collectives: every process gathers
    optimizer = full_optimizer_state(accelerator, run.model, run.optimizer) if sharded else None
    if accelerator.is_main_process:
        state = {"args": args.resume_key(), **totals.checkpoint_state()}
        if run.selection.enabled:
            state["selection"] = run.selection.checkpoint_state()
        write_checkpoint(
            run.checkpoints,
            totals.step,
            trainable=trainable if trainable is not None else trainable_tensors(accelerator.unwrap_model(run.model)),
            optimizer=optimizer if optimizer is not None else run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(),
            rng_states=rng_states,
            state=state,
            keep=args.run.keep_checkpoints,
            best=run.selection.best_weights,
        )
    accelerator.wait_for_everyone()
