"""Prefix tuning: equal to Hugging Face peft (outputs, counts, generate), MLP dropped at save, routing, unload."""

from __future__ import annotations

import re
import warnings

import peft
import pytest
import torch
from safetensors.torch import load_file

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.export import seq2seq_prefix_rows
from adalink.methods.prefix_tuning import PrefixTuningConfig
from methods import _helpers as helpers
from tiny_models import build, model_inputs, text_batch

N, LAYERS = 5, 2


def _peft(name: str, **kwargs):
    config = peft.PrefixTuningConfig(task_type=helpers.TASK_TYPES[name], num_virtual_tokens=N, **kwargs)
    return peft.get_peft_model(build(name), config)


def _pair(name: str):
    """Our prefix tuning (no MLP) and peft's on two copies of one tiny model, with the same random prefix."""
    heads = ["classifier"] if name == "bert" else []  # peft trains the classifier of SEQ_CLS models
    config = PrefixTuningConfig(num_virtual_tokens=N, prefix_projection=False, modules_to_save=heads)
    ours = get_peft_model(build(name), config)
    if name != "t5":
        with torch.no_grad():
            ours.prefix_tuning.bank.prefix.normal_(0, 1)
        return ours.eval(), helpers.peft_twin(ours, name).eval()
    # peft's encoder-decoder layout makes both tiny T5 decoder layers read rows 0 and 1 of its table (the export
    # refuses layer-specific prefixes there): fill peft's table and give ours the rows each layer reads
    theirs = _peft(name)
    table = theirs.prompt_encoder["default"].embedding.weight  # (n, L·2·H·d)
    with torch.no_grad():
        table.normal_(0, 1)
        used = [row for pair in seq2seq_prefix_rows(LAYERS) for row in pair]
        ours.prefix_tuning.bank.prefix[0].copy_(table.view(N, 2 * LAYERS, -1)[:, used].reshape(N, -1))
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "t5"])
def test_equals_peft_prefix_tuning(name):
    ours, theirs = _pair(name)
    batch = helpers.left_padded_inputs(name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, ref = ours(**batch).logits, theirs(**batch).logits
        with ours.disable_adapter():
            assert not torch.allclose(ours(**batch).logits, out, atol=1e-3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert ours.get_nb_trainable_parameters()[0] == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "t5"])
def test_parameter_counts_with_the_mlp_equal_peft(name):
    heads = ["classifier"] if name == "bert" else []
    ours = get_peft_model(
        build(name), PrefixTuningConfig(num_virtual_tokens=N, encoder_hidden_size=16, modules_to_save=heads)
    )
    theirs = _peft(name, prefix_projection=True, encoder_hidden_size=16)
    assert ours.get_nb_trainable_parameters()[0] == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_generate_equals_peft(name):
    ours, theirs = _pair(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine, reference = helpers.greedy_generations(ours, theirs, name, text_batch(batch=2))
    assert torch.equal(mine, reference)


def test_mlp_is_dropped_at_save_and_the_reload_is_equal(tmp_path):
    model = get_peft_model(build("gpt2"), PrefixTuningConfig(num_virtual_tokens=N, encoder_hidden_size=16))
    batch = text_batch()
    helpers.train_steps(model, batch)  # through the MLP
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert list(saved) == ["prefix_tuning.bank.prefix"]
    assert saved["prefix_tuning.bank.prefix"].shape == (1, N, LAYERS * 2 * 32)
    loaded = PeftModel.from_pretrained(build("gpt2"), tmp_path, is_trainable=True)
    assert [n for n, _ in loaded.adapter_modules.named_parameters()] == ["bank.prefix"]
    assert loaded.method_parameter_count() == N * LAYERS * 2 * 32
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    model.train()  # saving did not stop training through the MLP
    assert model.prefix_tuning.bank.projection
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert model.prefix_tuning.bank.up.grad is not None
    assert torch.equal(loaded.unload()(**batch).logits, build("gpt2")(**batch).logits)


@pytest.mark.parametrize("name", ["bert", "llama", "t5"])
def test_mixed_task_batch_equals_each_example_alone(name):
    model = get_peft_model(build(name), PrefixTuningConfig(num_virtual_tokens=N, tasks=["a", "b"])).eval()
    batch, tasks = model_inputs(name, text_batch(batch=3)), ["b", "a", "b"]
    with torch.no_grad():
        mixed = model(**batch, task=tasks).logits
        for i, task in enumerate(tasks):
            alone = model(**{k: v[i : i + 1] for k, v in batch.items()}, task=task).logits
            torch.testing.assert_close(mixed[i : i + 1], alone, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(**batch, task="a").logits, model(**batch, task="b").logits, atol=1e-4)


@pytest.mark.parametrize(
    ("field", "value"), [("num_virtual_tokens", 0), ("prefix_projection", 1), ("encoder_hidden_size", -2)]
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=re.escape(f"PrefixTuningConfig.{field}={value!r}")):
        PrefixTuningConfig(**{field: value})
