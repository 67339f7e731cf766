"""What every request goes through before the model: a served task, texts within the server's limits, a place in the
queue. Each refusal is an :class:`~.http.ApiError` naming the request field at fault."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Hashable, Iterator
from pathlib import PurePath
from typing import Any

from .adapter_stack import AdapterStack
from .batcher import DynamicBatcher, Overloaded, ShuttingDown, TaskRetiring
from .http import ApiError
from .settings import ServeSettings

__all__ = ["enqueue", "public_model_name", "queue_errors", "served_task", "submit", "texts_of"]


def texts_of(value: str | list[str], param: str, settings: ServeSettings) -> list[str]:
    """One text or a list of them, each non-empty and within ``--max-input-chars``, at most ``--max-items``."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ApiError(400, f"{param} is empty: give at least one text.", param=param)
    if len(texts) > settings.max_items:
        raise ApiError(400, f"{param} has {len(texts)} items; at most {settings.max_items} per request.", param=param)
    for i, text in enumerate(texts):
        where = param if isinstance(value, str) else f"{param}[{i}]"
        if not text.strip():
            raise ApiError(400, f"{where} is empty.", param=where)
        if len(text) > settings.max_input_chars:
            message = f"{where} has {len(text)} characters; at most {settings.max_input_chars}."
            raise ApiError(400, message, param=where)
    return texts


def served_task(stack: AdapterStack, task: str, param: str) -> str:
    if task not in stack.tasks:
        raise ApiError(404, f"Unknown task {task!r}; served tasks: {list(stack.tasks)}.", param=param)
    return task


@contextlib.contextmanager
def queue_errors(param: str) -> Iterator[None]:
    """The batcher's refusals as HTTP answers: a task being removed is gone (404), a full or closing queue 503."""
    try:
        yield
    except TaskRetiring as err:
        raise ApiError(404, str(err), param=param) from None
    except (Overloaded, ShuttingDown) as err:
        raise ApiError(503, str(err), "overloaded_error") from None


async def submit(batcher: DynamicBatcher, key: Hashable, task: str, payloads: list[Any], param: str) -> list[Any]:
    with queue_errors(param):
        return await batcher.submit(key, task, payloads)


def enqueue(batcher: DynamicBatcher, key: Hashable, task: str, payloads: list[Any], param: str) -> list[asyncio.Future]:
    with queue_errors(param):
        return batcher.enqueue(key, task, payloads)


def public_model_name(name: str) -> str:
    """What clients are told the base model is: a packaged alias or hub name as given, a local checkpoint by its
    directory's name only (its path says how the server's disk is laid out)."""
    local = os.path.isabs(name) or name.startswith(("~", ".")) or (os.sep in name and os.path.exists(name))
    return PurePath(name).name if local else name
