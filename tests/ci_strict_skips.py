"""A pytest plugin: under ``CI=true`` a test skipped because a package is missing FAILS instead of skipping.

Locally, a missing optional package skips the tests that need it (with the ``pip install`` line in the reason). In
CI every extra is installed by ``.ci/run``, so such a skip can only mean a missing install step: it must be loud.
Skips for other reasons (a method that refuses an architecture, no gloo backend) stay skips.

A skip counts as one for a missing package by how it was raised, never by its words:

- through ``pytest.importorskip`` (its frame is in the skip's traceback), whatever its ``reason``;
- through :func:`requires`, which checks that packages are installed without importing them (some data packages
  print or fail on import) and raises :class:`MissingPackage`;
- from an ``except ImportError`` block (the skip's context is an ``ImportError``).

A ``pytest.skip`` or ``skipif`` that tests for a package some other way (``find_spec`` in a condition) is invisible
here, so the suite has none: ``tests/test_ci_strict_skips.py`` lists every other skip of the suite and fails on a new
one.
"""

from __future__ import annotations

import importlib.util
import os
from types import TracebackType

import pytest

__all__ = ["MissingPackage", "missing_package_reason", "requires"]

_IMPORTORSKIP = pytest.importorskip.__code__


class MissingPackage(pytest.skip.Exception):
    """The skip :func:`requires` raises: a package the test needs is not installed."""


def requires(*modules: str, reason: str | None = None) -> None:
    """Skip the calling test (or module, at module level) unless every one of ``modules`` is installed.

    The modules are found, not imported (``importlib.util.find_spec``).

    Raises:
        MissingPackage: Naming the missing modules, with ``reason`` (the ``pip install`` line) when given.
    """
    absent = [module for module in modules if importlib.util.find_spec(module) is None]
    if absent:
        message = f"{', '.join(absent)} not installed" + (f": {reason}" if reason else "")
        raise MissingPackage(message, allow_module_level=True)


def missing_package_reason(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str | None:
    """The skip's reason when ``excinfo`` is a skip raised for a missing package (see the module docstring)."""
    if excinfo is None or not isinstance(excinfo.value, pytest.skip.Exception):
        return None
    error = excinfo.value
    if isinstance(error, MissingPackage) or _through_importorskip(excinfo.tb) or _from_import_error(error):
        return str(error)
    return None


def _through_importorskip(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code is _IMPORTORSKIP:
            return True
        tb = tb.tb_next
    return False


def _from_import_error(error: BaseException) -> bool:
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, ImportError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport, excinfo: pytest.ExceptionInfo | None) -> None:
    reason = missing_package_reason(excinfo) if report.skipped else None
    if reason and os.environ.get("CI", "").lower() == "true":
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped for a missing package, so an install step is missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    _fail_in_ci(outcome.get_result(), call.excinfo)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    call = getattr(report, "call", None)  # pytest keeps the collection's CallInfo on its report
    _fail_in_ci(report, call.excinfo if call is not None else None)
