"""Per-example task routing shared by every method that keeps one adapter per task.

A :class:`Router` holds, for the call in progress, either one task index for the whole batch (``int``, the
plain-matmul path) or one index per example (a ``(B,)`` LongTensor that adapters use to gather stacked weights,
``W[task_ids]``). It lives in a ``ContextVar``, so concurrent threads (a server) never see each other's routing; so
does the ``disabled`` switch: one thread inside ``disable()`` leaves every other thread's adapter on. A new thread
starts with a fresh context (adapter on, no routing), also when it is started inside ``disable()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

import torch

from .errors import UnknownNameError, UsageError

__all__ = ["Router", "TaskIds", "TaskSpec", "UnknownTaskError"]

# A whole batch on one task (int), or one task index per example (LongTensor of shape (B,)).
TaskIds = int | torch.Tensor
# What callers pass as ``task=``: a name for the whole batch, one name per example, or task indices.
TaskSpec = str | Sequence[str] | torch.Tensor | None


class UnknownTaskError(UnknownNameError):
    """A task name that the adapter does not have (a ``KeyError``)."""


class Router:
    """Task names, the routing of the call in progress, and the ``disabled`` switch every adapter obeys."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = list(tasks)
        self.default_task: int | None = 0 if len(self.tasks) == 1 else None
        self._disabled: ContextVar[bool] = ContextVar(f"adalink_disabled_{id(self)}", default=False)
        self._current: ContextVar[TaskIds | None] = ContextVar(f"adalink_routing_{id(self)}", default=None)

    # ------------------------------------------------------------------------------------------------ names
    def index(self, name: str) -> int:
        try:
            return self.tasks.index(name)
        except ValueError:
            raise UnknownTaskError(f"Unknown task {name!r}; this adapter has tasks {self.tasks}.") from None

    def set_default(self, task: str | None) -> None:
        self.default_task = None if task is None else self.index(task)

    def select(self, names: Sequence[str]) -> list[int]:
        """Keep only ``names`` (in that order); returns their old indices for the adapters to gather."""
        indices = [self.index(name) for name in names]
        if not indices:
            raise UsageError("select_tasks needs at least one task name.")
        self.tasks = list(names)
        self.default_task = 0 if len(indices) == 1 else None
        return indices

    # ---------------------------------------------------------------------------------------------- routing
    def resolve(self, task: TaskSpec, batch_size: int | None, device: torch.device | None = None) -> TaskIds:
        """Turn ``task=`` into task indices, checking names, ranges and the batch size; a batch on one task, however
        given, becomes one ``int``."""
        if task is None:
            if self.default_task is None:
                raise UnknownTaskError(
                    f"No task given and no default task: pass task= one of {self.tasks} "
                    "(or one name per example), or call set_task(name)."
                )
            return self.default_task
        if isinstance(task, str):
            return self.index(task)
        if isinstance(task, torch.Tensor):
            ids = task.to(device=device, dtype=torch.long).reshape(-1)
            low, high = (int(ids.min()), int(ids.max())) if ids.numel() else (0, 0)
            if low < 0 or high >= len(self.tasks):
                raise UnknownTaskError(
                    f"Task indices must lie in [0, {len(self.tasks)}) for tasks {self.tasks}; "
                    f"got min {low}, max {high}."
                )
            if ids.numel() and low == high and batch_size in (None, ids.numel()):
                return low  # one task for the whole batch: the plain-matmul path, no per-example copies of weights
        else:
            indices = [self.index(name) for name in task]
            if len(set(indices)) == 1 and batch_size in (None, len(indices)):
                return indices[0]  # a homogeneous batch takes the plain-matmul path
            ids = torch.tensor(indices, dtype=torch.long, device=device)
        if batch_size is not None and ids.numel() != batch_size:
            raise UsageError(f"task= has {ids.numel()} entries but the batch has {batch_size} examples.")
        return ids

    @contextlib.contextmanager
    def route(self, task: TaskSpec, batch_size: int | None, device: torch.device | None = None) -> Iterator[None]:
        """Route the calls inside this context to ``task``."""
        if self.disabled and task is None:  # the plain base model needs no task
            yield
            return
        token = self._current.set(self.resolve(task, batch_size, device))
        try:
            yield
        finally:
            self._current.reset(token)

    def ids_for(self, rows: int, where: str) -> TaskIds:
        """Task ids for a tensor of ``rows`` examples seen at ``where`` (an adapted module's path).

        ``generate()`` expands the batch for beams and ``num_return_sequences`` (example-major), so a batch that is
        a multiple of the routed one repeats each example's task.
        """
        ids = self._current.get()
        if ids is None:
            ids = self.resolve(None, None)
        if isinstance(ids, int) or rows == ids.shape[0]:
            return ids
        if rows % ids.shape[0] == 0:
            return ids.repeat_interleave(rows // ids.shape[0])
        raise UsageError(
            f"Per-example tasks cover {ids.shape[0]} examples, but {where} produced a batch of {rows}; per-example "
            "routing needs one row (e.g. one image) per example. Use one task for the whole batch instead."
        )

    @property
    def disabled(self) -> bool:
        """Whether adapters are off for the call in progress (this thread / context only), see :meth:`disable`."""
        return self._disabled.get()

    @contextlib.contextmanager
    def disable(self) -> Iterator[None]:
        """Turn every adapter off inside this context, for this thread (context) only."""
        token = self._disabled.set(True)
        try:
            yield
        finally:
            self._disabled.reset(token)
