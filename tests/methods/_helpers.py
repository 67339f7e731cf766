"""Setup and checks shared by the method tests: `from methods import _helpers as helpers` (tests/ is on the path)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import peft
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from adalink import FoldError, PeftModel, get_peft_model
from adalink.export import peft_adapter
from adalink.methods.roles import find_role
from tiny_models import build, model_inputs, text_batch

ARCHS = ("bert", "gpt2", "llama", "t5")
# peft's task type for each tiny model (bert is a sequence classifier)
TASK_TYPES = {"bert": "SEQ_CLS", "gpt2": "CAUSAL_LM", "llama": "CAUSAL_LM", "t5": "SEQ_2_SEQ_LM"}


# ------------------------------------------------------------------------------------------------ adapter weights
def adapter_weights_with_noise(model: PeftModel, seed: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, weight, seeded N(0, 1) draw of its shape) for every adapter weight, in a fixed order."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in model.adapter_modules.named_parameters():
        yield name, p, torch.randn(p.shape, generator=generator)


def redraw_adapter_weights(model: PeftModel, scale: float, seed: int = 3, mean: float = 0.0) -> None:
    """Replace every adapter weight by N(mean, scale²) (zero-initialised ones too), so every comparison can fail."""
    with torch.no_grad():
        for _, p, noise in adapter_weights_with_noise(model, seed):
            p.copy_(mean + noise * scale)


def shift_adapter_weights(model: PeftModel, scale: float, seed: int = 0) -> None:
    """Add N(0, scale²) noise to every adapter weight, so the identity at init no longer holds."""
    with torch.no_grad():
        for _, p, noise in adapter_weights_with_noise(model, seed):
            p.add_(noise * scale)


# ---------------------------------------------------------------------------------------------------- outputs
def logits(model, arch: str, batch=None, **kwargs) -> torch.Tensor:
    """No-grad logits on `batch` (default: text_batch()), with the decoder inputs T5 needs."""
    with torch.no_grad():
        return model(**model_inputs(arch, batch if batch is not None else text_batch()), **kwargs).logits


def small_batch_logits(model, arch: str, batch=None, **kwargs) -> torch.Tensor:
    """logits() with 3 examples of 6 tokens by default: the inputs of the LoRA-family tests."""
    return logits(model, arch, text_batch(batch=3, length=6) if batch is None else batch, **kwargs)


def assert_mixed_batch_equals_each_example_alone(
    model, arch: str, batch, tasks: list[str], **tolerance
) -> torch.Tensor:
    """Route one task per example in one batch, check each row equals that example run alone; return those logits."""
    mixed = logits(model, arch, batch, task=tasks)
    for row, task in enumerate(tasks):
        alone = logits(model, arch, {k: v[row : row + 1] for k, v in batch.items()}, task=task)
        torch.testing.assert_close(mixed[row : row + 1], alone, **tolerance)
    return mixed


def assert_identity_at_init(config, arch: str) -> None:
    """A freshly attached method leaves the base model's logits bit-for-bit unchanged."""
    reference = logits(build(arch), arch)
    model = get_peft_model(build(arch), config)
    torch.testing.assert_close(logits(model, arch), reference, atol=0, rtol=0)


def save_and_reload(model: PeftModel, arch: str, directory, **kwargs) -> PeftModel:
    """Save `model` and load it back onto a fresh copy of its base model."""
    model.save_pretrained(directory)
    return PeftModel.from_pretrained(build(arch), directory, **kwargs)


def assert_merge_refused_and_unload_restores(model: PeftModel, arch: str, reference: torch.Tensor) -> None:
    """Hook-based methods cannot be merged, and unloading gives back the base model's exact logits."""
    with pytest.raises(FoldError):
        model.merge_and_unload(task="a")
    torch.testing.assert_close(logits(model.unload(), arch), reference, atol=0, rtol=0)


def t5_large_method_millions(config) -> float:
    """The method's parameter count on T5-large (built on the meta device), in millions to 2 places (survey table 5)."""
    t5_large = T5Config(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, vocab_size=32128)
    with torch.device("meta"):
        model = get_peft_model(T5ForConditionalGeneration(t5_large), config)
    return round(model.method_parameter_count() / 1e6, 2)


# --------------------------------------------------------------------------------------------- module internals
def first_role_module(model: torch.nn.Module, role: str) -> torch.nn.Module:
    """The first module that plays `role` (q, ffn, ffn_out, attention, ...) in `model`."""
    return next(iter(find_role(model, role).values()))


def keep_first(seen: dict, key: str, value) -> None:
    """Store only the first call's value; returning None leaves the module's input/output alone."""
    seen.setdefault(key, value)


def record_first_call(module: torch.nn.Module, seen: dict, input_as: str | None = None, output_as: str | None = None):
    """Keep `module`'s first input and/or output in `seen`; registered last, the hooks run after any adapter's."""
    if input_as:
        module.register_forward_pre_hook(lambda m, args: keep_first(seen, input_as, args[0]))
    if output_as:
        module.register_forward_hook(lambda m, args, out: keep_first(seen, output_as, out))


def adapter_delta(bank, x: torch.Tensor, activation: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Task 0's bottleneck adapter by its formula: up(activation(down(x)))."""
    return activation(x @ bank.down[0] + bank.down_bias[0]) @ bank.up[0] + bank.up_bias[0]


def gpt2_c_attn_outputs(model: PeftModel, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-2's fused c_attn (q|k|v) on one random input, with and without the adapters: (adapted, plain)."""
    c_attn = model.base_model.transformer.h[layer].attn.c_attn
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        adapted = c_attn(x)
        with model.disable_adapter():
            plain = c_attn(x)
    return adapted, plain


# ----------------------------------------------------------------------------------------- Hugging Face peft
def trained_heads(arch: str) -> list[str]:
    """The modules to save that make a method comparable with peft: peft trains the classifier of SEQ_CLS models."""
    return ["classifier"] if TASK_TYPES[arch] == "SEQ_CLS" else []


# peft's names of adapter tensors (prompt tables load apart, as "prompt_embeddings")
_PEFT_ADAPTER_PARTS = ("lora_", "ia3_", "lokr_", "ln_tuning_layers", "modules_to_save")


def peft_twin(ours: PeftModel, arch: str) -> peft.PeftModel:
    """Hugging Face peft's model of the same method holding our weights, through the mapping the exporter uses
    (:func:`adalink.export.peft_adapter`): built from its config (trainable), loaded with its tensors."""
    adapter = peft_adapter(ours)
    reference = peft.get_peft_model(build(arch), peft.get_peft_config({**adapter.config, "inference_mode": False}))
    loaded = peft.set_peft_model_state_dict(reference, adapter.tensors)
    assert set(loaded.unexpected_keys) <= {"prompt_embeddings"}, loaded.unexpected_keys
    assert not [k for k in loaded.missing_keys if any(part in k for part in _PEFT_ADAPTER_PARTS)]
    return reference


def assert_equals_peft(ours: PeftModel, reference, arch: str) -> None:
    """Same logits as peft's model with the same weights (on the small batch), and as many trainable parameters."""
    torch.testing.assert_close(
        small_batch_logits(ours, arch), small_batch_logits(reference, arch), atol=1e-5, rtol=1e-5
    )
    (trainable, total), (their_trainable, their_total) = (
        ours.get_nb_trainable_parameters(),
        reference.get_nb_trainable_parameters(),
    )
    # peft keeps each module to save twice (the original and its trained copy), and counts both
    copies = sum(
        p.numel() for m in ours.peft_config.modules_to_save for p in ours.base_model.get_submodule(m).parameters()
    )
    assert (trainable, total + copies) == (their_trainable, their_total)


def left_padded_inputs(name: str) -> dict[str, torch.Tensor]:
    """text_batch() ready for `name`; decoder-only models get two left-padding positions on the first row."""
    batch = model_inputs(name, text_batch())
    if name in ("gpt2", "llama"):
        batch["attention_mask"][0, :2] = 0
    return batch


def greedy_generations(ours, theirs, name: str, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Six greedy new tokens from both models; decoder-only models get left padding on the second row of `batch`."""
    if name != "t5":
        batch["attention_mask"][1, :3] = 0
    with torch.no_grad():
        return (
            ours.generate(**batch, max_new_tokens=6, do_sample=False),
            theirs.generate(**batch, max_new_tokens=6, do_sample=False),
        )


def train_steps(model, batch, steps: int = 2, **kwargs) -> None:
    """A few AdamW steps (lr 1e-2) of the language-model loss on `batch`, through the adapter weights only."""
    optimizer = torch.optim.AdamW(model.adapter_modules.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(**batch, labels=batch["input_ids"], **kwargs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
