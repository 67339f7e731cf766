import pytest

from adalink import AdaLinkConfig, ConfigError, get_peft_model
from adalink.methods.adalink.sites import resolve_sites
from tiny_models import build, tiny_llava


def test_input_embeddings_resolve_to_the_models_own_table():
    model = build("llama")
    (site,) = resolve_sites(model, AdaLinkConfig())
    assert site.module is model.get_input_embeddings() and site.dim == 32


@pytest.mark.parametrize(
    ("sides", "expected"), [("encoder", ["encoder"]), ("decoder", ["decoder"]), ("both", ["encoder", "decoder"])]
)
def test_encoder_decoder_sides(sides, expected):
    model = build("t5")
    sites = resolve_sites(model, AdaLinkConfig(sides=sides))
    assert [s.path.split(".")[0] for s in sites] == expected


def test_unknown_module_path_suggests_close_matches():
    with pytest.raises(ConfigError) as info:
        get_peft_model(tiny_llava(), AdaLinkConfig(modalities={"image": "model.multi_modal_projektor"}))
    message = str(info.value)
    assert "'model.multi_modal_projektor'" in message and "model.multi_modal_projector" in message


def test_unified_needs_one_width():
    model = tiny_llava()
    config = AdaLinkConfig(
        unified=True,
        modalities={"text": "input_embeddings", "vision": "model.vision_tower.encoder.layers.0.mlp.fc1"},  # 32 vs 64
    )
    with pytest.raises(ConfigError, match="unified"):
        get_peft_model(model, config)


def test_unknown_module_to_save():
    with pytest.raises(ConfigError, match="modules_to_save entry 'clasifier'"):
        get_peft_model(build("bert"), AdaLinkConfig(modules_to_save=["clasifier"]))
