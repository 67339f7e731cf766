"""The import contracts in pyproject.toml (``[tool.importlinter]``, checked by ``lint-imports`` in CI) name every
method module, so that a new method is held to "no method imports another" without anyone remembering to add it."""

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "src" / "adalink" / "methods"
# the modules of methods/ that every method may import (docs/architecture.md)
SHARED = {"__init__", "base", "roles", "activations", "_delta", "_cache"}


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_independence_contract_names_every_method_module():
    modules = {path.stem for path in METHODS.glob("*.py")} | {
        path.name for path in METHODS.iterdir() if (path / "__init__.py").is_file()
    }
    (contract,) = [c for c in _contracts() if c["type"] == "independence"]
    assert {name.removeprefix("adalink.methods.") for name in contract["modules"]} == modules - SHARED
