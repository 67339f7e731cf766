"""Dynamic batching across tasks: examples that arrive within a short window run in ONE forward pass.

Every example is queued as an item with its own future, so an answer can only ever reach the request it belongs to.
Items with equal ``key`` may share a forward pass: on a classification server all of them, whatever their tasks;
completions, those with the same sampling settings. A batch starts when ``max_batch_size`` items wait or when the
oldest has waited ``window_s``; while one batch runs in the model thread, the next one gathers.

The model thread is a single worker: batches, and changes to the served adapters
(:meth:`DynamicBatcher.in_model_thread`), run one after the other, never at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import AdalinkError
from .metrics import ServerMetrics

__all__ = ["DynamicBatcher", "Overloaded", "ShuttingDown", "TaskRetiring"]

_log = logging.getLogger("adalink.serve")
_T = TypeVar("_T")

# Runs in the model thread: (key, payloads) -> one result per payload, in order.
RunBatch = Callable[[Hashable, list[Any]], Sequence[Any]]


class Overloaded(AdalinkError, RuntimeError):
    """The queue is full: the client should retry later."""


class ShuttingDown(AdalinkError, RuntimeError):
    """The server is draining and takes no new work."""


class TaskRetiring(AdalinkError, KeyError):
    """The task's adapter is being removed."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class _Item:
    key: Hashable
    task: str
    payload: Any
    future: asyncio.Future
    arrived: float


class DynamicBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        executor: Executor,
        *,
        window_s: float,
        max_batch_size: int,
        max_queue: int,
        metrics: ServerMetrics,
    ) -> None:
        self._run_batch, self._executor, self._metrics = run_batch, executor, metrics
        self.window_s, self.max_batch_size, self.max_queue = window_s, max_batch_size, max_queue
        self._pending: deque[_Item] = deque()
        self._queued: Counter[str] = Counter()  # task -> items submitted and not yet answered
        self._retiring: set[str] = set()
        self._closing = False
        self._flushing = 0  # removals waiting for their tasks' requests: run batches without waiting
        self._loop_task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._answered: asyncio.Condition | None = None

    # ------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the batching loop (call from inside the running event loop)."""
        self._wakeup, self._answered = asyncio.Event(), asyncio.Condition()
        self._loop_task = asyncio.create_task(self._loop(), name="adalink-batcher")

    @property
    def closing(self) -> bool:
        return self._closing

    def stop_accepting(self) -> None:
        """Start draining: refuse new requests and run the queued ones without waiting for the window."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def close(self) -> None:
        """Take no new work, answer everything already queued, then stop."""
        self.stop_accepting()
        if self._loop_task is not None:
            await self._loop_task

    @property
    def depth(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------------------------------- requests
    async def submit(self, key: Hashable, task: str, payloads: Sequence[Any]) -> list[Any]:
        """Queue one request's examples (all of one task) and wait for their results, in order."""
        results = await asyncio.gather(*self.enqueue(key, task, payloads), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def enqueue(self, key: Hashable, task: str, payloads: Sequence[Any]) -> list[asyncio.Future]:
        """Queue one request's examples (all of one task) now; their futures, in order. Raises at once if the
        server cannot take them (a streamed answer must be refused before its response starts). Cancelling a
        future that has not run yet drops its example."""
        if self._closing or self._loop_task is None:
            raise ShuttingDown("The server is shutting down and takes no new requests.")
        if task in self._retiring:
            raise TaskRetiring(f"Task {task!r} is being removed from this server.")
        if len(self._pending) + len(payloads) > self.max_queue:
            raise Overloaded(f"The server's queue is full ({self.max_queue} examples); retry later.")
        loop = asyncio.get_running_loop()
        now = loop.time()
        items = [_Item(key, task, payload, loop.create_future(), now) for payload in payloads]
        self._pending.extend(items)
        self._queued[task] += len(items)
        self._metrics.queue_depth.set(len(self._pending))
        self._wakeup.set()
        return [item.future for item in items]

    async def in_model_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in the model thread, between two batches."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def retire(self, tasks: Iterable[str]) -> None:
        """Refuse new requests for ``tasks``; those already queued are still answered."""
        self._retiring.update(tasks)

    def unretire(self, tasks: Iterable[str]) -> None:
        self._retiring.difference_update(tasks)

    async def drained(self, tasks: Iterable[str]) -> None:
        """Wait until no request for ``tasks`` is queued or running; meanwhile queued work skips the window."""
        tasks = list(tasks)
        self._flushing += 1
        self._wakeup.set()
        try:
            async with self._answered:
                await self._answered.wait_for(lambda: all(self._queued[t] == 0 for t in tasks))
        finally:
            self._flushing -= 1

    # --------------------------------------------------------------------------------------------- the loop
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait = self._pending[0].arrived + self.window_s - loop.time()
            if wait > 0 and len(self._pending) < self.max_batch_size and not (self._closing or self._flushing):
                self._wakeup.clear()  # a new arrival re-checks the batch size; the window's end runs the batch
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)
                continue
            await self._run(self._take())

    def _take(self) -> list[_Item]:
        """Up to ``max_batch_size`` live items with the oldest item's key, in arrival order."""
        key = self._pending[0].key
        batch: list[_Item] = []
        rest: deque[_Item] = deque()
        while self._pending:
            item = self._pending.popleft()
            if item.future.done():  # its request was cancelled (client gone)
                self._queued[item.task] -= 1
            elif item.key == key and len(batch) < self.max_batch_size:
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        self._metrics.queue_depth.set(len(rest))
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        if batch:
            began = time.perf_counter()
            try:
                await self._answer(batch)
            finally:
                metrics = self._metrics
                metrics.forward_seconds.observe(time.perf_counter() - began)
                metrics.batch_size.observe(len(batch))
                metrics.batch_tasks.observe(len({item.task for item in batch}))
                for item in batch:
                    self._queued[item.task] -= 1
                    metrics.examples.labels(item.task).inc()
        async with self._answered:
            self._answered.notify_all()

    async def _answer(self, batch: list[_Item]) -> None:
        """Run ``batch``; if it fails, run its items one by one so that only the failing ones get the error."""
        try:
            results = await self.in_model_thread(self._run_batch, batch[0].key, [item.payload for item in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} examples gave {len(results)} results")
        except Exception as err:
            if len(batch) == 1:
                _log.exception("forward pass failed")
                _settle(batch[0].future, error=err)
                return
            for item in batch:
                await self._answer([item])
            return
        for item, result in zip(batch, results, strict=True):
            _settle(item.future, result=result)


def _settle(future: asyncio.Future, *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # cancelled by its request
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
