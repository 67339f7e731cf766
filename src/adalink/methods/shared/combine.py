"""One attachment from several, for the methods that compose others' pieces (MAM, UniPELT)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ..base import Attachment

__all__ = ["combine"]


def combine(parts: Mapping[str, Attachment]) -> Attachment:
    """One attachment from several (``{"adapter": ..., "prefix": ...}``): modules under those names, every handle,
    task selection and post-load step forwarded to each part."""
    modules = nn.ModuleDict({name: part.modules for name, part in parts.items()})
    handles = [handle for part in parts.values() for handle in part.handles]
    touched = {path: module for part in parts.values() for path, module in part.touched.items()}

    def loaded() -> None:
        for part in parts.values():
            if part.loaded is not None:
                part.loaded()

    return Attachment(modules, handles, touched, loaded=loaded)
