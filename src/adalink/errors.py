"""The errors adalink raises on purpose, all under :class:`AdalinkError` (kept apart so any module can import them).

Every error adalink raises on purpose (a refused argument, a missing file or package, a corrupt adapter, a run that
diverged) is an :class:`AdalinkError`; ``adalink <command>`` prints it as one line and exits with code 2. Anything
else is a bug and keeps its traceback. Each class also keeps the builtin base it has always had (``ConfigError`` is a
``ValueError``, ``UnknownTaskError`` a ``KeyError``), so code that catches the builtin keeps working.

The general classes here cover the plain refusals; the modules define their own where a caller may want to tell one
case apart (``AdapterFileError``, ``CheckpointError``, ``ExportError``, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AdalinkError",
    "ConfigError",
    "FoldError",
    "MissingFileError",
    "MissingPackageError",
    "RunFailedError",
    "UnknownNameError",
    "UsageError",
    "did_you_mean",
]


def did_you_mean(found: str, known: Iterable[str], *, most: int = 3) -> str:
    """`` Did you mean 'x'?`` for the known names closest to ``found`` (difflib's ratio of at least 0.6), else ``""``:
    the end of a message that refuses an unknown name."""
    close = difflib.get_close_matches(found, list(known), n=most, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class AdalinkError(Exception):
    """Base of every error adalink raises on purpose; its message says what is wrong and what was expected."""


class UsageError(AdalinkError, ValueError):
    """An argument, option, data file or call that adalink refuses: the message names it and what was expected."""


class MissingFileError(AdalinkError, FileNotFoundError):
    """A file or directory adalink needs is not there."""


class MissingPackageError(AdalinkError, ImportError):
    """An optional package that a feature needs is not installed; the message says what to install."""


class UnknownNameError(AdalinkError, KeyError):
    """A name (a task, an adapter, an experiment) that is not among the known ones; the message lists them."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RunFailedError(AdalinkError, RuntimeError):
    """Something adalink ran (a subprocess, a conversion and its check, a training loop) failed; the message says
    how, and what to try."""


class ConfigError(AdalinkError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what was expected."""


class FoldError(AdalinkError, ValueError):
    """The adapter cannot be folded exactly into the base model's weights."""
