"""Errors shared by every method (kept apart so that any module can import them without cycles)."""

from __future__ import annotations

__all__ = ["ConfigError", "FoldError"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field, the value and what was expected."""


class FoldError(ValueError):
    """The adapter cannot be folded exactly into the base model's weights."""
