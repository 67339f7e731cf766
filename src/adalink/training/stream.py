"""A deterministic, stateless stream of mixed-task training batches.

The examples of global step ``s`` are a pure function of ``(seed, s)``, so a resumed run sees exactly the batches
an uninterrupted one would, without saving any data-loader state, and ``P`` processes that each take every P-th
example of the global batch together see the same examples as one process.

How often each task is drawn is the stream's ``mixing`` (T5, Raffel et al. 2020 §3.5.2, with no cap):

- ``proportional`` (the default): every epoch is a seeded permutation of all tasks' training examples pooled
  together, so a task appears in proportion to its size and every example once per epoch.
- ``sqrt``: temperature mixing with T = 2, task i drawn with probability ∝ n_i^(1/2).
- ``equal``: every task drawn with the same probability, whatever its size.

For the last two each position of the stream draws its task from a seeded generator (in blocks of positions) and
takes the next example of that task's own seeded epoch permutations, so a small task repeats more often than a big
one but never twice within one of its epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from ..errors import UsageError
from ..tasks.examples import AnyExample, TaskExample

__all__ = ["MIXING", "MixedTaskStream"]

MIXING: dict[str, float] = {"proportional": 1.0, "sqrt": 2.0, "equal": float("inf")}
"""Mixing name -> its temperature T (task i drawn with probability ∝ n_i^(1/T))."""
_BLOCK = 4096  # positions whose tasks are drawn together (one generator call)


class MixedTaskStream:
    def __init__(
        self,
        train_sets: Sequence[Sequence[AnyExample]],
        *,
        seed: int,
        global_batch_size: int,
        mixing: str = "proportional",
    ) -> None:
        if mixing not in MIXING:
            raise UsageError(f"mixing {mixing!r} is unknown: expected one of {sorted(MIXING)}.")
        self.sets = [list(examples) for examples in train_sets]
        self.pool = [TaskExample(task, ex) for task, examples in enumerate(self.sets) for ex in examples]
        if not self.pool:
            raise UsageError("The training data is empty: no examples in any task's train split.")
        empty = [task for task, examples in enumerate(self.sets) if not examples]
        if empty and mixing != "proportional":
            raise UsageError(f"mixing {mixing!r} needs examples in every task; task(s) {empty} have none.")
        # one task: every mixing draws it every time; keep the pooled order so that the name changes nothing
        self.seed, self.global_batch_size = seed, global_batch_size
        self.mixing = mixing if len(self.sets) > 1 else "proportional"
        temperature = MIXING[mixing]
        sizes = torch.tensor([float(len(s)) for s in self.sets], dtype=torch.float64)
        weights = torch.ones_like(sizes) if temperature == float("inf") else sizes ** (1.0 / temperature)
        self.task_probabilities = (weights / weights.sum()).tolist()
        self._ends: list[torch.Tensor] = []  # per block of positions: each task's draws up to its end

    @lru_cache(maxsize=4)  # noqa: B019 - a stream lives as long as its run; the cache holds at most 4 permutations
    def _permutation(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.pool), generator=generator).tolist()

    @lru_cache(maxsize=64)  # noqa: B019 - as above: per (task, epoch), bounded
    def _task_permutation(self, task: int, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 101 + task + 1)
        return torch.randperm(len(self.sets[task]), generator=generator).tolist()

    @lru_cache(maxsize=2)  # noqa: B019 - as above; older blocks keep only their end counts (``_ends``)
    def _block(self, index: int) -> tuple[list[int], list[int]]:
        """(task, how many earlier positions drew that task) for every position of block ``index``."""
        while len(self._ends) < index:  # a block's counts start where the previous block's ended
            self._block(len(self._ends))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + 7_777_777 + index)
        probabilities = torch.tensor(self.task_probabilities, dtype=torch.float64)
        tasks = torch.multinomial(probabilities, _BLOCK, replacement=True, generator=generator)
        one_hot = torch.nn.functional.one_hot(tasks, len(self.sets))
        start = self._ends[index - 1] if index else torch.zeros(len(self.sets), dtype=torch.long)
        if len(self._ends) == index:
            self._ends.append(start + one_hot.sum(0))
        before = (one_hot.cumsum(0) - one_hot).gather(1, tasks[:, None]).squeeze(1)  # earlier in this block
        return tasks.tolist(), (before + start[tasks]).tolist()

    def _at(self, position: int) -> TaskExample:
        if self.mixing == "proportional":
            epoch, offset = divmod(position, len(self.pool))
            return self.pool[self._permutation(epoch)[offset]]
        tasks, draws = self._block(position // _BLOCK)
        task, draw = tasks[position % _BLOCK], draws[position % _BLOCK]
        epoch, offset = divmod(draw, len(self.sets[task]))
        return TaskExample(task, self.sets[task][self._task_permutation(task, epoch)[offset]])

    def batch(self, step: int, *, rank: int = 0, world_size: int = 1) -> list[TaskExample]:
        """This process's share of global step ``step``: positions ``rank, rank + world_size, ...`` of the batch."""
        start = step * self.global_batch_size
        return [self._at(p) for p in range(start + rank, start + self.global_batch_size, world_size)]
