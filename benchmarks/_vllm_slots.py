"""Runs inside vLLM's worker (``LLM.apply_model``), so it lives in a module the worker can import by name: the bytes of
every ``*_stacked`` tensor (vLLM's LoRA slots) of the model's LoRA-wrapped modules. Used by vllm_many_tasks.py."""

from __future__ import annotations

from typing import Any


def stacked_tensors(model: Any) -> dict[str, dict[str, Any]]:
    """Every ``*_stacked`` tensor of the model's modules: shape, dtype, bytes."""
    import torch

    found = {}
    for name, module in model.named_modules():
        for attribute, value in vars(module).items():
            if not attribute.endswith("_stacked"):
                continue
            tensors = value if isinstance(value, (tuple, list)) else [value]
            for i, tensor in enumerate(t for t in tensors if isinstance(t, torch.Tensor)):
                found[f"{name}.{attribute}[{i}]"] = {
                    "shape": list(tensor.shape),
                    "dtype": str(tensor.dtype),
                    "bytes": tensor.numel() * tensor.element_size(),
                }
    return found
