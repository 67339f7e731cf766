"""Bench profiles: how long each run trains, on how many examples, and with which microbatch per model.

``paper`` is the survey's protocol (Lialin et al., "Scaling Down to Scale Up", §11.1): batch 32, 3 epochs or at
least 100 optimiser steps, max input 512 tokens, a learning-rate sweep over {1e-3, 1e-4, 1e-5} on the first seed,
then two more seeds at the best rate; the microbatch is fixed per model (the survey's Table 3) and is the same for
every method. ``quick`` keeps the protocol's shape but trains a few dozen steps on short inputs with one seed and
each method's own default learning rate, so that every method on MiniLM (tweets and bbc) fits in 20 minutes on two
CPU cores. Its new classification head trains at 1e-2 for every method: at 1e-3 a fresh head barely moves in 48
steps and most methods would score the majority class. ``standard`` is the comparison sized for two CPU cores:
200 steps at batch 16, each method's rate swept over 0.3x, 1x and 3x its own default on one task's validation
split, three seeds at the chosen rate (about 5.6 hours for every method on MiniLM, tweets and bbc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["PROFILES", "Profile"]


@dataclass(frozen=True)
class Profile:
    """The training and measuring budget of every run of one bench."""

    name: str
    batch_size: int  # global batch per optimiser step (the survey: 32)
    max_length: int  # max input tokens (the survey: 512)
    max_steps: int | None  # fixed optimiser steps; None = `epochs` over the train split, at least `min_steps`
    epochs: float = 3.0  # epochs when max_steps is None (the survey: 3)
    min_steps: int = 100  # lower bound on steps when max_steps is None (the survey: 100)
    max_eval: int | None = None  # first N validation/test examples per task; None = the whole split
    seeds: tuple[int, ...] = (0, 1, 2)  # first seed sweeps the learning rates, the others re-run the best
    lrs: tuple[str, ...] = ("1e-3", "1e-4", "1e-5")  # "default" = the method's own default; "3x" = 3 x default
    # the task whose validation split picks each method's rate (first seed); the other tasks re-use that rate.
    # None = every task sweeps its own rate
    sweep_task: str | None = None
    # learning rate of the new classification head (the same for every method); None = the method's rate
    head_lr: float | None = None
    # model alias -> microbatch (examples per forward/backward); the same for every method of that model
    microbatch: dict[str, int] = field(default_factory=dict)
    infer_batches: int = 4  # batches of test inputs timed for inference throughput
    infer_batch_size: int = 32  # examples per timed inference batch
    infer_rounds: int = 3  # alternating rounds (unmerged, merged) of the inference timing
    generic_texts: int = 32  # held-out generic texts for the forgetting probe
    timeout_s: int = 3600  # one run's wall-clock limit

    def steps(self, train_examples: int) -> int:
        """Optimiser steps of a run on a train split of ``train_examples`` examples."""
        if self.max_steps is not None:
            return self.max_steps
        return max(self.min_steps, math.ceil(self.epochs * train_examples / self.batch_size))

    def grad_accum(self, model: str) -> int:
        """Micro-batches per step for ``model``: batch_size / microbatch (1 when the model has no entry)."""
        micro = min(self.microbatch.get(model.lower(), self.batch_size), self.batch_size)
        if self.batch_size % micro:
            raise ValueError(f"Profile {self.name!r}: microbatch {micro} does not divide batch {self.batch_size}.")
        return self.batch_size // micro


PROFILES: dict[str, Profile] = {
    # MiniLM: ~0.33 s/step for 8x64 tokens on 2 idle cores -> 48 steps ~ 16 s of training per run.
    "quick": Profile(
        name="quick",
        batch_size=8,
        max_length=64,
        max_steps=48,
        max_eval=256,
        seeds=(0,),
        lrs=("default",),
        head_lr=1e-2,  # a fresh head at 1e-3 barely moves in 48 steps: every method would score the majority class
        infer_batches=2,
        infer_batch_size=32,
        infer_rounds=3,
        generic_texts=32,
        timeout_s=1800,
    ),
    # Sized for 2 CPU cores: every method separates from the others (see BENCHMARKS.md, "standard profile").
    # 200 steps at batch 16: the 200-step MiniLM runs of `adalink experiment table5` already separate AdaLink from
    # full tuning by 5 points at a standard error under 1. Each method's rate is swept over 0.3x, 1x and 3x its
    # default on tweets' validation split with seed 0; bbc re-uses the rate chosen on tweets. 18 methods x
    # (3 + 2 tweets + 3 bbc) = 144 runs of about 140 s (one run of AdaLink at 64 tokens: 127 s of training on
    # 2 cores; full tuning 218 s) = about 5.6 hours of the two cores.
    "standard": Profile(
        name="standard",
        batch_size=16,
        max_length=64,
        max_steps=200,
        max_eval=1000,
        seeds=(0, 1, 2),
        lrs=("0.3x", "1x", "3x"),
        sweep_task="tweets",
        head_lr=1e-2,  # the new head of every method, full tuning included
        infer_batches=2,
        infer_batch_size=32,
        infer_rounds=3,
        generic_texts=32,
        timeout_s=1800,
    ),
    # The survey's protocol (§11.1, Table 3) for a GPU.
    "paper": Profile(
        name="paper",
        batch_size=32,
        max_length=512,
        max_steps=None,
        epochs=3.0,
        min_steps=100,
        max_eval=None,
        seeds=(0, 1, 2),
        lrs=("1e-3", "1e-4", "1e-5"),
        microbatch={"minilm": 32, "smollm2-135m": 8},
        infer_batches=8,
        infer_batch_size=32,
        infer_rounds=5,
        generic_texts=128,
        timeout_s=6 * 3600,
    ),
}
