"""Logging helpers shared by the library's modules."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

__all__ = ["log_level"]


@contextlib.contextmanager
def log_level(names: Sequence[str], level: int) -> Iterator[None]:
    """Raise the loggers ``names`` to ``level`` inside the context (NOTSET: leave them as they are)."""
    loggers = [logging.getLogger(name) for name in names]
    previous = [logger.level for logger in loggers]
    if level != logging.NOTSET:
        for logger in loggers:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, previous, strict=True):
            logger.setLevel(old)
