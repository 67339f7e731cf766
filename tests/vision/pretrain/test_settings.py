"""Stage1Settings: validation, overrides by keyword, and the defaults (no data or text model needed)."""

import pytest

from adalink.vision import TinyVLMConfig
from adalink.vision.pretrain import DEFAULT_PRETRAIN, Stage1Settings


def test_defaults_and_the_legacy_dict():
    settings = Stage1Settings()
    assert (settings.steps, settings.batch_size, settings.vision_steps) == (400, 32, 300)
    assert settings.held_out_types == ("yesno-shape",)
    assert settings.config == TinyVLMConfig()
    assert {k: v for k, v in vars(settings).items() if k != "config"} == DEFAULT_PRETRAIN


def test_overrides_replace_fields_and_unknown_names_are_refused():
    base = Stage1Settings(steps=10)
    changed = Stage1Settings.of(base, {"lr": 0.5, "held_out_types": ["shape", "color", "shape"]})
    assert (changed.steps, changed.lr, changed.held_out_types) == (10, 0.5, ("color", "shape"))
    assert Stage1Settings.of() == Stage1Settings()
    with pytest.raises(TypeError, match="stepz"):
        Stage1Settings.of(None, {"stepz": 3})
    assert changed.to_dict()["held_out_types"] == ["color", "shape"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("batch_size", 1.5),
        ("vision_batch_size", 0),
        ("vision_steps", -1),
        ("lr", 0.0),
        ("vision_lr", -1.0),
        ("held_out_types", ("colour",)),
        ("held_out_types", ("color", "shape", "yesno-color", "yesno-shape")),
    ],
)
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Stage1Settings(**{field: value})
