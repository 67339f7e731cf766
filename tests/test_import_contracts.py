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
