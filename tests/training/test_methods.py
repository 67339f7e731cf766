"""The harness's methods by name: every registered config, full tuning included, and its default learning rate."""

import pytest

from adalink import METHOD_CONFIGS
from adalink.training.methods import attach_method, default_lr, method_names
from tiny_models import build


def test_every_registered_method_is_offered_and_full_tuning_among_them():
    assert method_names() == sorted(METHOD_CONFIGS) and "full" in method_names()
    assert default_lr("full") == 5e-5 and default_lr("adalink") == 2e-3


@pytest.mark.parametrize("method", method_names())
def test_default_lr_is_the_configs_own(method):
    assert default_lr(method) == METHOD_CONFIGS[method].default_lr


def test_full_tuning_trains_the_plain_model_in_place_and_unknown_methods_are_named():
    base = build("bert").requires_grad_(False)
    attached = attach_method("full", base, rank=4, dropout=0.1, tasks=["t"], heads=[])
    assert attached.model is base and not attached.saves_adapter and not attached.task_aware
    assert all(p.requires_grad for p in base.parameters())
    with pytest.raises(ValueError, match="--method 'nope' is unknown"):
        attach_method("nope", build("bert"), rank=4, dropout=0.1, tasks=["t"], heads=[])
