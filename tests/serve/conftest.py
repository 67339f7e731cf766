"""Session-wide runs to serve (see serve_support)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_support import copy_with_chat_template, make_runs

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="session")
def classification_runs(tmp_path_factory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.mktemp("serve-bert"), "bert")


@pytest.fixture(scope="session")
def text2text_runs(tmp_path_factory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.mktemp("serve-llama"), "llama")


@pytest.fixture(scope="session")
def chat_model(text2text_runs, tmp_path_factory) -> Path:
    """The text-to-text runs' tiny Llama, copied with a chat template on its tokenizer."""
    return copy_with_chat_template(text2text_runs["model"], tmp_path_factory.mktemp("chat") / "tiny-llama-chat")
