"""Every error adalink raises on purpose is an AdalinkError, and keeps the builtin base callers already catch."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import adalink
from adalink import AdalinkError
from adalink.errors import (
    MissingFileError,
    MissingPackageError,
    RunFailedError,
    UnknownNameError,
    UsageError,
    did_you_mean,
)

# Exception classes defined in adalink that are not AdalinkErrors, each with the reason.
NOT_ADALINK_ERRORS = {
    # a private signal that event_stream raises and catches itself (a row's text diverged after a retry): it never
    # leaves the module, so no caller can see it
    "adalink.serve.streaming._Diverged",
    # SIGTERM / SIGINT turned into an exception by stop_on_signals, which its one caller (adalink serve --engine vllm)
    # catches to stop vLLM and clean up: a signal, not a refusal
    "adalink.serve.vllm_runtime._Stop",
}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(adalink.__path__, "adalink."):
        if info.name == "adalink.__main__":  # runs the CLI on import
            continue
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as err:  # an optional extra that this environment lacks
            if (err.name or "").startswith("adalink"):
                raise
            continue
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


CLASSES = _exception_classes()


def test_the_walk_finds_the_errors_of_every_layer():
    expected = {"adalink.errors.ConfigError", "adalink.io.AdapterFileError", "adalink.routing.UnknownTaskError"}
    assert expected <= set(CLASSES) and len(CLASSES) >= 20
    assert set(CLASSES) >= NOT_ADALINK_ERRORS  # an exclusion whose class is gone must go too


@pytest.mark.parametrize("name", sorted(set(CLASSES) - NOT_ADALINK_ERRORS))
def test_every_error_class_is_an_adalink_error(name):
    assert issubclass(CLASSES[name], AdalinkError), f"{name} should inherit from adalink.AdalinkError"


@pytest.mark.parametrize("name", sorted(set(CLASSES) - NOT_ADALINK_ERRORS - {"adalink.errors.AdalinkError"}))
def test_every_error_class_keeps_a_builtin_base(name):
    """``except ValueError`` (or KeyError, ImportError, ...) in user code keeps catching what it caught before."""
    builtin = [c for c in CLASSES[name].__mro__[1:] if c.__module__ == "builtins" and c not in (Exception, object)]
    assert builtin or "serve.http" in name, f"{name} has only AdalinkError as a base"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (UsageError, ValueError),
        (MissingFileError, FileNotFoundError),
        (MissingPackageError, ImportError),
        (UnknownNameError, KeyError),
        (RunFailedError, RuntimeError),
    ],
)
def test_general_errors_are_also_their_builtin(cls, builtin):
    with pytest.raises(builtin, match="the message"):
        raise cls("the message")


def test_unknown_name_error_prints_its_message_without_quotes():
    assert str(UnknownNameError("No adapter named 'x'.")) == "No adapter named 'x'."


def test_did_you_mean_names_the_closest_known_names():
    assert did_you_mean("tweetz", ["tweets", "bbc"]) == " Did you mean 'tweets'?"
    assert did_you_mean("lora", ["lora", "loha", "dora", "ia3"], most=2) == " Did you mean 'lora' or 'loha'?"
    assert did_you_mean("zzz", ["tweets"]) == ""
