"""Damaged adapter and checkpoint files: truncated, bit-flipped, swapped with another save's or foreign. Each gives
a clear ``AdapterFileError`` / ``CheckpointError``, or (when the damage changed nothing that matters, e.g. it only
dropped the config's own checksum field) loads exactly what was saved: never a silent load of other weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from adalink import AdapterFileError, LoRAConfig, PeftModel, get_peft_model
from adalink.io import CONFIG_NAME, WEIGHTS_NAME, read_adapter
from adalink.training.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    read_checkpoint,
    restore_rng,
    rng_state,
    write_checkpoint,
)
from fuzz.strategies import JSON, st
from tiny_models import build

hypothesis = pytest.importorskip("hypothesis")
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

EXAMPLES = 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _adapter(directory: Path, seed: int) -> PeftModel:
    torch.manual_seed(seed)
    model = get_peft_model(build("gpt2"), LoRAConfig(rank=2, tasks=["a", "b"]))
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.normal_()
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-files")
    _adapter(root / "one", 1)
    _adapter(root / "two", 2)  # another save of the same kind: its files are the "swapped" ones
    return {"one": root / "one", "two": root / "two"}


def _damage(data: bytes, draw, other: bytes) -> bytes:
    """One kind of damage to a file's bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "swap", "foreign", "splice"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "flip":
        position = draw(st.integers(0, len(data) - 1))
        return data[:position] + bytes([data[position] ^ (1 << draw(st.integers(0, 7)))]) + data[position + 1 :]
    if kind == "swap":
        return other
    if kind == "foreign":
        return draw(st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()))
    cut = draw(st.integers(0, min(len(data), len(other))))  # the start of one file and the end of another
    return data[:cut] + other[cut:]


@FUZZ
@given(data=st.data())
def test_a_damaged_adapter_is_refused_or_loads_exactly_what_was_saved(saved, tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("adapter")
    shutil.copytree(saved["one"], directory, dirs_exist_ok=True)
    name = data.draw(st.sampled_from([WEIGHTS_NAME, CONFIG_NAME]))
    original = (directory / name).read_bytes()
    (directory / name).write_bytes(_damage(original, data.draw, (saved["two"] / name).read_bytes()))
    expected_document, expected = read_adapter(saved["one"])
    try:
        loaded = PeftModel.from_pretrained(build("gpt2"), directory)
    except AdapterFileError as err:
        assert str(directory) in str(err), err  # the message names the file or directory
        return
    state = {k: v.detach() for k, v in loaded.adapter_state_dict().items()}
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)
    assert loaded.peft_config.to_dict() == expected_document["config"]


def _checkpoint(root: Path, step: int, value: float) -> Path:
    torch.manual_seed(step)
    torch.rand(1)
    return write_checkpoint(
        root,
        step,
        trainable={"w": torch.full((4,), value), "b": torch.arange(3.0)},
        optimizer={"state": {0: {"exp_avg": torch.full((4,), value)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        scheduler={"last_epoch": step},
        rng_states=[rng_state()],
        state={"args": {"lr": 0.1}, "tokens": step * 10, "history": [1.0] * step},
        keep=3,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-checkpoints")
    return {"one": _checkpoint(root / "a", 10, 1.5), "two": _checkpoint(root / "b", 20, -2.0)}


@FUZZ
@given(data=st.data())
def test_a_damaged_checkpoint_is_refused_or_reads_exactly_what_was_written(checkpoints, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("ckpt")
    shutil.copytree(checkpoints["one"].parent, root, dirs_exist_ok=True)
    path = root / checkpoints["one"].name
    name = data.draw(st.sampled_from(["trainable.safetensors", "optimizer.pt", "rng-0.pt", "state.json", "latest"]))
    target = root / name if name == "latest" else path / name
    other = (checkpoints["two"].parent / name) if name == "latest" else (checkpoints["two"] / name)
    target.write_bytes(_damage(target.read_bytes(), data.draw, other.read_bytes()))
    expected = read_checkpoint(checkpoints["one"])
    try:
        found = latest_checkpoint(root)
        tensors, optimizer, scheduler, state = read_checkpoint(found)
        restore_rng(found, 0)
    except CheckpointError as err:
        assert str(root) in str(err), err
        return
    assert found == path and state == expected[3] and scheduler == expected[2]
    assert tensors.keys() == expected[0].keys() and all(torch.equal(tensors[k], expected[0][k]) for k in tensors)
    assert torch.equal(optimizer["state"][0]["exp_avg"], expected[1]["state"][0]["exp_avg"])
