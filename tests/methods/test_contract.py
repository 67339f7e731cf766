"""One table of invariants that every registered method must satisfy, on tiny BERT, GPT-2, Llama and T5.

Each method is built from its default config (``tasks=["a", "b"]`` where it keeps tasks) and checked for: identity at
initialisation (where the method declares it), only the method's parameters move in training and the loss falls,
save -> load gives the same outputs, merged == unmerged for mergeable methods, and ``unload`` restores the base.
"""

from __future__ import annotations

import pytest
import torch

from adalink import METHOD_CONFIGS, ConfigError, PeftModel, get_peft_model
from tiny_models import tiny_bert, tiny_gpt2, tiny_llama, tiny_t5

ARCHITECTURES = {"bert": tiny_bert, "gpt2": tiny_gpt2, "llama": tiny_llama, "t5": tiny_t5}
# (method, architecture) pairs that must refuse with a clear ConfigError instead of attaching
UNSUPPORTED = {("bitfit", "llama"), ("bitfit", "t5")}
CASES = [(m, a) for m in sorted(METHOD_CONFIGS) for a in ARCHITECTURES]


def _config(method: str):
    cls = METHOD_CONFIGS[method]
    return cls(tasks=["a", "b"]) if "tasks" in cls.field_names() else cls()


def _batch(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 96, (3, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0 if arch in ("gpt2", "llama") else 1  # left padding for decoders
    mask[1, -2:] = 0 if arch in ("bert", "t5") else 1  # right padding for encoders
    batch = {"input_ids": ids, "attention_mask": mask}
    if arch == "t5":
        batch["decoder_input_ids"] = torch.randint(4, 96, (3, 5), generator=generator)
    return batch


def _loss(model, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    if "decoder_input_ids" in batch:
        return model(**batch, labels=batch["decoder_input_ids"], **kwargs).loss
    out = model(**batch, **kwargs)
    logits = out.logits
    if logits.dim() == 2:  # sequence classification
        return torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    logits = logits[:, -batch["input_ids"].shape[1] :]  # methods that prepend virtual tokens lengthen the output
    targets = batch["input_ids"][:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets)


def _logits(model, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    return model(**batch, **kwargs).logits


def _attach(method: str, arch: str):
    torch.manual_seed(0)
    base = ARCHITECTURES[arch]().eval()
    if (method, arch) in UNSUPPORTED:
        with pytest.raises(ConfigError):
            get_peft_model(base, _config(method))
        pytest.skip(f"{method} refuses {arch} with a clear error, as expected")
    return base, get_peft_model(base, _config(method))


def _perturb(model: PeftModel) -> None:
    """Move every adapter weight away from its (often zero / one) init, so later checks can fail."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)


@pytest.mark.parametrize(("method", "arch"), CASES)
def test_identity_at_init_and_disable_adapter(method, arch):
    """Identity at init where the method declares it; with the adapter moved away from its init, disable_adapter()
    gives the base model's logits exactly and the enabled adapter changes them (else the check could not fail)."""
    torch.manual_seed(0)
    batch = _batch(arch)
    with torch.no_grad():
        reference = _logits(ARCHITECTURES[arch]().eval(), batch)  # the same weights _attach builds (seed 0)
    _base, model = _attach(method, arch)
    task = "a" if len(model.task_names) > 1 else None
    if METHOD_CONFIGS[method].identity_at_init:
        with torch.no_grad():
            torch.testing.assert_close(_logits(model, batch, task=task), reference, atol=1e-5, rtol=1e-5)
    _perturb(model)
    with torch.no_grad():
        with model.disable_adapter():
            disabled = _logits(model, batch)
        adapted = _logits(model, batch, task=task)
    torch.testing.assert_close(disabled, reference, atol=0, rtol=0)
    if method == "full":  # full tuning trains the base itself: there is no adapter to switch off
        return
    adapted = adapted[:, -reference.shape[1] :] if adapted.dim() == 3 else adapted  # virtual tokens come first
    change = (adapted - reference).abs().max().item()  # tiny models' logits are ~0.01: any real change is >1e-6
    assert change > 1e-6, f"{method} on {arch}: the adapter changes nothing (max |change| {change})"


@pytest.mark.parametrize(("method", "arch"), CASES)
def test_training_moves_only_the_method_and_lowers_the_loss(method, arch):
    base, model = _attach(method, arch)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable, f"{method} has no trainable parameters"
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    batch = _batch(arch)
    task = "a" if len(model.task_names) > 1 else None
    with torch.no_grad():
        loss_before = _loss(model.eval(), batch, task=task).item()
    model.train()
    torch.manual_seed(0)
    for _ in range(10):
        loss = _loss(model, batch, task=task)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        loss_after = _loss(model.eval(), batch, task=task).item()
    assert loss_after < loss_before, f"{method} on {arch}: eval loss {loss_before} -> {loss_after}"
    if method == "full":
        return
    moved_base = [n for n, p in base.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert not moved_base, f"{method} changed frozen base parameters {moved_base[:5]}"


@pytest.mark.parametrize(("method", "arch"), CASES)
def test_save_load_merge_unload(method, arch, tmp_path):
    _base, model = _attach(method, arch)
    _perturb(model)
    model.eval()
    batch = _batch(arch, seed=2)
    task = "b" if len(model.task_names) > 1 else None
    with torch.no_grad():
        expected = _logits(model, batch, task=task)
    model.save_pretrained(tmp_path)

    torch.manual_seed(0)
    fresh = ARCHITECTURES[arch]().eval()
    with torch.no_grad():
        plain = _logits(fresh, batch)
    loaded = PeftModel.from_pretrained(fresh, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(_logits(loaded, batch, task=task), expected, atol=1e-5, rtol=1e-5)

    if METHOD_CONFIGS[method].mergeable:
        merged = loaded.merge_and_unload(task=task)
        with torch.no_grad():
            torch.testing.assert_close(_logits(merged, batch), expected, atol=1e-4, rtol=1e-4)
    elif method != "full":
        with torch.no_grad():
            torch.testing.assert_close(_logits(loaded.unload(), batch), plain, atol=0, rtol=0)


@pytest.mark.parametrize(("method", "arch"), [c for c in CASES if "tasks" in METHOD_CONFIGS[c[0]].field_names()])
def test_mixed_task_batch_equals_each_example_alone(method, arch):
    _base, model = _attach(method, arch)
    _perturb(model)
    model.eval()
    batch = _batch(arch, seed=3)
    tasks = ["a", "b", "a"]
    with torch.no_grad():
        mixed = _logits(model, batch, task=tasks)
        for i, task in enumerate(tasks):
            alone = _logits(model, {k: v[i : i + 1] for k, v in batch.items()}, task=task)
            torch.testing.assert_close(mixed[i : i + 1], alone, atol=1e-5, rtol=1e-5)
