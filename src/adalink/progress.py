"""Progress bars that a user can silence by setting ``TQDM_DISABLE`` to any non-empty value (e.g. for logs).

tqdm reads ``TQDM_*`` environment variables only as defaults, so a call that passes ``disable=False`` explicitly
would ignore them; :func:`progress_bar` passes ``disable`` only to switch a bar off.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(iterable: Any = None, *, enabled: bool = True, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)``, off when ``enabled`` is False or ``TQDM_DISABLE`` is set (non-empty)."""
    return tqdm(iterable, **options) if enabled else tqdm(iterable, disable=True, **options)
