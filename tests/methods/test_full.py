"""Full tuning as a method config: every base parameter trains, is saved, and reloads."""

from __future__ import annotations

import torch

from adalink import PeftModel, get_peft_model
from adalink.methods.full import FullConfig
from tiny_models import build, text_batch


def test_every_parameter_trains_and_the_model_starts_unchanged():
    base = build("gpt2")
    total = sum(p.numel() for p in base.parameters())
    model = get_peft_model(base, FullConfig())
    assert model.get_nb_trainable_parameters() == (total, total)
    assert model.method_parameter_count() == total
    assert FullConfig.default_lr == 5e-5 and FullConfig.identity_at_init


def test_save_load_after_a_step(tmp_path):
    model = get_peft_model(build("llama"), FullConfig())
    batch = text_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
        assert not torch.allclose(build("llama")(**batch).logits, expected, atol=1e-4)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("llama"), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, atol=0, rtol=0)
