"""The key/value cache argument under either of its names.

transformers 5.24 renamed the cache argument of every model and attention ``forward`` from ``past_key_values`` to
``cache`` (the old name still works on model ``forward``, through a deprecation shim, until 5.40). Forward pre-hooks
see the raw keyword arguments, before any shim, so the methods that read or fill the cache (prefix tuning, prompt
tuning's generation steps, UniPELT's prefix gate) look under both names and write the one ``forward`` declares.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["cache_argument", "find_cache"]

_NAMES = ("cache", "past_key_values")


def find_cache(kwargs: dict[str, Any]) -> Any:
    """The cache passed in ``kwargs`` under either name, or None."""
    for name in _NAMES:
        if kwargs.get(name) is not None:
            return kwargs[name]
    return None


def cache_argument(forward: Callable[..., Any]) -> str:
    """The name ``forward`` takes its cache under: ``cache`` (transformers >= 5.24) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
