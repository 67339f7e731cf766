"""(IA)3 as a peft IA3 adapter.

Our vectors rescale the outputs of ``targets`` (keys, values) and the inputs of ``feedforward`` (the FFN output
projection), as peft's ``target_modules`` and ``feedforward_modules`` do: ``ia3_l`` is (out, 1) for an output
vector and (1, in) for an input vector. A fused layer rescaled in slices (GPT-2's ``c_attn`` with k, v) becomes one
vector over the whole output with ones on the untouched slice, which is the same rescaling.
"""

from __future__ import annotations

import torch

from ..methods.shared.linear import find_linear_sites
from .adapter import AdaptedModel, ExportError, PeftAdapter, tuner_key
from .lora import sites_by_layer

__all__ = ["ia3_to_ia3"]


def ia3_to_ia3(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``ia3`` as a peft IA3."""
    config = model.peft_config
    base, roles = model.base_model, config.roles  # type: ignore[attr-defined]
    outputs = find_linear_sites(base, config.targets, roles, method=config.method)  # type: ignore[attr-defined]
    feedforward = config.feedforward  # type: ignore[attr-defined]
    inputs = find_linear_sites(base, feedforward, roles, method=config.method) if feedforward else []
    input_paths = list(dict.fromkeys(s.path for s in inputs))  # rescaled whole, once per layer (as attach does)
    both = sorted({s.path for s in outputs} & set(input_paths))
    if both:
        raise ExportError(
            f"Cannot export this (IA)3 to peft: layers {both} rescale both their output and their input, and peft's "
            "IA3 rescales one or the other per layer (feedforward_modules)."
        )
    vectors = model.adapter_modules
    tensors: dict[str, torch.Tensor] = {}
    for path, slices in sites_by_layer(outputs).items():
        scale = torch.ones(slices[0].total, dtype=vectors["outputs"][slices[0].key].scale.dtype)  # (out,)
        for site in slices:
            scale[site.start : site.start + site.out_features] = vectors["outputs"][site.key].scale[task].detach()
        tensors[tuner_key(path, "ia3_l")] = scale[:, None]  # (out, 1)
    for path in input_paths:
        tensors[tuner_key(path, "ia3_l")] = vectors["inputs"][path.replace(".", "__")].scale[task].detach()[None, :]
    peft_config = {
        "peft_type": "IA3",
        "target_modules": [*sites_by_layer(outputs), *input_paths],
        "feedforward_modules": input_paths,
        "fan_in_fan_out": any(s.transposed for s in (*outputs, *inputs)),
    }
    return PeftAdapter(peft_config, tensors)
