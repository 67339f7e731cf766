"""The contract every PEFT method follows: a dataclass config that attaches itself to a model.

``config.attach(model, router)`` adds the method's parameters without editing model code (hooks,
``torch.nn.utils.parametrize`` or a thin input wrapper) and returns an :class:`Attachment`: the new modules, the
handles that undo it, the base modules it touches (fingerprinted in saved adapters) and, for mergeable methods,
how to fold one task into the base weights. :class:`adalink.PeftModel` does the rest (freezing, routing, saving,
loading, counting) the same way for every method.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import nn

from ..errors import ConfigError, FoldError
from ..routing import Router

__all__ = [
    "METHOD_CONFIGS",
    "Attachment",
    "ConfigError",
    "FoldError",
    "Handle",
    "MethodConfig",
    "Undo",
    "config_from_dict",
    "register_method",
    "select_task_rows",
]


class Handle(Protocol):
    """Anything that undoes one change to the base model (a hook handle, a parametrisation remover)."""

    def remove(self) -> None: ...


@dataclass
class Undo:
    """A :class:`Handle` that calls ``fn`` once, e.g. to remove a parametrisation."""

    fn: Callable[[], None]

    def remove(self) -> None:
        fn, self.fn = self.fn, lambda: None
        fn()


@dataclass
class Attachment:
    """What a method added to a model, and how to take it away again.

    The task axis: in a method with tasks, every parameter and buffer of ``modules`` is stacked over the tasks on
    its leading axis (``W[t]`` is task ``t``'s), which is what per-example routing gathers (``W[task_ids]``), what
    :func:`select_task_rows` cuts when a subset of tasks is loaded, and what serving fills task by task.
    """

    modules: nn.Module  # the method's new parameters; saved as the adapter, registered on PeftModel as `<method>`
    handles: list[Handle]  # undone in reverse order by PeftModel.unload(); afterwards the base is as it was
    touched: dict[str, nn.Module]  # dotted path -> base module the method reads or changes (fingerprinted)
    # fold task index t into the base weights in place; called before the handles are removed. None = not mergeable
    merge: Callable[[int], None] | None = None
    # base parameters the method trains in place (full tuning), saved with the adapter under their own names
    base_parameters: dict[str, nn.Parameter] = field(default_factory=dict)
    # called once saved tensors are loaded, e.g. prefix tuning drops its training-time MLP for the saved prefix
    loaded: Callable[[], None] | None = None


@dataclass
class MethodConfig:
    """Base class of every method's config: JSON-serialisable, validated, and able to attach itself.

    Subclasses are dataclasses with a class attribute ``method`` (the registry name) and implement :meth:`attach`
    and :meth:`validate`. A subclass with a ``tasks: list[str]`` field keeps one adapter per task and routes
    per example; one without it shares one adapter across tasks.
    """

    method: ClassVar[str] = ""
    mergeable: ClassVar[bool] = False  # merge_and_unload folds it into the base weights exactly
    identity_at_init: ClassVar[bool] = True  # outputs equal the base model's before training
    default_lr: ClassVar[float] = 1e-3  # AdamW learning rate `adalink train` uses when --lr is not given
    source: ClassVar[str] = ""  # paper and section the defaults come from (shown by `adalink methods`)
    # The facts other layers read about a method (export, serving, the CLI, the bench); declared here, once.
    display_name: ClassVar[str] = ""  # human name in reports and print_trainable_parameters (default: `method`)
    size_field: ClassVar[str | None] = None  # the field `adalink train --rank` sets (None: the method has no size)
    # fields whose differences adapters stacked into one served forward pass absorb by zero-padding (exact)
    zero_padded: ClassVar[frozenset[str]] = frozenset()
    # why Hugging Face peft cannot hold this method (None: adalink.export converts it to a peft adapter)
    peft_refusal: ClassVar[str | None] = None
    exports_as_lora: ClassVar[bool] = False  # exported as a plain peft LoRA, which vLLM's multi-LoRA serving loads
    shares_base: ClassVar[bool] = True  # leaves the base weights as they are, so runs can share one served base
    # base-model modules trained and saved with the adapter, e.g. a new classification head (peft's name)
    modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):  # JSON gives lists for tuples and plain dicts: normalise copies
            value = getattr(self, spec.name)
            if isinstance(value, (list, tuple)):
                setattr(self, spec.name, list(value))
            elif isinstance(value, Mapping):
                setattr(self, spec.name, dict(value))
        try:
            self._check_common_fields()
            self.validate()
        except ConfigError:
            raise
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as err:  # a value of the wrong type
            self._check_types()  # names the field
            raise ConfigError(f"{type(self).__name__} is invalid: {type(err).__name__}: {err}.") from None
        self._check_types()  # what the checks above let through, e.g. a NaN where a number is compared

    def _check_common_fields(self) -> None:
        if not all(isinstance(m, str) and m for m in self.modules_to_save):
            raise self.bad("modules_to_save", self.modules_to_save, "a list of dotted module paths")
        if "tasks" in self.field_names():
            tasks = self.tasks  # type: ignore[attr-defined]
            if not tasks or not all(isinstance(t, str) and t.strip() for t in tasks):
                raise self.bad("tasks", tasks, "a non-empty list of non-empty task names")
            duplicates = sorted({t for t in tasks if tasks.count(t) > 1})
            if duplicates:
                raise self.bad("tasks", tasks, f"unique task names (duplicated: {duplicates})")

    def _check_types(self) -> None:
        """Every field holds a value of its annotated type (ints for floats too, finite numbers only); the first
        wrong field is named. Run after :meth:`validate`, whose messages say more where it catches a value first."""
        cls: type = type(self)  # as `type`: mypy takes the class of an eq dataclass (`__hash__ = None`) as unhashable
        hints = _field_types(cls)
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if not _conforms(value, hints[spec.name]):
                raise self.bad(spec.name, value, _describe(hints[spec.name]))

    # ------------------------------------------------------------------------------------------ to implement
    def validate(self) -> None:
        """Check the method's own fields; raise :meth:`bad` naming the first wrong one."""

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        """Add the method to the frozen ``model``; adapters with tasks read ``router.ids_for(rows, where)``."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- helpers
    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @property
    def task_names(self) -> list[str]:
        return list(getattr(self, "tasks", ["default"]))

    def learning_rate(self) -> float:
        """The rate `adalink train` uses for this config when --lr is not given (default: the class's ``default_lr``;
        a method whose step size grows with its size scales it here)."""
        return type(self).default_lr

    @classmethod
    def bad(cls, field_name: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{cls.__name__}.{field_name}={value!r} is invalid: expected {expected}.")

    def check_positive_int(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.bad(name, value, "a positive integer")

    def check_probability(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise self.bad(name, value, "a number in [0, 1)")

    def check_choice(self, name: str, choices: tuple[Any, ...]) -> None:
        if getattr(self, name) not in choices:
            raise self.bad(name, getattr(self, name), f"one of {list(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """The config from a JSON object of its fields; anything else raises :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__} needs a JSON object of its fields; got {type(data).__name__}.")
        known = cls.field_names()
        unknown = sorted((k for k in data if k not in known), key=repr)
        if unknown:
            raise ConfigError(f"{cls.__name__} got unknown fields {unknown}; known fields are {sorted(known)}.")
        return cls(**data)

    @classmethod
    def title(cls) -> str:
        """The method's name for people (reports, ``print_trainable_parameters``)."""
        return cls.display_name or cls.method

    @classmethod
    def has_tasks(cls) -> bool:
        """Whether it keeps one adapter per task (a ``tasks`` field) and routes ``task=`` per example."""
        return "tasks" in cls.field_names()


_C = TypeVar("_C", bound=MethodConfig)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conforms(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of type ``kind``: the few annotations method configs use (scalars, ``X | None``,
    ``Literal``, ``list[X]``, ``dict[K, V]``); any other annotation accepts everything."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if origin in (types.UnionType, typing.Union):
        return any(_conforms(value, option) for option in args)
    if origin is typing.Literal:
        return any(value == option and type(value) is type(option) for option in args)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items()
        )
    if kind is type(None):
        return value is None
    return True


def _describe(kind: Any) -> str:
    """What a value of ``kind`` is, for error messages."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}
    if kind in names:
        return names[kind]
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(option) for option in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return f"an object mapping {_describe(args[0])} to {_describe(args[1])}"
    return str(kind)


def select_task_rows(modules: nn.Module, indices: list[int], num_tasks: int) -> None:
    """Keep only task rows ``indices`` (in that order) of every parameter and buffer of ``modules`` (the leading
    task axis, see :class:`Attachment`); the Parameter objects stay the same, so optimisers and ties still hold."""
    for name, tensor in [*modules.named_parameters(), *modules.named_buffers()]:
        if tensor.dim() == 0 or tensor.shape[0] != num_tasks:
            raise ConfigError(
                f"Cannot select tasks: {name} has shape {tuple(tensor.shape)}, expected a leading task axis of "
                f"{num_tasks} (every per-task tensor is stacked over the tasks on its first axis)."
            )
    index = torch.tensor(indices, dtype=torch.long)
    with torch.no_grad():
        for tensor in [*modules.parameters(), *modules.buffers()]:
            tensor.data = tensor.data[index.to(tensor.device)].clone()


# method name -> config class; filled by @register_method as the method modules are imported
METHOD_CONFIGS: dict[str, type[MethodConfig]] = {}


def register_method(cls: type[_C]) -> type[_C]:
    """Class decorator: make a config class reachable by its ``method`` name (CLI, saved adapters)."""
    if not cls.method:
        raise TypeError(f"{cls.__name__} needs a class attribute `method` (its registry name).")
    if cls.method in METHOD_CONFIGS and METHOD_CONFIGS[cls.method] is not cls:
        raise TypeError(f"Method name {cls.method!r} is registered twice ({METHOD_CONFIGS[cls.method].__name__}).")
    METHOD_CONFIGS[cls.method] = cls
    return cls


def config_from_dict(method: str, data: Mapping[str, Any]) -> MethodConfig:
    """Rebuild a saved config by method name."""
    if method not in METHOD_CONFIGS:
        raise ConfigError(f"Unknown method {method!r}: expected one of {sorted(METHOD_CONFIGS)}.")
    return METHOD_CONFIGS[method].from_dict(data)
