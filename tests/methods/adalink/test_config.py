import json

import pytest

from adalink import INPUT_EMBEDDINGS, AdaLinkConfig, ConfigError


def test_defaults_follow_the_paper():
    config = AdaLinkConfig()
    assert config.dropout == 0.1
    assert config.activation is None and config.is_foldable
    assert config.tasks == ["default"]
    assert config.modalities == {"text": INPUT_EMBEDDINGS}
    assert config.sides == "encoder" and not config.unified


def test_json_round_trip():
    config = AdaLinkConfig(rank=16, dropout=0.0, activation="gelu", tasks=["a", "b"], modules_to_save=["classifier"])
    assert AdaLinkConfig.from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("rank", 0, "positive integer"),
        ("rank", -3, "positive integer"),
        ("rank", 2.5, "positive integer"),
        ("rank", True, "positive integer"),
        ("dropout", 1.0, "[0, 1)"),
        ("dropout", -0.1, "[0, 1)"),
        ("dropout", "0.1", "[0, 1)"),
        ("activation", "softmax", "identity"),
        ("init", "zeros", "kaiming_uniform"),
        ("tasks", [], "non-empty"),
        ("tasks", ["a", "b", "a"], "duplicated: ['a']"),
        ("tasks", ["ok", ""], "non-empty"),
        ("modalities", {}, "at least one"),
        ("modalities", {"text": "input_embeddings", "also": "input_embeddings"}, "one modality only"),
        ("unified", "yes", "True or False"),
        ("sides", "left", "encoder"),
        ("modules_to_save", [""], "dotted module paths"),
    ],
)
def test_bad_values_name_field_value_and_expectation(field, value, expected):
    with pytest.raises(ConfigError) as info:
        AdaLinkConfig(**{field: value})
    message = str(info.value)
    assert f"AdaLinkConfig.{field}={value!r}" in message
    assert expected in message


def test_unknown_field_in_saved_config_is_refused():
    with pytest.raises(ConfigError, match="unknown fields \\['rnak'\\]"):
        AdaLinkConfig.from_dict({"rnak": 4})
