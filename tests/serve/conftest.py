"""Session-wide runs to serve (see serve_support)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adalink.cli import main
from serve_support import copy_with_chat_template, make_runs, perturb, write_topic_csv

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


@pytest.fixture(scope="session")
def output_link_run(text2text_runs, tmp_path_factory) -> Path:
    """A text-to-text run on the runs' tiny Llama (untied head) with AdaLink on both boundaries."""
    root = tmp_path_factory.mktemp("output-link")
    args = ["train", "--model", str(text2text_runs["model"]), "--train-file", write_topic_csv(root / "topic.csv")]
    args += ["--rank", "4", "--max-steps", "2", "--batch-size", "8", "--max-eval", "4", "--save-every", "100"]
    args += ["--method-config", '{"boundaries": ["input", "output"]}', "--output-dir", str(root / "linked")]
    assert main(args) == 0
    perturb(root / "linked", seed=3)  # both links visibly non-zero
    return root / "linked"
