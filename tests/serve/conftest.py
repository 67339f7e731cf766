"""Session-wide runs to serve (see serve_support)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_support import make_runs

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="session")
def classification_runs(tmp_path_factory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.mktemp("serve-bert"), "bert")


@pytest.fixture(scope="session")
def text2text_runs(tmp_path_factory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.mktemp("serve-llama"), "llama")
