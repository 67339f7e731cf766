"""A deterministic, stateless stream of mixed-task training batches.

The examples of global step ``s`` are a pure function of ``(seed, s)``: every epoch is a seeded permutation of all
tasks' training examples pooled together (examples-proportional mixing). So a resumed run sees exactly the batches
an uninterrupted one would, without saving any data-loader state, and ``P`` processes that each take every P-th
example of the global batch together see the same examples as one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..data import Example

__all__ = ["MixedTaskStream", "TaskExample"]


@dataclass(frozen=True)
class TaskExample:
    task: int  # index into the run's task list
    example: Example


class MixedTaskStream:
    def __init__(self, train_sets: Sequence[Sequence[Example]], *, seed: int, global_batch_size: int) -> None:
        self.pool = [TaskExample(task, ex) for task, examples in enumerate(train_sets) for ex in examples]
        if not self.pool:
            raise ValueError("The training data is empty: no examples in any task's train split.")
        self.seed, self.global_batch_size = seed, global_batch_size

    @lru_cache(maxsize=4)  # noqa: B019 - a stream lives as long as its run; the cache holds at most 4 permutations
    def _permutation(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.pool), generator=generator).tolist()

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> list[TaskExample]:
        """This process's share of global step ``step``: positions ``rank, rank + world_size, ...`` of the batch."""
        start = step * self.global_batch_size
        picked = []
        for position in range(start + rank, start + self.global_batch_size, world_size):
            epoch, offset = divmod(position, len(self.pool))
            picked.append(self.pool[self._permutation(epoch)[offset]])
        return picked
