"""Model selection during training (``--eval-every``): the validation score every N steps, the best weights so far
and early stopping (``--early-stopping-patience``).

:class:`Selection` is plain state that the checkpoints carry (:meth:`Selection.checkpoint_state` in ``state.json``,
the best weights in their own file), so a resumed run picks the same best step, and stops at the same step, as an
uninterrupted one. "Better" is a strictly higher mean score over the tasks: on a tie the earlier step stays best.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Selection"]


@dataclass
class Selection:
    every: int  # evaluate every N steps and at the last one (0 = never)
    patience: int  # stop after this many evaluations in a row without a better score (0 = never stop early)
    max_steps: int  # the run's last step
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "score", "per_task"} of each evaluation
    best_step: int | None = None
    best_score: float | None = None
    evals_since_best: int = 0  # evaluations since the best one
    stopped_at: int | None = None  # the step early stopping ended the run at
    best_weights: dict[str, torch.Tensor] | None = None  # trainable tensors at best_step (CPU copies)

    @property
    def enabled(self) -> bool:
        return self.every > 0

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def due(self, step: int) -> bool:
        """Whether step ``step`` (just done) is scored: every ``every`` steps, and the last step."""
        return self.enabled and (step % self.every == 0 or step == self.max_steps)

    def record(
        self, step: int, per_task: dict[str, float], weights: Callable[[], dict[str, torch.Tensor] | None]
    ) -> bool:
        """Add the scores of ``step``; keep ``weights()`` if they are the best yet (None: a process that keeps no
        weights, only the main process writes them); returns whether they are.

        Sets :attr:`stopped_at` when ``patience`` evaluations in a row have not improved (before the last step).
        """
        score = sum(per_task.values()) / len(per_task)
        self.history.append({"step": step, "score": score, "per_task": dict(per_task)})
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_step, self.best_score, self.evals_since_best = step, score, 0
            self.best_weights = weights()
        else:
            self.evals_since_best += 1
        if self.patience and self.evals_since_best >= self.patience and step < self.max_steps:
            self.stopped_at = step
        return improved

    def checkpoint_state(self) -> dict[str, Any]:
        """What ``state.json`` keeps (the best weights go to a file of their own)."""
        return {
            "history": self.history,
            "best_step": self.best_step,
            "best_score": self.best_score,
            "evals_since_best": self.evals_since_best,
            "stopped_at": self.stopped_at,
        }

    def restore(self, state: dict[str, Any], best_weights: dict[str, torch.Tensor] | None) -> None:
        """Take back :meth:`checkpoint_state` and the best weights of a checkpoint."""
        self.history = list(state["history"])
        self.best_step, self.best_score = state["best_step"], state["best_score"]
        self.evals_since_best, self.stopped_at = state["evals_since_best"], state["stopped_at"]
        self.best_weights = best_weights

    def summary(self) -> dict[str, Any]:
        """The ``metrics.json`` entries: the history, the best step and its score, whether the run stopped early."""
        return {
            "eval_history": self.history,
            "best_step": self.best_step,
            "best_validation_score": self.best_score,
            "stopped_early": self.stopped,
            "stopped_at_step": self.stopped_at,
        }
