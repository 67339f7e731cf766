"""Adapters save atomically, load only onto their own base model, and corrupt files give clear errors."""

import json
import os
import stat

import pytest
import safetensors.torch
import torch

import adalink.io
from adalink import (
    AdaLinkConfig,
    AdapterFileError,
    FingerprintMismatchError,
    PeftModel,
    UnknownTaskError,
    get_peft_model,
)
from adalink.io import CONFIG_NAME, WEIGHTS_NAME
from tiny_models import build, model_inputs, perturb_adalink, text_batch


def _saved(tmp_path, name="llama", **config):
    model = get_peft_model(build(name), AdaLinkConfig(rank=4, tasks=["a", "b"], **config)).eval()
    perturb_adalink(model)
    model.save_pretrained(tmp_path)
    return model


def test_round_trip_gives_the_same_outputs(text_model_name, tmp_path):
    model = _saved(tmp_path, text_model_name)
    loaded = PeftModel.from_pretrained(build(text_model_name), tmp_path)
    batch = model_inputs(text_model_name, text_batch(batch=2))
    for task in (["a", "b"], "b"):
        assert torch.equal(loaded(**batch, task=task).logits, model(**batch, task=task).logits)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training


def test_files_hold_only_adalink_weights_and_a_fingerprint(tmp_path):
    _saved(tmp_path, "bert", modules_to_save=["classifier"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    tensors = safetensors.torch.load_file(tmp_path / WEIGHTS_NAME)
    assert sorted(tensors) == [
        "adalink.text.down",
        "adalink.text.up",
        "modules_to_save.classifier.bias",
        "modules_to_save.classifier.weight",
    ]
    document = json.loads((tmp_path / CONFIG_NAME).read_text())
    fingerprint = document["base_model"]
    assert fingerprint["architecture"] == "BertForSequenceClassification"
    assert fingerprint["embedding_shape"] == [96, 32] and len(fingerprint["embedding_sha256"]) == 64
    assert document["config"]["tasks"] == ["a", "b"]


def test_modules_to_save_round_trip(tmp_path):
    model = get_peft_model(build("bert"), AdaLinkConfig(rank=4, modules_to_save=["classifier"])).eval()
    with torch.no_grad():
        model.base_model.classifier.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("bert"), tmp_path)
    assert torch.equal(loaded.base_model.classifier.weight, model.base_model.classifier.weight)


def test_a_different_base_model_is_refused(tmp_path):
    _saved(tmp_path)
    with pytest.raises(FingerprintMismatchError) as info:
        PeftModel.from_pretrained(build("llama", seed=1), tmp_path)
    assert "embedding_sha256" in str(info.value) and "ignore_fingerprint=True" in str(info.value)
    loaded = PeftModel.from_pretrained(build("llama", seed=1), tmp_path, ignore_fingerprint=True)
    assert loaded.task_names == ["a", "b"]


def test_a_different_architecture_is_refused(tmp_path):
    _saved(tmp_path, "llama")
    with pytest.raises(
        FingerprintMismatchError,
        match=r"trained on a different base model: LlamaForCausalLM \(llama, .*this model is GPT2LMHeadModel \(gpt2",
    ):
        PeftModel.from_pretrained(build("gpt2"), tmp_path, ignore_fingerprint=False)


def test_loading_a_subset_of_tasks_and_refusing_a_missing_one(tmp_path):
    model = _saved(tmp_path)
    batch = text_batch(batch=2)
    only_b = PeftModel.from_pretrained(build("llama"), tmp_path, tasks=["b"])
    assert only_b.task_names == ["b"]
    assert torch.equal(only_b(**batch).logits, model(**batch, task="b").logits)
    with pytest.raises(UnknownTaskError, match=r"Unknown task 'c'; this adapter has tasks \['a', 'b'\]"):
        PeftModel.from_pretrained(build("llama"), tmp_path, tasks=["c"])


def test_truncated_weights_give_a_clear_error(tmp_path):
    _saved(tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(AdapterFileError, match="truncated or corrupt"):
        PeftModel.from_pretrained(build("llama"), tmp_path)


def test_corrupt_config_gives_a_clear_error(tmp_path):
    _saved(tmp_path)
    (tmp_path / CONFIG_NAME).write_text('{"format": "adalink", "conf')
    with pytest.raises(AdapterFileError, match="not valid JSON"):
        PeftModel.from_pretrained(build("llama"), tmp_path)


def test_missing_files_and_foreign_configs(tmp_path):
    with pytest.raises(AdapterFileError, match="is missing"):
        PeftModel.from_pretrained(build("llama"), tmp_path)
    _saved(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(AdapterFileError, match="not an adalink adapter config"):
        PeftModel.from_pretrained(build("llama"), tmp_path)


def test_corrupt_weights_with_matching_checksum_give_a_clear_error(tmp_path):
    _saved(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    document = json.loads((tmp_path / CONFIG_NAME).read_text())
    document["weights_sha256"] = adalink.io.file_sha256(tmp_path / WEIGHTS_NAME)
    del document["config_sha256"]  # as a file from before the config's own checksum
    (tmp_path / CONFIG_NAME).write_text(json.dumps(document))
    with pytest.raises(AdapterFileError, match="is corrupt"):
        PeftModel.from_pretrained(build("llama"), tmp_path)


def test_a_crash_while_saving_keeps_the_previous_adapter(tmp_path, monkeypatch):
    old = _saved(tmp_path)
    newer = get_peft_model(build("llama"), AdaLinkConfig(rank=4, tasks=["a", "b"])).eval()

    def crash(tensors, path, metadata=None):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(adalink.io, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        newer.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME], "temporary file left behind"
    loaded = PeftModel.from_pretrained(build("llama"), tmp_path)
    batch = text_batch(batch=2)
    assert torch.equal(loaded(**batch, task="a").logits, old(**batch, task="a").logits)


def test_weights_from_another_save_are_refused(tmp_path):
    _saved(tmp_path / "one")
    other = get_peft_model(build("llama"), AdaLinkConfig(rank=4, tasks=["a", "b"]))
    other.save_pretrained(tmp_path / "two")
    (tmp_path / "one" / WEIGHTS_NAME).write_bytes((tmp_path / "two" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(AdapterFileError, match="different saves"):
        PeftModel.from_pretrained(build("llama"), tmp_path / "one")


def test_shape_mismatch_is_refused(tmp_path):
    _saved(tmp_path)
    document = json.loads((tmp_path / CONFIG_NAME).read_text())
    document["config"]["rank"] = 8
    (tmp_path / CONFIG_NAME).write_text(json.dumps(document))
    with pytest.raises(AdapterFileError, match="changed after it was saved"):  # an edited config is refused
        PeftModel.from_pretrained(build("llama"), tmp_path)
    del document["config_sha256"]  # a file from before the config's own checksum: the shapes are still checked
    (tmp_path / CONFIG_NAME).write_text(json.dumps(document))
    with pytest.raises(AdapterFileError, match=r"'adalink\.text\.down' has shape"):
        PeftModel.from_pretrained(build("llama"), tmp_path)


def test_json_documents_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from adalink.io import write_json_atomic

    path = tmp_path / "deep" / "er" / "run.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})  # parent directories are created
    assert path.read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=2)
    write_json_atomic(path, {"b": 1, "a": 2}, sort_keys=True, final_newline=True)
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain write would make it, not mkstemp's 0600

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(adalink.io.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"c": 3})
    assert json.loads(path.read_text()) == {"a": 2, "b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["run.json"], "temporary file left behind"


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_the_permissions_of_the_umask(tmp_path, umask):
    """Adapter and JSON files are made as a plain open() would make them (0o666 less the umask), not owner-only."""
    from adalink.io import make_temp_dir, write_json_atomic

    previous = os.umask(umask)
    try:
        _saved(tmp_path / "adapter")
        write_json_atomic(tmp_path / "run.json", {"a": 1})
        directory = make_temp_dir(tmp_path, ".tmp-")
    finally:
        os.umask(previous)
    for path in (tmp_path / "adapter" / CONFIG_NAME, tmp_path / "adapter" / WEIGHTS_NAME, tmp_path / "run.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (path.name, oct(path.stat().st_mode))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777 & ~umask
