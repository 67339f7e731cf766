"""Setup and checks shared by the export tests: `from export import _helpers as helpers` (tests/ is on the path)."""

from __future__ import annotations

import warnings
from pathlib import Path

import peft
import torch

from adalink import PeftModel
from tiny_models import build, model_inputs, perturb_adalink, text_batch

# adapter weights that multiply (start at one, or at the weight's row norms): perturbed around their value
_MULTIPLICATIVE = ("magnitude", "scale")


def perturb(model: PeftModel, seed: int = 5) -> PeftModel:
    """Give every adapter weight (and a trained head) task-specific non-zero values, as training would; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if model.peft_config.method == "adalink":
            perturb_adalink(model, scale=0.5, seed=seed)
        else:
            for name, p in model.adapter_modules.named_parameters():
                noise = torch.randn(p.shape, generator=generator)
                p.copy_(p * (1 + 0.2 * noise) if name.endswith(_MULTIPLICATIVE) else 0.3 * noise)
        for path in model.peft_config.modules_to_save:  # a trained head differs from the fresh base's
            for p in model.base_model.get_submodule(path).parameters():
                p.add_(torch.randn(p.shape, generator=generator))
    return model.eval()


def load_in_peft(arch: str, directories: list[Path], base: torch.nn.Module | None = None) -> peft.PeftModel:
    """A fresh `arch` base with every exported directory loaded as a peft adapter named after the directory."""
    base = build(arch) if base is None else base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peft.PeftModel.from_pretrained(base, directories[0], adapter_name=directories[0].name)
        for directory in directories[1:]:
            theirs.load_adapter(directory, adapter_name=directory.name)
    return theirs.eval()


def outputs(model, arch: str, **kwargs) -> torch.Tensor:
    """No-grad logits on a fixed batch (with the decoder inputs T5 needs)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(**model_inputs(arch, text_batch()), **kwargs).logits


def assert_same_outputs(ours: PeftModel, theirs: peft.PeftModel, arch: str, task: str | None = None) -> None:
    """Same fp32 logits (atol 1e-5), different from the base model's, and for generators the same greedy tokens."""
    kwargs = {} if task is None else {"task": task}
    expected = outputs(ours, arch, **kwargs)
    torch.testing.assert_close(outputs(theirs, arch), expected, atol=1e-5, rtol=1e-5)
    with ours.disable_adapter():
        plain = outputs(ours, arch)
    assert plain.shape != expected.shape or not torch.allclose(plain, expected, atol=1e-3), "the adapter is a no-op"
    if arch != "bert":
        batch = text_batch(batch=2, length=5)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine = ours.generate(**batch, max_new_tokens=4, do_sample=False, **kwargs)
            reference = theirs.generate(**batch, max_new_tokens=4, do_sample=False)
        assert torch.equal(mine, reference)
