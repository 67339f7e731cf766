import json
import os
import stat

import pytest
import torch

from adalink.training.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    load_trainable,
    optimizer_state_by_index,
    optimizer_state_by_name,
    read_best,
    read_checkpoint,
    restore_rng,
    rng_state,
    set_rng_state,
    trainable_tensors,
    write_checkpoint,
)


def _write(root, step, keep=2, best=True):
    return write_checkpoint(
        root,
        step,
        trainable={"w": torch.full((2,), float(step))},
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": step},
        rng_states=[rng_state()],
        state={"tokens": step},
        keep=keep,
        best={"w": torch.full((2,), step / 2)} if best else None,
    )


def test_latest_points_at_the_newest_and_old_ones_are_pruned(tmp_path):
    for step in (10, 20, 30):
        _write(tmp_path, step)
    assert latest_checkpoint(tmp_path).name == "step-00000030"
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000020", "step-00000030"]
    tensors, _, scheduler, state = read_checkpoint(latest_checkpoint(tmp_path))
    assert tensors["w"].tolist() == [30.0, 30.0] and scheduler == {"last_epoch": 30} and state["step"] == 30


def test_a_crash_mid_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    _write(tmp_path, 10)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, 20)
    assert latest_checkpoint(tmp_path).name == "step-00000010"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".step")] == []


def test_rng_round_trip(tmp_path):
    torch.manual_seed(3)
    path = _write(tmp_path, 1)
    expected = torch.rand(3)
    torch.manual_seed(99)
    restore_rng(path, 0)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(CheckpointError, match="different number of processes"):
        restore_rng(path, 1)


def test_dangling_pointer_is_an_error(tmp_path):
    (tmp_path / "latest").write_text("step-00000099")
    with pytest.raises(CheckpointError, match="missing or incomplete"):
        latest_checkpoint(tmp_path)


def test_checkpoints_get_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = _write(tmp_path, 10)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    for file in [*path.iterdir(), tmp_path / "latest"]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name


def test_the_best_weights_are_kept_beside_the_trainable_ones(tmp_path):
    assert read_best(_write(tmp_path / "a", 10))["w"].tolist() == [5.0, 5.0]
    assert read_best(_write(tmp_path / "b", 10, best=False)) is None  # a run without --eval-every


def test_trainable_tensors_round_trip_and_misfits_are_refused():
    model, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    other.bias.requires_grad_(False)
    load_trainable(other, trainable_tensors(model), "the best weights")
    assert torch.equal(other.weight, model.weight) and trainable_tensors(model).keys() == {"weight"}
    with pytest.raises(CheckpointError, match=r"the best weights does not fit .*\['weight'\]"):
        load_trainable(other, {"weight": torch.zeros(3, 2)}, "the best weights")


def test_set_rng_state_puts_back_what_rng_state_took():
    state = rng_state()
    expected = torch.rand(2)
    set_rng_state(state)
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize(
    "name", ["trainable.safetensors", "optimizer.pt", "rng-0.pt", "state.json", "best.safetensors"]
)
def test_a_damaged_or_swapped_file_is_refused(tmp_path, name):
    _write(tmp_path / "a", 10)
    path = latest_checkpoint(tmp_path / "a")
    torch.rand(1)  # another random state too
    other = _write(tmp_path / "b", 20)
    damaged = bytearray((path / name).read_bytes())
    damaged[len(damaged) // 2] ^= 0x04
    for content in (bytes(damaged), (path / name).read_bytes()[:-7], (other / name).read_bytes()):
        (path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="corrupt"):
            read_checkpoint(path)
        if name in ("best.safetensors", "state.json"):
            with pytest.raises(CheckpointError, match="corrupt"):
                read_best(path)


def test_checkpoints_from_before_the_checksums_still_load(tmp_path):
    path = _write(tmp_path, 10)
    state = json.loads((path / "state.json").read_text())
    del state["files_sha256"], state["state_sha256"]
    (path / "state.json").write_text(json.dumps(state))
    assert read_checkpoint(path)[3] == {"tokens": 10, "step": 10}


def test_an_optimiser_state_moves_between_index_and_name_keys():
    """A sharded run's checkpoint keys the optimiser state by parameter name; either form loads into either run."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    optimizer = torch.optim.AdamW([{"params": [model[1].weight]}, {"params": [model[0].weight], "lr": 0.5}])
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    names = ["1.weight", "0.weight"]  # the optimiser's order
    by_name = optimizer_state_by_name(optimizer.state_dict(), names)
    assert [g["params"] for g in by_name["param_groups"]] == [["1.weight"], ["0.weight"]]
    assert torch.equal(by_name["state"]["0.weight"]["exp_avg"], optimizer.state[model[0].weight]["exp_avg"])
    assert optimizer_state_by_name(by_name, names) is by_name
    back = optimizer_state_by_index(by_name, names)
    assert back["param_groups"] == optimizer.state_dict()["param_groups"]
    assert back["state"].keys() == optimizer.state_dict()["state"].keys()
    with pytest.raises(CheckpointError, match=r"names parameters this run lacks: \['0.weight'\]"):
        optimizer_state_by_index(by_name, ["1.weight", "2.weight"])
