"""TinyVLMConfig: validation that names the field, and the number of image tokens (no text model needed)."""

import pytest

from adalink.vision import TinyVLMConfig


def test_config_validation_and_token_count():
    assert TinyVLMConfig().num_image_tokens == 16  # 8×8 patches, 2×2 pooled
    assert TinyVLMConfig(token_pool=1).num_image_tokens == 64
    bad_settings = ({"patch_size": 7}, {"vision_heads": 3}, {"token_pool": 3}, {"pooling": "max"}, {"stem": "cnn"})
    for bad in bad_settings:
        with pytest.raises(ValueError, match=next(iter(bad))):
            TinyVLMConfig(**bad)


def test_round_trip_through_a_dict_and_unknown_fields():
    config = TinyVLMConfig(vision_width=32, vision_heads=2, extra={"note": "x"})
    assert TinyVLMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown TinyVLMConfig field"):
        TinyVLMConfig.from_dict({"width": 3})
