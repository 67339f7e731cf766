"""Prompt tuning: equal to Hugging Face peft (outputs, counts, generate), per-example routing, residual, save/load."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.prompt_tuning import PromptTuningConfig
from methods import _helpers as helpers
from tiny_models import build, text_batch

N = 5


def _pair(name: str, **kwargs):
    """Our prompt tuning and peft's on two copies of one tiny model, with the same (random) prompt."""
    heads = ["classifier"] if name == "bert" else []  # peft trains the classifier of SEQ_CLS models
    ours = get_peft_model(build(name), PromptTuningConfig(num_virtual_tokens=N, modules_to_save=heads, **kwargs))
    with torch.no_grad():
        ours.prompt_tuning.bank.prompt.normal_(0, 1)
    return ours.eval(), helpers.peft_twin(ours, name).eval()


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "t5"])
def test_equals_peft_prompt_tuning(name):
    ours, theirs = _pair(name)
    batch = helpers.left_padded_inputs(name)
    if name in ("gpt2", "llama"):
        batch["labels"] = batch["input_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, ref = ours(**batch), theirs(**batch)
        with ours.disable_adapter():
            base = ours(**batch).logits
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)
    assert base.shape != out.logits.shape or not torch.allclose(base, out.logits, atol=1e-3)
    if "labels" in batch:
        torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=1e-5)
    assert ours.get_nb_trainable_parameters()[0] == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_generate_equals_peft(name):
    ours, theirs = _pair(name)
    batch = text_batch(batch=2)
    mine, reference = helpers.greedy_generations(ours, theirs, name, batch)
    assert torch.equal(mine, reference)
    assert mine.shape[1] == (batch["input_ids"].shape[1] if name != "t5" else 1) + 6


def test_mixed_batch_equals_each_example_alone_in_generate():
    model = get_peft_model(build("gpt2"), PromptTuningConfig(num_virtual_tokens=N, tasks=["a", "b"])).eval()
    with torch.no_grad():
        model.prompt_tuning.bank.prompt.normal_(0, 1)
    batch, tasks = text_batch(batch=3), ["b", "a", "b"]
    with torch.no_grad():
        mixed = model.generate(**batch, task=tasks, max_new_tokens=4, do_sample=False)
        for i, task in enumerate(tasks):
            alone = model.generate(**{k: v[i : i + 1] for k, v in batch.items()}, task=task, max_new_tokens=4)
            assert torch.equal(mixed[i : i + 1], alone)
        assert not torch.equal(model(**batch, task="a").logits, model(**batch, task="b").logits)


def test_residual_reparametrisation_trains_and_reloads(tmp_path):
    config = PromptTuningConfig(num_virtual_tokens=N, residual=True, residual_hidden=8, tasks=["a", "b"])
    model = get_peft_model(build("llama"), config)
    d, h = 32, 8
    assert model.method_parameter_count() == 2 * (N * d + d * h + h + h * d + d + 2 * d)
    batch = text_batch()
    helpers.train_steps(model, batch, task="a")
    assert model.prompt_tuning.bank.up.grad[0].abs().sum() > 0 and model.prompt_tuning.bank.up.grad[1].abs().sum() == 0
    model.eval()
    with torch.no_grad():
        expected = model(**batch, task="b").logits
        mixed = model(**batch, task=["a", "b", "a", "b"]).logits
    torch.testing.assert_close(mixed[1::2], expected[1::2], atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("llama"), tmp_path, tasks=["b"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, atol=1e-6, rtol=1e-6)
    assert torch.equal(loaded.unload()(**batch).logits, build("llama")(**batch).logits)


def test_vocab_init_and_token_type_ids():
    model = get_peft_model(build("bert"), PromptTuningConfig(num_virtual_tokens=N, init="vocab"))
    table = model.base_model.get_input_embeddings().weight
    rows = model.prompt_tuning.bank.prompt[0]
    assert all((table == row).all(-1).any() for row in rows)  # every soft token starts as a vocabulary embedding
    batch = text_batch()
    batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    model(**batch)  # token_type_ids are lengthened with the mask


@pytest.mark.parametrize(
    ("field", "value"), [("num_virtual_tokens", 0), ("init", "zeros"), ("residual", "yes"), ("dropout", 1.5)]
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=re.escape(f"PromptTuningConfig.{field}={value!r}")):
        PromptTuningConfig(**{field: value})
