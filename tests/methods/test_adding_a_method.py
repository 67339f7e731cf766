"""The documented steps for adding a method (docs/architecture.md, "Adding a method") stay true: a method defined and
registered here, in one class, runs through the shared contract table, ``adalink train`` / ``adalink methods`` and
export's refusal path, with nothing else written anywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch
from torch import nn

from adalink import METHOD_CONFIGS, get_peft_model
from adalink.cli import main
from adalink.commands.methods import describe_methods
from adalink.export import ExportError, export_peft
from adalink.methods.base import Attachment, MethodConfig, register_method
from adalink.routing import Router
from methods import test_contract as contract
from tiny_models import build, save_tiny_checkpoint, write_sentiment_csv


@dataclass
class ToyScaleConfig(MethodConfig):
    """``E' = E · (1 + gain · s_t)``: one learned vector per task on the input embeddings' output."""

    method: ClassVar[str] = "toy_scale"
    display_name: ClassVar[str] = "Toy scale"
    peft_refusal: ClassVar[str | None] = "peft has no toy scale (a method defined inside a test)"
    default_lr: ClassVar[float] = 1e-2
    source: ClassVar[str] = "tests/methods/test_adding_a_method.py"

    gain: float = 1.0  # a knob --method-config can set
    tasks: list[str] = field(default_factory=lambda: ["default"])

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        embedding = model.get_input_embeddings()
        modules = nn.Module()
        modules.scale = nn.Parameter(torch.zeros(len(self.tasks), embedding.embedding_dim))  # (T, d): task axis first

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if router.disabled:
                return None
            ids = router.ids_for(output.shape[0], "the toy scale")
            scale = modules.scale[ids] if isinstance(ids, int) else modules.scale[ids][:, None, :]
            return output * (1 + self.gain * scale)

        path = next(name for name, m in model.named_modules() if m is embedding)
        return Attachment(modules, [embedding.register_forward_hook(hook)], {path: embedding})


@pytest.fixture
def toy():
    register_method(ToyScaleConfig)
    yield ToyScaleConfig
    del METHOD_CONFIGS[ToyScaleConfig.method]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_a_new_method_passes_the_contract_table(toy, arch, tmp_path):
    contract.test_identity_at_init_and_disable_adapter(toy.method, arch)
    contract.test_training_moves_only_the_method_and_lowers_the_loss(toy.method, arch)
    contract.test_save_load_merge_unload(toy.method, arch, tmp_path)
    contract.test_mixed_task_batch_equals_each_example_alone(toy.method, arch)


def test_a_new_method_trains_from_the_cli_with_its_own_defaults(toy, tmp_path, capsys):
    model = save_tiny_checkpoint(tmp_path / "bert", "bert")
    data = write_sentiment_csv(tmp_path / "sentiment.csv", rows=40)
    common = ["train", "--model", model, "--train-file", data, "--method", "toy_scale", "--max-steps", "2"]
    common += ["--batch-size", "4", "--max-length", "16", "--max-eval", "4"]
    assert main([*common, "--rank", "4", "--output-dir", str(tmp_path / "refused")]) == 2
    assert (
        "--rank does not apply to --method toy_scale: it has no size field; its knobs are gain"
        in capsys.readouterr().err
    )
    assert main([*common, "--method-config", '{"gain": 2.0}', "--output-dir", str(tmp_path / "run")]) == 0
    resolved = json.loads((tmp_path / "run" / "run.json").read_text())["method_config"]
    assert resolved == {"gain": 2.0, "tasks": ["sentiment"], "modules_to_save": ["classifier"]}
    (row,) = [row for row in describe_methods() if row.name == "toy_scale"]
    assert row.defaults == {"gain": 1.0} and row.size_field is None and row.default_lr == 1e-2


def test_a_new_method_that_peft_lacks_is_refused_by_export_with_its_reason(toy, tmp_path):
    model = get_peft_model(build("bert"), toy(tasks=["a"]))
    with pytest.raises(ExportError, match=r"Cannot export method 'toy_scale' to peft: peft has no toy scale"):
        export_peft(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
