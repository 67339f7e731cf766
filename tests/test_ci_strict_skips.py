"""Under CI=true a skip for a missing package fails the run; other skips, and skips outside CI, stay skips."""

from pathlib import Path

import pytest

TESTS = """
import pytest

def test_needs_a_package_that_is_not_installed():
    pytest.importorskip("adalink_no_such_package")

def test_needs_an_extra():
    pytest.importorskip("adalink_no_such_package", reason="pip install adalink-no-such-package")

def test_skipped_on_purpose():
    pytest.skip("this method refuses this architecture, as expected")
"""
MODULE_LEVEL = 'import pytest\n\npytest.importorskip("adalink_no_such_package")\n\ndef test_x():\n    pass\n'


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 2, 1), ("", 0, 3)])
def test_missing_package_skips_fail_only_in_ci(pytester, monkeypatch, ci, failed, skipped):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where the plugin module lives
    pytester.makepyfile(test_sample=TESTS)
    result = pytester.runpytest_subprocess("-p", "ci_strict_skips", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=failed, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(["*an install step is missing*"])


def test_a_module_skipped_for_a_missing_package_fails_collection_in_ci(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    pytester.makepyfile(test_module=MODULE_LEVEL)
    result = pytester.runpytest_subprocess("-p", "ci_strict_skips", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*an install step is missing*"])
