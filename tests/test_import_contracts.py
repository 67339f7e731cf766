"""The import contracts in pyproject.toml (``[tool.importlinter]``, checked by ``lint-imports`` in CI) name every
method module, so that a new method is held to "no method imports another" without anyone remembering to add it."""

import os
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "src" / "adalink" / "methods"
# the modules of methods/ that every method may import (docs/architecture.md)
SHARED = {"__init__", "base", "roles", "activations", "_delta", "_cache", "shared"}


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_independence_contract_names_every_method_module():
    modules = {path.stem for path in METHODS.glob("*.py")} | {
        path.name for path in METHODS.iterdir() if (path / "__init__.py").is_file()
    }
    (contract,) = [c for c in _contracts() if c["type"] == "independence"]
    assert {name.removeprefix("adalink.methods.") for name in contract["modules"]} == modules - SHARED


def test_saving_in_peft_format_leaves_the_training_harness_unimported(tmp_path):
    """``save_pretrained(format="peft")`` needs only the export converters: not the harness, the task formats nor the
    run reading above them (issue 25, "Done when"). In a fresh interpreter, so that no other test's imports count."""
    code = f"""
import sys
import adalink
from tiny_models import build
model = adalink.get_peft_model(build("gpt2"), adalink.LoRAConfig())
model.save_pretrained({str(tmp_path / "peft")!r}, format="peft")
print(sorted(name for name in ("adalink.training", "adalink.tasks", "adalink.runs") if name in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # adalink and tests/tiny_models.py as here
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "peft" / "adapter_config.json").is_file()
    assert done.stdout.split("\n")[-2] == "[]"


def test_import_adalink_is_light_and_every_public_name_resolves():
    """``import adalink`` imports no torch (the CLI refuses a mistyped name before it); each name of ``__all__`` is the
    object of the module it comes from, imported on first use. In a fresh interpreter, as above."""
    code = """
import importlib, sys
import adalink
light = "torch" not in sys.modules and "transformers" not in sys.modules
module_of = {name: module for module, names in adalink._LAZY.items() for name in names}
eager = {"AdalinkError", "ConfigError", "FoldError", "__version__"}
assert set(adalink.__all__) == eager | set(module_of), set(adalink.__all__) ^ (eager | set(module_of))
for name in module_of:
    assert getattr(adalink, name) is getattr(importlib.import_module(module_of[name], "adalink"), name), name
assert set(adalink.__all__) <= set(dir(adalink)) and adalink.io.__name__ == "adalink.io"
try:
    adalink.no_such_name
except AttributeError as err:
    assert "no attribute 'no_such_name'" in str(err)
print(light)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
