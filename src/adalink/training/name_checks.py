"""The names ``adalink train`` is most often given wrong, ``--method`` and ``--task``, checked before torch,
transformers and the harness import (those take seconds; this module imports none of them).

:func:`check_names` reads the two flags as written on the command line (exactly ``--method`` and ``--task``; an
abbreviation or a ``--config`` file is checked later, with every other option, by :meth:`TrainArgs.validate`). The
refusals are the ones the later checks give (:func:`unknown_method`, :func:`check_task_names`), so a name is refused
with the same message whichever check sees it first.

The method names come from the method modules' source (:func:`method_names_in_source`): each config class decorated
with ``@register_method`` declares ``method: ClassVar[str] = "<name>"``. Reading them there, rather than importing
the modules (they import torch), keeps "a new method is one module, nothing else written anywhere"
(docs/architecture.md) without a second list of names to keep in step.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from ..data import GENERATION_TASK_NAMES, TASK_NAMES
from ..data.easyvqa import TASK_NAME as VQA_TASK
from ..errors import ConfigError, UsageError, did_you_mean

__all__ = ["check_names", "check_task_names", "method_names_in_source", "unknown_method"]


@functools.cache
def method_names_in_source() -> frozenset[str]:
    """The ``method`` names of the ``@register_method`` classes under ``adalink/methods/``, read with :mod:`ast`."""
    spec = importlib.util.find_spec("adalink.methods")  # finds the package without running its __init__
    assert spec is not None and spec.submodule_search_locations
    names = set()
    for folder in spec.submodule_search_locations:
        for path in sorted(Path(folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if "register_method" in source:
                names.update(_registered_names(ast.parse(source, str(path))))
    return frozenset(names)


def _registered_names(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            isinstance(d, ast.Name) and d.id == "register_method" for d in node.decorator_list
        ):
            for statement in node.body:
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and statement.target.id == "method"
                    and isinstance(statement.value, ast.Constant)
                ):
                    names.append(str(statement.value.value))
    return names


def _known_methods() -> list[str]:
    names = set(method_names_in_source())
    base = sys.modules.get("adalink.methods.base")  # once imported, the registry also holds methods defined elsewhere
    if base is not None:
        names.update(base.METHOD_CONFIGS)
    return sorted(names)


def unknown_method(name: str, known: Sequence[str]) -> ConfigError:
    """The refusal of ``--method name``, with the closest of the ``known`` names."""
    return ConfigError(f"--method {name!r} is unknown: expected one of {', '.join(known)}.{did_you_mean(name, known)}")


def check_task_names(task: str) -> None:
    """Refuse a ``--task`` list with a name that is no packaged task, naming the closest ones."""
    known = (*TASK_NAMES, *GENERATION_TASK_NAMES, VQA_TASK)
    names = [name.strip() for name in task.split(",") if name.strip()]
    expected = f"a comma-separated list of packaged tasks ({', '.join(known)}), or your own data with --train-file"
    if not names:
        raise UsageError(f"--task {task!r} is invalid: expected {expected}.")
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise UsageError(f"--task {task!r} is invalid: expected {expected}; found {name!r}, not one of them.{hint}")


def check_names(argv: Sequence[str]) -> None:
    """Refuse an unknown ``--method`` or ``--task`` given on ``adalink train``'s command line ``argv``.

    ``--task`` is checked only where the run reads it: not with ``--train-file``, nor with a ``--config`` file (which
    may name one). Anything this cannot read is left to the full parser.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for flag in ("--method", "--task", "--train-file", "--config"):
        parser.add_argument(flag)
    try:
        given, _ = parser.parse_known_args(list(argv))
    except argparse.ArgumentError:  # e.g. `--task` without a value: the full parser says so
        return
    if given.method is not None and given.method not in (known := _known_methods()):
        raise unknown_method(given.method, known)
    if given.task is not None and given.train_file is None and given.config is None:
        check_task_names(given.task)
