"""Seeded draws of stage-1 training examples, balanced over question types (and optionally yes/no answers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...data.easyvqa import QUESTION_TYPES, VQAExample

__all__ = ["QuestionSampler"]


class QuestionSampler:
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
