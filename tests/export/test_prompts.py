"""Prompt and prefix tuning: the evaluated prompt/prefix (residual MLP, prefix MLP) and peft's T5 prefix layout."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from adalink import PrefixTuningConfig, PromptTuningConfig, get_peft_model
from adalink.export import ExportError, export_peft, seq2seq_prefix_rows
from export import _helpers as helpers
from tiny_models import build


def test_residual_prompt_is_exported_as_the_prompt_it_produces(tmp_path):
    config = PromptTuningConfig(num_virtual_tokens=4, residual=True, residual_hidden=8, dropout=0.1)
    ours = helpers.perturb(get_peft_model(build("llama"), config))
    helpers.assert_same_outputs(ours, helpers.load_in_peft("llama", export_peft(ours, tmp_path)), "llama")


def test_prefix_mlp_is_exported_as_the_prefix_it_produces(tmp_path):
    ours = helpers.perturb(
        get_peft_model(build("gpt2"), PrefixTuningConfig(num_virtual_tokens=4, encoder_hidden_size=8))
    )
    assert ours.prefix_tuning.bank.projection
    helpers.assert_same_outputs(ours, helpers.load_in_peft("gpt2", export_peft(ours, tmp_path)), "gpt2")


def test_seq2seq_prefix_rows_follow_peft_layout():
    assert seq2seq_prefix_rows(2) == [(0, 1), (0, 1)]  # both layers read rows 0 and 1
    assert seq2seq_prefix_rows(3) == [(0, 1), (4, 5), (2, 3)]  # a permutation: every layer its own rows


def _t5(layers: int) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=96, d_model=32, d_ff=64, d_kv=8, num_layers=layers, num_heads=4, decoder_start_token_id=0
    )
    return T5ForConditionalGeneration(config).eval()


def test_t5_prefix_with_an_odd_number_of_layers_is_exact(tmp_path):
    ours = helpers.perturb(get_peft_model(_t5(3), PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=False)))
    theirs = helpers.load_in_peft("t5", export_peft(ours, tmp_path), base=_t5(3))
    helpers.assert_same_outputs(ours, theirs, "t5")


def test_t5_prefix_with_an_even_number_of_layers_exports_only_when_layers_share_it(tmp_path):
    ours = helpers.perturb(get_peft_model(_t5(2), PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=False)))
    with pytest.raises(ExportError, match=r"layers 0 and 1 read the same rows.*adalink serve"):
        export_peft(ours, tmp_path)
    assert not any(tmp_path.iterdir())
    prefix = ours.prefix_tuning.bank.prefix
    with torch.no_grad():
        layers = prefix.view(1, 3, 2, -1)
        layers[:, :, 1] = layers[:, :, 0]  # layer 1 gets layer 0's prefix: then peft's layout holds it
    helpers.assert_same_outputs(ours, helpers.load_in_peft("t5", export_peft(ours, tmp_path), base=_t5(2)), "t5")
