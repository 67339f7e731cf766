"""The harness's methods by name: every registered config, full tuning included, its default learning rate, and
the config a run resolves from the method's own defaults and the command line."""

import pytest

from adalink import METHOD_CONFIGS, AdaLinkConfig, ConfigError, get_peft_model
from adalink.training.methods import default_lr, method_names, resolve_method_config
from tiny_models import build


def _resolve(method, **options):
    values = {"rank": None, "dropout": None, "tasks": ["t"], "heads": [], **options}
    return resolve_method_config(method, **values)


def test_every_registered_method_is_offered_and_full_tuning_among_them():
    assert method_names() == sorted(METHOD_CONFIGS) and "full" in method_names()
    assert default_lr("full") == 5e-5 and default_lr("adalink") == 5e-3


def test_adalink_rate_keeps_its_first_step_across_ranks():
    # 5e-3 at rank 8, times (8/r)^0.75 (docs/adalink-on-decoders.md §2); other methods keep their class rate
    assert AdaLinkConfig(rank=8).learning_rate() == 5e-3
    assert AdaLinkConfig(rank=64).learning_rate() == pytest.approx(5e-3 * (8 / 64) ** 0.75, rel=1e-2)
    assert AdaLinkConfig(rank=1).learning_rate() > AdaLinkConfig(rank=8).learning_rate()
    assert METHOD_CONFIGS["lora"]().learning_rate() == METHOD_CONFIGS["lora"].default_lr


@pytest.mark.parametrize("method", method_names())
def test_default_lr_is_the_configs_own(method):
    assert default_lr(method) == METHOD_CONFIGS[method].default_lr


@pytest.mark.parametrize("method", method_names())
def test_without_options_a_run_gets_the_methods_own_defaults(method):
    cls = METHOD_CONFIGS[method]
    config = _resolve(method, heads=["classifier"])
    expected = cls(modules_to_save=["classifier"], **({"tasks": ["t"]} if cls.has_tasks() else {}))
    assert config == expected


def test_rank_sets_each_methods_size_field_and_dropout_its_dropout():
    assert _resolve("lora").dropout == 0.0 and _resolve("lora", dropout=0.2).dropout == 0.2
    assert _resolve("adalink", rank=16).rank == 16 and _resolve("lora", rank=4).rank == 4
    assert _resolve("houlsby").bottleneck is None and _resolve("houlsby", rank=24).bottleneck == 24
    assert _resolve("mam", rank=16).bottleneck == 16 and _resolve("unipelt", rank=16).lora_rank == 8


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning", "ia3", "bitfit", "full", "krona"])
def test_rank_is_refused_where_a_method_has_no_size_naming_its_knobs(method):
    with pytest.raises(ConfigError, match=f"--rank does not apply to --method {method}: .*its knobs are"):
        _resolve(method, rank=8)


def test_dropout_is_refused_where_a_method_has_none_and_the_message_names_the_knobs():
    with pytest.raises(ConfigError, match=r"--dropout does not apply to --method prefix_tuning: .*num_virtual_tokens"):
        _resolve("prefix_tuning", dropout=0.1)


def test_full_tuning_is_a_method_that_trains_every_weight_and_unknown_methods_get_suggestions():
    base = build("bert").requires_grad_(False)
    model = get_peft_model(base, _resolve("full"))
    assert all(p.requires_grad for p in base.parameters())
    assert model.method_parameter_count() == sum(p.numel() for p in base.parameters())
    with pytest.raises(ConfigError, match=r"--method 'loraa' is unknown: .* Did you mean 'lora'"):
        _resolve("loraa")
