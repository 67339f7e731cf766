"""peft's own API on AdaLink: get_peft_model, save/load, fold, disable, named adapters, mixed batches; LoRA beside."""

import peft
import pytest
import torch
from peft import LoraConfig

from adalink import ConfigError, FingerprintMismatchError
from adalink.integrations.peft_config import AdaLinkPeftConfig
from integrations._peft_helpers import TASK_TYPES, logits, peft_banks, perturb_peft
from tiny_models import build, model_inputs, text_batch

ATOL = 1e-6


def _peft_model(name: str = "llama", seed: int = 0, **fields) -> peft.PeftModel:
    fields = {"rank": 4, "dropout": 0.0, "task_type": TASK_TYPES[name], **fields}
    return peft.get_peft_model(build(name, seed=seed), AdaLinkPeftConfig(**fields))


def test_identity_at_init_and_trainable_count(text_model_name, capsys):
    model = _peft_model(text_model_name)
    base = build(text_model_name)
    torch.testing.assert_close(logits(model, text_model_name), logits(base, text_model_name), rtol=0, atol=0)
    model.print_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    links = sum(p.numel() for bank in peft_banks(model) for p in bank.parameters())
    assert links == 2 * 32 * 4  # 2·d·r, one modality
    assert f"trainable params: {trainable:,d}" in capsys.readouterr().out
    assert trainable == links + (32 * 3 + 3 if text_model_name == "bert" else 0)  # + the SEQ_CLS head


def test_save_load_same_logits_and_fingerprint(tmp_path, text_model_name):
    model = _peft_model(text_model_name)
    perturb_peft(model)
    expected = logits(model, text_model_name)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(build(text_model_name), tmp_path)
    assert isinstance(loaded.peft_config["default"], AdaLinkPeftConfig)
    assert (
        loaded.peft_config["default"].base_model_fingerprint["architecture"] == type(loaded.get_base_model()).__name__
    )
    torch.testing.assert_close(logits(loaded, text_model_name), expected, rtol=0, atol=ATOL)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_loading_onto_another_base_is_refused_unless_asked(tmp_path):
    model = _peft_model("llama")
    perturb_peft(model)
    model.save_pretrained(tmp_path)
    with pytest.raises(FingerprintMismatchError, match="ignore_fingerprint=True") as info:
        peft.PeftModel.from_pretrained(build("llama", seed=1), tmp_path)
    assert info.value.args[0].splitlines()[0].startswith("AdaLink adapter 'default' was saved for a different base")
    loaded = peft.PeftModel.from_pretrained(build("llama", seed=1), tmp_path, ignore_fingerprint=True)
    assert loaded.peft_config["default"].base_model_fingerprint is None


def test_merge_and_unload_folds_exactly(text_model_name):
    model = _peft_model(text_model_name)
    perturb_peft(model)
    expected = logits(model, text_model_name)
    plain = model.merge_and_unload()
    assert not isinstance(plain, peft.PeftModel)
    assert not plain.get_input_embeddings()._forward_hooks and not plain._forward_pre_hooks
    torch.testing.assert_close(logits(plain, text_model_name), expected, rtol=1e-5, atol=1e-5)


def test_output_link_folds_into_a_tied_head_and_unmerges():
    model = _peft_model("gpt2", boundaries=["input", "output"])
    perturb_peft(model)
    assert sorted(model.base_model.adalink) == ["output", "text"]
    expected, base = logits(model, "gpt2"), logits(build("gpt2"), "gpt2")
    model.merge_adapter()
    gpt2 = model.get_base_model()
    assert gpt2.lm_head.weight is not gpt2.transformer.wte.weight  # folding untied them
    torch.testing.assert_close(logits(model, "gpt2"), expected, rtol=0, atol=1e-5)
    model.unmerge_adapter()
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, "gpt2"), base, rtol=0, atol=0)


def test_merge_adapter_then_unmerge_gives_the_base_back_bit_for_bit():
    model = _peft_model("llama")
    perturb_peft(model)
    table = model.get_base_model().get_input_embeddings().weight
    expected = logits(model, "llama")
    model.merge_adapter()
    torch.testing.assert_close(logits(model, "llama"), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unmerge_adapter"):
        logits(model, "llama", adapter_names=["default"] * 4)
    model.unmerge_adapter()
    assert model.get_base_model().get_input_embeddings().weight is table
    torch.testing.assert_close(logits(model, "llama"), expected, rtol=0, atol=0)


def test_disable_adapter_is_the_base(text_model_name):
    model = _peft_model(text_model_name)
    perturb_peft(model)
    base = logits(build(text_model_name), text_model_name)
    assert (logits(model, text_model_name) - base).abs().max() > 1e-3
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, text_model_name), base, rtol=0, atol=0)
    assert (logits(model, text_model_name) - base).abs().max() > 1e-3


def _two_adapters(name: str = "llama") -> peft.PeftModel:
    model = _peft_model(name)
    perturb_peft(model, seed=1)
    model.add_adapter("other", AdaLinkPeftConfig(rank=8, dropout=0.0, task_type=TASK_TYPES[name]))
    perturb_peft(model, "other", seed=2)
    return model


def test_named_adapters_switch_and_mix_in_one_batch(text_model_name):
    model = _two_adapters(text_model_name)
    batch = text_batch(batch=3)
    model.set_adapter("default")
    first = logits(model, text_model_name, batch)
    model.set_adapter("other")
    second = logits(model, text_model_name, batch)
    base = logits(build(text_model_name), text_model_name, batch)
    assert (first - second).abs().max() > 1e-3
    mixed = logits(model, text_model_name, batch, adapter_names=["other", "__base__", "default"])
    torch.testing.assert_close(mixed, torch.stack([second[0], base[1], first[2]]), rtol=1e-5, atol=1e-5)


def test_mixed_batch_generate_equals_each_alone():
    model = _two_adapters("llama").eval()
    batch = text_batch(batch=2, length=5)
    kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    mixed = model.generate(**batch, adapter_names=["other", "default"], **kwargs)
    alone = []
    for row, adapter in enumerate(["other", "default"]):
        model.set_adapter(adapter)
        alone.append(model.generate(**{k: v[row : row + 1] for k, v in batch.items()}, **kwargs)[0])
    assert torch.equal(mixed, torch.stack(alone))


def test_mixed_batch_is_refused_clearly():
    model = _two_adapters("llama").eval()
    batch = text_batch(batch=2)
    with pytest.raises(ValueError, match="unknown adapters \\['nope'\\]"):
        logits(model, "llama", batch, adapter_names=["nope", "default"])
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        model.generate(**batch, adapter_names=["default"] * 3, max_new_tokens=1)
    model.train()
    with pytest.raises(ValueError, match=r"model\.eval"):
        model(**batch, adapter_names=["default", "other"])


def test_set_adapter_trains_only_the_active_adapter_and_delete_adapter():
    model = _two_adapters("llama")
    model.set_adapter("other")
    assert all(p.requires_grad for p in peft_banks(model, "other")[0].parameters())
    assert not any(p.requires_grad for p in peft_banks(model, "default")[0].parameters())
    with pytest.raises(ValueError, match="one adapter per example"):
        model.base_model.set_adapter(["default", "other"])
    model.delete_adapter("other")
    assert list(model.peft_config) == ["default"] and model.active_adapter == "default"
    assert (logits(model, "llama") - logits(build("llama"), "llama")).abs().max() > 1e-3


def test_clear_errors_for_what_adalink_cannot_give():
    with pytest.raises(ConfigError, match=r"task_type=None is invalid for BertForSequenceClassification.*'SEQ_CLS'"):
        peft.get_peft_model(build("bert"), AdaLinkPeftConfig())
    with pytest.raises(ConfigError, match=r"AdaLinkPeftConfig.rank=0 is invalid"):
        AdaLinkPeftConfig(rank=0)
    with pytest.raises(ConfigError, match="trainable_token_indices"):
        AdaLinkPeftConfig(trainable_token_indices=[5])
    model = _peft_model("llama")
    with pytest.raises(ConfigError, match="must adapt the same modules"):
        model.add_adapter("img", AdaLinkPeftConfig(modalities={"text": "model.embed_tokens"}, task_type="CAUSAL_LM"))
    with pytest.raises(ConfigError, match="Adapter name 'text' is invalid"):
        model.add_adapter("text", AdaLinkPeftConfig(task_type="CAUSAL_LM"))


def test_peft_lora_keeps_working_beside_adalink(tmp_path):
    adalink_model = _peft_model("llama")
    perturb_peft(adalink_model)
    lora = peft.get_peft_model(
        build("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    expected = logits(lora, "llama")
    lora.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(build("llama"), tmp_path)
    assert type(loaded.base_model).__name__ == "LoraModel"
    torch.testing.assert_close(logits(loaded, "llama"), expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(logits(loaded.merge_and_unload(), "llama"), expected, rtol=1e-5, atol=1e-5)
    assert (logits(adalink_model, "llama") - logits(build("llama"), "llama")).abs().max() > 1e-3


def test_model_inputs_helper_is_used_for_t5():
    assert "decoder_input_ids" in model_inputs("t5", text_batch())
