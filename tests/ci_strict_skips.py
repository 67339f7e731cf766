"""A pytest plugin: under ``CI=true`` a test skipped because a package is missing FAILS instead of skipping.

Locally, a missing optional package skips the tests that need it (with the ``pip install`` line in the reason). In
CI every extra is installed by ``.ci/run``, so such a skip can only mean a missing install step: it must be loud.
Skips for other reasons (a method that refuses an architecture, no gloo backend) stay skips.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["MISSING_PACKAGE_SIGNS", "missing_package_reason"]

# what the reasons of this suite's package skips say (importorskip's own text, or our "pip install ..." reasons)
MISSING_PACKAGE_SIGNS = ("pip install", "could not import", "No module named")


def missing_package_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The skip reason of ``report`` when it skipped for a missing package, else None."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2])
    return reason if any(sign in reason for sign in MISSING_PACKAGE_SIGNS) else None


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = missing_package_reason(report)
    if reason and os.environ.get("CI", "").lower() == "true":
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped for a missing package, so an install step is missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    _fail_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    _fail_in_ci(outcome.get_result())
