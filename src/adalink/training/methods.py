"""The methods the training harness can apply to a base model, by name, and the config each run resolves.

Every name is a registered :class:`~adalink.methods.base.MethodConfig` (``METHOD_CONFIGS``), full tuning included,
attached through :func:`adalink.get_peft_model`. A method's defaults live in its config only: ``--rank`` sets the
field the method declares as its size (``size_field``: AdaLink's and LoRA's ``rank``, the bottleneck adapters'
``bottleneck``) and ``--dropout`` its ``dropout``, and only when given; a method without such a knob refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import methods as _methods  # noqa: F401  (registers every method)
from ..errors import ConfigError
from ..methods.base import METHOD_CONFIGS, MethodConfig
from .name_checks import unknown_method

__all__ = ["default_lr", "method_class", "method_names", "resolve_method_config"]


def method_names() -> list[str]:
    return sorted(METHOD_CONFIGS)  # full tuning included: FullConfig is registered


def method_class(name: str) -> type[MethodConfig]:
    """The config class of ``--method name``; an unknown name is refused with the closest registered names."""
    if name not in METHOD_CONFIGS:
        raise unknown_method(name, method_names())
    return METHOD_CONFIGS[name]


def default_lr(method: str) -> float:
    """The learning rate ``adalink train --method METHOD`` uses when ``--lr`` is not given: its config's own."""
    return method_class(method).default_lr


def settable_fields(cls: type[MethodConfig]) -> list[str]:
    """The fields ``--method-config`` may set: all but those the harness fills in (tasks, heads, size, dropout)."""
    harness = {"tasks", "modules_to_save", cls.size_field, "dropout"}
    return sorted(cls.field_names() - harness)


def check_knobs(cls: type[MethodConfig], *, rank: int | None, dropout: float | None) -> None:
    """Refuse ``--rank`` / ``--dropout`` for a method that has no such knob, naming the knobs it has."""
    knobs = f"its knobs are {', '.join(settable_fields(cls)) or 'none'} (set them with --method-config)"
    if rank is not None and cls.size_field is None:
        raise ConfigError(f"--rank does not apply to --method {cls.method}: it has no size field; {knobs}.")
    if dropout is not None and "dropout" not in cls.field_names():
        raise ConfigError(f"--dropout does not apply to --method {cls.method}: it has no dropout; {knobs}.")


def resolve_method_config(
    name: str,
    *,
    rank: int | None,
    dropout: float | None,
    tasks: Sequence[str],
    heads: Sequence[str],
    modalities: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> MethodConfig:
    """The config ``adalink train --method name`` trains: the method's own defaults, then ``--rank`` (its size
    field), ``--dropout``, the tasks, the new ``heads`` (trained with every method), the modalities and the
    ``--method-config`` ``options``, each only where given."""
    cls = method_class(name)
    check_knobs(cls, rank=rank, dropout=dropout)
    values: dict[str, Any] = dict(options or {})
    if cls.size_field is not None and rank is not None:
        values[cls.size_field] = rank
    if dropout is not None:
        values["dropout"] = dropout
    if cls.has_tasks():
        values["tasks"] = list(tasks)
    if modalities and "modalities" in cls.field_names():
        values["modalities"] = dict(modalities)
    values["modules_to_save"] = list(heads)
    return cls(**values)
