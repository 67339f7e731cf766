"""Logging helpers shared by the library's modules."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

__all__ = ["KNOWN_NOISE", "log_level", "quiet_known_noise"]

# What third-party packages log on every run of a working set-up, each matched narrowly: (logger, text in the message).
KNOWN_NOISE = (
    ("torchao", "Failed to load "),  # its optional CUDA kernels (_C_mxfp8, _C_cutlass), absent from a CPU machine
    ("torch.utils._pytree", "is an Enum subclass and is now natively supported"),  # torchao 0.18 on torch 2.13
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),  # its optional `kernels` package
    # the new heads' weights reported MISSING, although adalink initialises them (or loads the trained ones) next
    ("transformers.modeling_utils", "LOAD REPORT"),
)


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


class _DropText(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_known_noise() -> None:
    """Drop the :data:`KNOWN_NOISE` messages (once per process; every other message of those loggers stays)."""
    for name, text in KNOWN_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropText) and f.text == text for f in logger.filters):
            logger.addFilter(_DropText(text))
