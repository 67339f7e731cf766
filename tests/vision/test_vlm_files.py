"""The files of a TinyVLM directory: reading config.json, checking file digests, hashing weights (no MiniLM needed)."""

import json

import pytest
import torch
from torch import nn

from adalink.vision import TinyVLMConfig, TinyVLMFileError
from adalink.vision.vlm_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_vlm_files,
    read_vlm_config,
    state_sha256,
    write_vlm_config,
    write_weights,
)


def _write(directory, config=None):
    torch.manual_seed(0)
    digest = write_weights(directory / WEIGHTS_NAME, nn.Linear(3, 2).state_dict())
    write_vlm_config(
        directory,
        architecture="TinyVLM",
        config=config or TinyVLMConfig(),
        text_model_sha256="0" * 64,
        files={WEIGHTS_NAME: digest},
    )


def test_written_config_reads_back_and_checks_its_files(tmp_path):
    config = TinyVLMConfig(vision_width=32, vision_heads=2)
    _write(tmp_path, config)
    document = read_vlm_config(tmp_path)
    assert document["model_type"] == "adalink_tiny_vlm" and document["architectures"] == ["TinyVLM"]
    assert check_vlm_files(tmp_path, document) == config

    (tmp_path / WEIGHTS_NAME).write_bytes(b"truncated")
    with pytest.raises(TinyVLMFileError, match="SHA-256"):
        check_vlm_files(tmp_path, document)
    with pytest.raises(TinyVLMFileError, match="invalid TinyVLM config"):
        check_vlm_files(tmp_path, {**document, "config": {"patch_size": 7}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "missing"),
        ("{", "not valid JSON"),
        ('{"format": "adalink"}', "not a TinyVLM config"),
        ('{"format": "adalink-tiny-vlm", "format_version": 99}', "upgrade adalink"),
    ],
)
def test_bad_config_files_are_named(tmp_path, text, message):
    if text is not None:
        (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(TinyVLMFileError, match=message):
        read_vlm_config(tmp_path)


def test_state_sha256_follows_values_not_identity():
    torch.manual_seed(0)
    first = nn.Linear(3, 2)
    second = nn.Linear(3, 2)
    second.load_state_dict(first.state_dict())
    assert state_sha256(first) == state_sha256(second)
    with torch.no_grad():
        second.bias.add_(1e-3)
    assert state_sha256(first) != state_sha256(second)
    assert json.dumps(state_sha256(first))  # a plain hex string, stored in config.json
