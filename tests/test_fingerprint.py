"""The base-model fingerprint: a converted base keeps its float32 weights' fingerprint only while it holds the very
parameters it was converted to; anything else is hashed as it is."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adalink import AdaLinkConfig, FingerprintMismatchError, LoRAConfig, get_peft_model
from adalink.fingerprint import base_fingerprint, check_fingerprint, float_fingerprints, keep_float_fingerprints
from ci_strict_skips import requires
from tiny_models import build


def _fingerprint(model: nn.Module, config=None) -> dict:
    return get_peft_model(model, config or LoRAConfig(rank=2)).base_fingerprint()


def _cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model


def test_every_leaf_module_is_recorded_once_with_the_entry_a_live_fingerprint_gives():
    model = build("llama")
    entries = float_fingerprints(model)
    q_proj = "model.layers.0.self_attn.q_proj"
    assert q_proj in entries and "model.embed_tokens" in entries
    assert "model.layers.0" not in entries and "" not in entries  # modules with children are not recorded
    live = base_fingerprint(model, {q_proj: model.get_submodule(q_proj)})
    assert entries[q_proj] == live["modules"][q_proj]
    assert entries["model.embed_tokens"]["sha256"] == live["embedding_sha256"]


def test_a_cast_base_keeps_the_float_fingerprint_only_when_told_so():
    float_print = _fingerprint(build("llama"))
    by_hand = _cast(build("llama"), torch.bfloat16)
    assert _fingerprint(by_hand)["embedding_sha256"] != float_print["embedding_sha256"]  # bf16 rounding is seen

    model = build("llama")
    entries = float_fingerprints(model)
    _cast(model, torch.bfloat16)
    keep_float_fingerprints(model, entries, loaded_as={"dtype": "bfloat16", "quantize": "none"})
    kept = _fingerprint(model)
    assert kept.pop("loaded_as") == {"dtype": "bfloat16", "quantize": "none"}
    assert kept == float_print
    check_fingerprint(float_print, _fingerprint(model), "adapter")  # loaded_as is not compared


def test_replaced_weights_are_hashed_again_and_refused():
    model = build("llama")
    entries = float_fingerprints(model)
    _cast(model, torch.bfloat16)
    keep_float_fingerprints(model, entries, loaded_as={"dtype": "bfloat16", "quantize": "none"})
    float_print = _fingerprint(build("llama"), AdaLinkConfig(rank=2))
    embedding = model.get_input_embeddings()
    embedding.weight = nn.Parameter(embedding.weight.detach() * 2)  # what a merge does: a new parameter
    with pytest.raises(FingerprintMismatchError, match="embedding_sha256"):
        check_fingerprint(float_print, _fingerprint(model, AdaLinkConfig(rank=2)), "adapter")


def test_another_base_is_refused_whatever_its_dtype():
    model = build("llama", seed=1)
    entries = float_fingerprints(model)
    _cast(model, torch.bfloat16)
    keep_float_fingerprints(model, entries, loaded_as={"dtype": "bfloat16", "quantize": "none"})
    with pytest.raises(FingerprintMismatchError):
        check_fingerprint(_fingerprint(build("llama", seed=0)), _fingerprint(model), "adapter")


def test_a_base_quantized_by_other_means_is_fingerprinted_by_its_dequantized_weights():
    requires("torchao", reason="pip install 'adalink[quant]' (torchao)")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = build("llama")
    quantize_(model, Int8WeightOnlyConfig())
    quantized = _fingerprint(model)
    q_proj = "model.layers.0.self_attn.q_proj"
    assert quantized["modules"][f"{q_proj}"]["shapes"] == [[32, 32]]
    assert quantized["modules"][q_proj]["sha256"] != _fingerprint(build("llama"))["modules"][q_proj]["sha256"]
