"""Every python block of docs/peft-trl.md runs, in order, on a tiny Llama (`model_path`, `tokenizer` given)."""

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tiny_models import save_tiny_checkpoint

pytest.importorskip("trl", reason="pip install 'adalink[trl]'")

DOC = Path(__file__).resolve().parents[2] / "docs" / "peft-trl.md"


def test_docs_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_path = save_tiny_checkpoint(tmp_path / "base", "llama")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as a causal LM's own tokenizer (no token types)
    tokenizer.eos_token = "[SEP]"
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    namespace = {"model_path": model_path, "tokenizer": tokenizer}
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["ids"].shape[0] == 2 and namespace["trainer"].state.global_step == 3
    assert (tmp_path / "adapters" / "adalink-format" / "adapter_config.json").exists()
    assert namespace["dirs"] == {"default": Path("adapters/peft-again")}
