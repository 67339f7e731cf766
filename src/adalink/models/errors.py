"""The errors :func:`adalink.models.resolve_model` raises."""

from __future__ import annotations

from ..errors import AdalinkError, MissingPackageError

__all__ = ["MissingModelPackageError", "ModelNotFoundError"]


class ModelNotFoundError(AdalinkError, ValueError):
    """The model argument names no alias, no usable local directory and no model in the offline hub cache."""


class MissingModelPackageError(MissingPackageError):
    """A packaged alias was asked for but the package that ships its weights (or is needed to load them) is missing."""
