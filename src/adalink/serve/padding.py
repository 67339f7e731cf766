"""Padding waste: a batch of texts of very different lengths runs as sub-batches of similar length
(:meth:`adalink.serve.AdapterStack.classify`; ``benchmarks/length_groups.py`` measures the gain)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["length_groups"]


def length_groups(lengths: Sequence[int], max_waste: float = 0.5) -> list[list[int]]:
    """Split one batch into sub-batches of similar length, as index lists in ascending length.

    Every example of a batch is padded to its longest one, so one 512-token article would make 31 tweets cost 512
    tokens each. Going from the shortest up, a sub-batch is closed before an example whose length would make more
    than ``max_waste`` of the sub-batch's padded tokens padding; a batch of similar lengths stays one forward pass.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    group: list[int] = []
    real = 0
    for i in order:
        padded = (len(group) + 1) * lengths[i]  # ascending: the newcomer is the longest
        if group and padded and (padded - real - lengths[i]) / padded > max_waste:
            groups.append(group)
            group, real = [], 0
        group.append(i)
        real += lengths[i]
    if group:
        groups.append(group)
    return groups
