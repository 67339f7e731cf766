"""Under CI=true a skip for a missing package fails the run, whatever its wording; other skips, and skips outside CI,
stay skips. And every skip of this suite for a missing package goes through a mechanism the plugin sees."""

import ast
from pathlib import Path

import pytest

TESTS = """
import pytest
from ci_strict_skips import requires

def test_needs_a_package_that_is_not_installed():
    pytest.importorskip("adalink_no_such_package")

def test_needs_an_extra_worded_as_a_need():
    pytest.importorskip("adalink_no_such_package", reason="needs matplotlib (bench extra)")

def test_requires_finds_without_importing():
    requires("json", "adalink_no_such_package", reason="the words do not matter")

def test_skips_from_an_import_error():
    try:
        import adalink_no_such_package  # noqa: F401
    except ImportError:
        pytest.skip("optional")

@pytest.fixture
def needs_it():
    pytest.importorskip("adalink_no_such_package", reason="in a fixture")

def test_skips_in_setup(needs_it):
    pass

def test_skipped_on_purpose():
    pytest.skip("this method refuses this architecture, as expected")

def test_skipped_with_install_words_but_no_missing_package():
    pytest.skip("pip install is not what decides: nothing is missing here")

def test_installed_package_runs():
    requires("json")
    pytest.importorskip("json")
"""
MODULE_LEVEL = {
    "importorskip": 'import pytest\n\npytest.importorskip("adalink_no_such_package", reason="bench extra")\n',
    "requires": "from ci_strict_skips import requires\n\nrequires('adalink_no_such_package')\n",
}


def _run(pytester, monkeypatch, ci: str, **files: str):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where the plugin module lives
    pytester.makepyfile(**files)
    return pytester.runpytest_subprocess("-p", "ci_strict_skips", "-p", "no:cacheprovider", "-rA")


@pytest.mark.parametrize(("ci", "failed", "errors", "skipped"), [("true", 4, 1, 2), ("", 0, 0, 7)])
def test_missing_package_skips_fail_only_in_ci(pytester, monkeypatch, ci, failed, errors, skipped):
    result = _run(pytester, monkeypatch, ci, test_sample=TESTS)
    result.assert_outcomes(failed=failed, errors=errors, skipped=skipped, passed=1)  # the fixture's: a setup error
    if failed:
        result.stdout.fnmatch_lines(["*an install step is missing*needs matplotlib (bench extra)*"])
        result.stdout.fnmatch_lines(["*an install step is missing: adalink_no_such_package not installed*"])
        result.stdout.fnmatch_lines(["SKIPPED*this method refuses this architecture*"])
        result.stdout.fnmatch_lines(["SKIPPED*pip install is not what decides*"])


@pytest.mark.parametrize("how", sorted(MODULE_LEVEL))
def test_a_module_skipped_for_a_missing_package_fails_collection_in_ci(pytester, monkeypatch, how):
    result = _run(pytester, monkeypatch, "true", test_module=MODULE_LEVEL[how] + "\ndef test_x():\n    pass\n")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*an install step is missing*"])


# Every skip of the suite that is not raised by pytest.importorskip or requires(): none of them is for a package.
# A new skip for a missing package must use one of those two (the plugin cannot see a find_spec condition);
# another kind of skip is added here with why it is not a package.
OTHER_SKIPS = {
    "methods/adalink/test_folding.py": ["'needs Linux /proc to reset the peak RSS'"],
    "methods/test_contract.py": ["f'{method} refuses {arch} with a clear error, as expected'"],
    "models/test_smollm2.py": ["'SIGKILL'"],
    "serve/test_vllm_engine.py": ["f'set {VLLM_PYTHON_ENV} to a Python with vLLM to run vLLM for real'"],
    "serve/test_vllm_fold.py": ["f'set {VLLM_PYTHON_ENV} to a Python with vLLM to run vLLM for real'"],
    "training/test_distributed.py": ["'torch.distributed with the gloo backend is not available in this torch build'"],
    "training/test_fsdp.py": ["'torch.distributed with the gloo backend is not available in this torch build'"],
    "training/test_tracking.py": ["f'{tracker} is installed here'"],  # the opposite: a package that is present
    "test_process_memory.py": ["'resetting the peak needs Linux /proc/self/clear_refs'"],  # an OS feature
}


def _skips(path: Path) -> list[str]:
    """The reason (as source) of every ``pytest.skip(...)`` call and ``pytest.mark.skipif(...)`` mark in ``path``."""
    reasons = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = ast.unparse(node.func)
        if name in ("pytest.skip", "pytest.mark.skipif"):
            reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
            reason = reason or (node.args[0] if name == "pytest.skip" and node.args else None)
            reasons.append(ast.unparse(reason) if reason is not None else "<no reason>")
    return reasons


def test_every_other_skip_of_the_suite_is_not_for_a_package():
    root = Path(__file__).parent
    found = {str(p.relative_to(root)): _skips(p) for p in sorted(root.rglob("*.py")) if p.name != Path(__file__).name}
    found = {path: reasons for path, reasons in found.items() if reasons}
    assert found == OTHER_SKIPS, (
        "a skip that pytest.importorskip or ci_strict_skips.requires does not raise: if it is for a missing "
        "package, use one of those (the CI=true plugin fails them); else list it in OTHER_SKIPS"
    )
