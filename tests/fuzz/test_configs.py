"""Random JSON objects into every method's config: a config, or ``adalink.ConfigError`` naming the problem; never
another exception (a saved ``adapter_config.json`` or a ``--method-config`` can hold anything)."""

from __future__ import annotations

import contextlib
import math

import pytest

from adalink import METHOD_CONFIGS, ConfigError
from adalink.methods.base import config_from_dict
from fuzz.strategies import JSON, near, st

hypothesis = pytest.importorskip("hypothesis")
given, settings = hypothesis.given, hypothesis.settings

EXAMPLES = 100  # per method and strategy: about a second each


def _outcome(cls, document):
    """The config built from ``document``, or None when refused with ConfigError (anything else fails the test)."""
    try:
        config = cls.from_dict(document)
    except ConfigError as err:
        assert str(err).startswith(cls.__name__), err  # the message names the config (and the field, see base)
        return None
    again = cls.from_dict(config.to_dict())  # an accepted config round-trips through its JSON
    assert again.to_dict() == config.to_dict()
    return config


@pytest.mark.parametrize("name", sorted(METHOD_CONFIGS))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_near_valid_objects_give_a_config_or_a_config_error(name, data):
    cls = METHOD_CONFIGS[name]
    document = data.draw(near(cls().to_dict()))
    config = _outcome(cls, document)
    if config is not None:  # every accepted number is finite: nothing NaN reaches a weight
        for value in config.to_dict().values():
            assert not (isinstance(value, float) and not math.isfinite(value)), config


@pytest.mark.parametrize("name", sorted(METHOD_CONFIGS))
@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(document=JSON)
def test_any_json_value_gives_a_config_or_a_config_error(name, document):
    _outcome(METHOD_CONFIGS[name], document)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(method=st.text(max_size=12) | st.sampled_from(sorted(METHOD_CONFIGS)), document=JSON)
def test_config_from_dict_by_name(method, document):
    with contextlib.suppress(ConfigError):  # anything else fails the test
        config_from_dict(method, document)


def test_wrong_types_are_named_with_what_was_expected():
    """The field, the value and what was expected; a NaN, once accepted, is refused."""
    cases = [
        ("lora", {"rank": "8"}, "LoRAConfig.rank='8' is invalid: expected a positive integer."),
        ("lora", {"alpha": float("nan")}, "LoRAConfig.alpha=nan is invalid: expected a finite number."),
        ("lora", {"targets": "q"}, "LoRAConfig.targets='q' is invalid: expected a list of strings."),
        ("lora", {"roles": {"q": "x"}}, "expected an object mapping a string to a list of strings."),
        ("lora", {"modules_to_save": 3}, "LoRAConfig.modules_to_save=3 is invalid: expected a list of strings."),
        ("prompt_tuning", {"tasks": {"a": 1}}, "PromptTuningConfig.tasks={'a': 1} is invalid: expected a list of"),
        ("adalink", {"sides": "all"}, "expected one of ['encoder', 'decoder', 'both']."),
        ("lora", [["rank", 8]], "LoRAConfig needs a JSON object of its fields; got list."),
        ("lora", {1: 2}, "LoRAConfig got unknown fields [1]"),
    ]
    for name, document, message in cases:
        with pytest.raises(ConfigError) as info:
            METHOD_CONFIGS[name].from_dict(document)
        assert message in str(info.value), (name, document, str(info.value))
