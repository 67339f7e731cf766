"""Every exportable method, on tiny BERT, GPT-2, Llama and T5: peft loads the export with the same outputs; the
layout; every other method refused with a message that names what to do instead."""

from __future__ import annotations

import json

import pytest
import torch

from adalink import (
    METHOD_CONFIGS,
    AdaLinkConfig,
    DoRAConfig,
    IA3Config,
    KronAConfig,
    LNTuningConfig,
    LoRAAllConfig,
    LoRAConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    get_peft_model,
)
from adalink.export import CONVERTERS, ExportError, export_peft, peft_adapter
from export import _helpers as helpers
from tiny_models import build

ARCHS = ("bert", "gpt2", "llama", "t5")
TASKS = ["a", "b"]
# method -> config with two tasks where the method has tasks; archs where peft cannot hold it are tested below
CONFIGS = {
    "adalink": lambda: AdaLinkConfig(rank=4, tasks=TASKS),
    "lora": lambda: LoRAConfig(rank=4, alpha=12.0, dropout=0.1, tasks=TASKS),
    "lora_all": lambda: LoRAAllConfig(rank=2, tasks=TASKS),
    "dora": lambda: DoRAConfig(rank=2, alpha=4.0, tasks=TASKS),
    "ia3": lambda: IA3Config(tasks=TASKS),
    "krona": lambda: KronAConfig(scale=0.5, tasks=TASKS),
    "prompt_tuning": lambda: PromptTuningConfig(num_virtual_tokens=3, tasks=TASKS),
    "prefix_tuning": lambda: PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=False, tasks=TASKS),
    "ln_tuning": LNTuningConfig,
}
NOT_IN_PEFT = {("krona", "gpt2"), ("prefix_tuning", "t5")}  # Conv1D / peft's T5 prefix layout: see below
CASES = [(m, a) for m in CONFIGS for a in ARCHS if (m, a) not in NOT_IN_PEFT]


def _model(method: str, arch: str):
    config = CONFIGS[method]()
    config.modules_to_save = ["classifier"] if arch == "bert" else []  # the trained head travels with the adapter
    return helpers.perturb(get_peft_model(build(arch), config))


@pytest.mark.parametrize(("method", "arch"), CASES, ids=[f"{m}-{a}" for m, a in CASES])
def test_peft_loads_each_task_with_the_same_outputs(method, arch, tmp_path):
    ours = _model(method, arch)
    directories = export_peft(ours, tmp_path)
    tasks = ours.task_names
    assert directories == [tmp_path if t == "default" else tmp_path / t for t in tasks]
    theirs = helpers.load_in_peft(arch, directories)
    for task, directory in zip(tasks, directories, strict=True):
        theirs.set_adapter(directory.name)
        helpers.assert_same_outputs(ours, theirs, arch, task=task if len(tasks) > 1 else None)
        info = json.loads((directory / "adalink_task.json").read_text())
        assert (info["task"], info["method"], info["source_tasks"]) == (task, method, tasks)


def test_tasks_differ_and_a_chosen_task_alone_is_written(tmp_path):
    ours = _model("lora", "llama")
    first = peft_adapter(ours, "a").tensors
    second = peft_adapter(ours, "b").tensors
    assert first.keys() == second.keys() and not all(torch.equal(first[k], second[k]) for k in first)
    assert export_peft(ours, tmp_path, tasks=["b"]) == [tmp_path / "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    with pytest.raises(ExportError, match=r"name the task"):
        peft_adapter(ours)
    with pytest.raises(ExportError, match=r"'c' is not one of this model's tasks \['a', 'b'\]"):
        export_peft(ours, tmp_path, tasks=["c"])


def test_single_task_model_is_written_to_out_dir_itself_with_peft_fields(tmp_path):
    ours = helpers.perturb(get_peft_model(build("gpt2"), LoRAConfig(rank=4)))
    assert export_peft(ours, tmp_path) == [tmp_path]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM" and config["fan_in_fan_out"]
    # GPT-2's fused c_attn, q and v thirds adapted: one LoRA of rank 2r per layer, at the same alpha / r
    assert config["target_modules"] == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    assert set(config["rank_pattern"].values()) == {8} and set(config["alpha_pattern"].values()) == {32.0}


REFUSED = sorted(name for name, cls in METHOD_CONFIGS.items() if cls.peft_refusal)


def test_every_registered_method_is_exported_or_says_why_not():
    assert set(METHOD_CONFIGS) == set(CONVERTERS) | set(REFUSED)
    assert not set(CONVERTERS) & set(REFUSED)


@pytest.mark.parametrize("method", REFUSED)
def test_methods_peft_lacks_are_refused_naming_what_to_do(method, tmp_path):
    config = METHOD_CONFIGS[method](**({"tasks": ["a"]} if METHOD_CONFIGS[method].has_tasks() else {}))
    model = get_peft_model(build("bert"), config)
    with pytest.raises(ExportError) as refused:
        export_peft(model, tmp_path / "out")
    message = str(refused.value)
    assert method in message and str(config.peft_refusal) in message
    if method == "full":
        assert "plain transformers checkpoint" in message
    else:
        assert ("adalink merge" if config.mergeable else "adalink serve") in message
        assert "lora" in message  # the methods that can be exported are listed
    assert not (tmp_path / "out").exists()


def test_krona_on_gpt2_conv1d_is_refused(tmp_path):
    model = get_peft_model(build("gpt2"), KronAConfig())
    with pytest.raises(ExportError, match=r"Conv1D layers or slices of a fused layer.*adalink merge"):
        export_peft(model, tmp_path)


def test_save_pretrained_in_peft_format_writes_the_export(tmp_path):
    ours = _model("ia3", "llama")
    ours.save_pretrained(tmp_path / "peft", format="peft")
    assert sorted(p.name for p in (tmp_path / "peft").iterdir()) == ["a", "b"]
    theirs = helpers.load_in_peft("llama", [tmp_path / "peft" / "b"])
    helpers.assert_same_outputs(ours, theirs, "llama", task="b")
    with pytest.raises(ValueError, match=r"format='onnx' is invalid"):
        ours.save_pretrained(tmp_path / "x", format="onnx")
