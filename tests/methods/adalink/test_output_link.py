"""The output link (``boundaries=["input", "output"]``): one more link per task on the LM head's input (issue 26).

The reference for every case is the plain base model's last hidden state ``h`` fed to the head by hand after one
application of the output bank (and, with "input", the input link applied as usual).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, BertConfig, BertModel, LlamaForCausalLM

from adalink import AdaLinkConfig, ConfigError, PeftModel, get_peft_model
from adalink.methods.adalink.sites import OUTPUT, resolve_sites
from tiny_models import build, perturb_adalink, text_batch

TASKS = ["a", "b"]


def tiny_llama(tied: bool) -> torch.nn.Module:
    """The tests' tiny Llama with its head tied to the input table (SmolLM2's layout) or not."""
    config = build("llama").config
    config.tie_word_embeddings = tied
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def _model(base: torch.nn.Module, boundaries: list[str], **config) -> PeftModel:
    model = get_peft_model(base, AdaLinkConfig(rank=4, tasks=TASKS, boundaries=boundaries, **config)).eval()
    perturb_adalink(model)
    return model


def _by_hand(model: PeftModel, batch: dict[str, torch.Tensor], task: int) -> torch.Tensor:
    """Logits of the output link alone: the base's last hidden state, adapted once, through the head."""
    with torch.no_grad(), model.disable_adapter():
        hidden = model(**batch, output_hidden_states=True).hidden_states[-1]  # (B, T, d), after the final norm
        bank = model.adalink[OUTPUT]
        return model.base_model.get_output_embeddings()(hidden + hidden @ bank.down[task] @ bank.up[task])


# ------------------------------------------------------------------------------------------------ config
def test_default_adapts_the_input_boundary_only():
    assert AdaLinkConfig().boundaries == ["input"]
    model = get_peft_model(build("llama"), AdaLinkConfig(rank=4))
    assert list(model.adalink) == ["text"]


@pytest.mark.parametrize("value", [[], ["inputs"], ["input", "input"], ["output", 3], "output"])
def test_bad_boundaries_name_field_value_and_expectation(value):
    with pytest.raises(ConfigError) as info:
        AdaLinkConfig(boundaries=value)
    assert f"AdaLinkConfig.boundaries={value!r} is invalid" in str(info.value)
    assert "['input', 'output']" in str(info.value)


def test_a_modality_named_output_is_refused_beside_the_output_link():
    with pytest.raises(ConfigError, match=r"AdaLinkConfig.modalities=.*no modality named 'output'"):
        AdaLinkConfig(modalities={"output": "input_embeddings"}, boundaries=["input", "output"])
    AdaLinkConfig(modalities={"output": "input_embeddings"})  # without the output link the name is free


def test_encoder_classifier_is_refused_with_its_reason():
    with pytest.raises(
        ConfigError, match=r"BertForSequenceClassification: expected a model with a head onto the vocab"
    ):
        get_peft_model(build("bert"), AdaLinkConfig(boundaries=["input", "output"]))


def test_model_without_output_embeddings_is_refused():
    bert = BertModel(BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(ConfigError, match=r"BertModel: expected a model with an output embedding module"):
        get_peft_model(bert, AdaLinkConfig(boundaries=["output"]))


# ------------------------------------------------------------------------------------------------ attaching
@pytest.mark.parametrize(("boundaries", "banks"), [(["output"], [OUTPUT]), (["input", "output"], ["text", OUTPUT])])
def test_one_link_per_task_and_boundary(boundaries, banks):
    model = get_peft_model(build("llama"), AdaLinkConfig(rank=4, tasks=TASKS, boundaries=boundaries))
    assert list(model.adalink) == banks
    assert model.method_parameter_count() == len(banks) * len(TASKS) * 2 * 32 * 4  # 2·d·r per task and link
    assert model.adalink[OUTPUT].down.requires_grad and not model.base_model.lm_head.weight.requires_grad
    (site,) = [s for s in resolve_sites(model.base_model, model.peft_config) if s.boundary == "output"]
    assert site.module is model.base_model.lm_head and site.dim == 32


def test_zero_init_is_the_base_model():
    base = build("llama")
    model = get_peft_model(base, AdaLinkConfig(rank=4, boundaries=["input", "output"])).eval()
    batch = text_batch()
    with torch.no_grad():
        adapted = model(**batch).logits
        with model.disable_adapter():
            plain = model(**batch).logits
    assert torch.equal(adapted, plain)


@pytest.mark.parametrize("tied", [False, True])
def test_output_link_adapts_the_heads_input_once(tied):
    model = _model(tiny_llama(tied), ["output"])
    batch = text_batch()
    with torch.no_grad():
        logits = model(**batch, task="b").logits
    torch.testing.assert_close(logits, _by_hand(model, batch, 1), atol=1e-5, rtol=0)
    assert not torch.allclose(logits, _by_hand(model, batch, 0), atol=1e-3)  # the task matters


def test_mixed_batch_equals_each_example_alone():
    model = _model(build("llama"), ["input", "output"])
    batch, tasks = text_batch(), ["a", "b", "b", "a"]
    with torch.no_grad():
        mixed = model(**batch, task=tasks).logits
        for i, task in enumerate(tasks):
            alone = model(**{k: v[i : i + 1] for k, v in batch.items()}, task=task).logits
            torch.testing.assert_close(mixed[i : i + 1], alone, atol=1e-5, rtol=0)


def test_generate_routes_the_output_link():
    model = _model(build("llama"), ["input", "output"])
    batch = text_batch(batch=2, length=5)
    with torch.no_grad():
        mixed = model.generate(**batch, task=["a", "b"], max_new_tokens=4, do_sample=False)
        alone = model.generate(**{k: v[1:] for k, v in batch.items()}, task="b", max_new_tokens=4, do_sample=False)
        with model.disable_adapter():
            plain = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert torch.equal(mixed[1:], alone) and not torch.equal(mixed, plain)


def test_only_the_links_train():
    model = get_peft_model(tiny_llama(tied=True), AdaLinkConfig(rank=4, boundaries=["input", "output"]))
    perturb_adalink(model)
    head = model.base_model.lm_head.weight.detach().clone()
    loss = model(**text_batch(), labels=text_batch()["input_ids"]).loss
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adalink.parameters())
    assert all(p.grad is None for p in model.base_model.parameters())
    assert torch.equal(model.base_model.lm_head.weight, head)


# ------------------------------------------------------------------------------------------------ files
def test_save_load_and_select_tasks(tmp_path):
    model = _model(tiny_llama(tied=True), ["input", "output"])
    batch = text_batch()
    with torch.no_grad():
        expected = model(**batch, task="b").logits
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(tiny_llama(tied=True), tmp_path)
    assert loaded.peft_config.boundaries == ["input", "output"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch, task="b").logits, expected, atol=0, rtol=0)
    only_b = PeftModel.from_pretrained(tiny_llama(tied=True), tmp_path, tasks=["b"])
    assert only_b.adalink[OUTPUT].down.shape[0] == 1
    with torch.no_grad():
        torch.testing.assert_close(only_b(**batch).logits, expected, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------ folding
@pytest.mark.parametrize("boundaries", [["output"], ["input", "output"]])
@pytest.mark.parametrize("tied", [False, True])
def test_fold_is_exact_and_unties_a_tied_head(tied, boundaries, tmp_path):
    base = tiny_llama(tied)
    table = base.get_input_embeddings().weight.detach().clone()
    model = _model(base, boundaries)
    batch = text_batch()
    with torch.no_grad():
        expected = model(**batch, task="b").logits
    merged = model.merge_and_unload(task="b")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in merged.modules()), "hooks left behind"
    assert merged.lm_head.weight is not merged.get_input_embeddings().weight  # the head has its own weight now
    if boundaries == ["output"]:  # the input table is exactly as it was, tied or not
        assert torch.equal(merged.get_input_embeddings().weight, table)
    assert merged.config.tie_word_embeddings is False
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
    merged.save_pretrained(tmp_path)  # a plain transformers checkpoint that reloads untied
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.lm_head.weight.data_ptr() != reloaded.get_input_embeddings().weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-5, rtol=0)


def test_fold_formula_is_the_heads_rows_times_identity_plus_map_transposed():
    model = _model(build("llama"), ["output"])
    bank, weight = model.adalink[OUTPUT], model.base_model.lm_head.weight.detach().double().clone()
    linear_map = (bank.down[0] @ bank.up[0]).detach().double()
    merged = model.merge_and_unload(task="a")
    eye = torch.eye(32, dtype=torch.float64)
    torch.testing.assert_close(merged.lm_head.weight.double(), weight @ (eye + linear_map).T, atol=1e-5, rtol=0)


def test_gpt2_tied_head_folds_without_touching_the_table():
    model = _model(build("gpt2"), ["output"])
    table = model.base_model.transformer.wte.weight.detach().clone()
    batch = text_batch()
    with torch.no_grad():
        expected = model(**batch, task="a").logits
    merged = model.merge_and_unload(task="a")
    assert (
        torch.equal(merged.transformer.wte.weight, table) and merged.lm_head.weight is not merged.transformer.wte.weight
    )
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
