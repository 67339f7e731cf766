"""Convert AdaLink checkpoints between adalink's format and peft's (``peft_type: ADALINK``), both ways, exactly.

adalink's format (``adalink.PeftModel.save_pretrained``) stacks the tasks: ``adalink.<modality>.down`` is (T, d, r).
peft's keeps one adapter per directory: ``base_model.adalink.<modality>.adalink_bank.down`` is (1, d, r), and peft
lays several adapters out as ``DIR/<name>/`` (one task named ``default`` is ``DIR`` itself). A head in
``modules_to_save`` is one tensor set in adalink (shared by the tasks) and one copy per adapter in peft. The base
model's fingerprint travels in both directions, so either loader still refuses the wrong base.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .._version import __version__
from ..errors import UsageError
from ..io import AdapterFileError, read_adapter, write_adapter
from ..methods.adalink import AdaLinkConfig
from .peft_config import AdaLinkPeftConfig, task_type_for

__all__ = ["adalink_to_peft", "peft_to_adalink"]

_WEIGHTS = "adapter_model.safetensors"  # peft's file name
_LINK = "base_model.adalink.{key}.adalink_bank.{which}"  # peft's key of a bank weight (adapter name removed)
_HEAD = "base_model.model."  # peft's prefix of a modules_to_save tensor


def adalink_to_peft(
    adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, *, task_type: str | None = None
) -> dict[str, Path]:
    """Write each task of an adalink AdaLink checkpoint as a peft adapter; returns task -> its directory.

    ``task_type`` defaults to the one the fingerprinted architecture implies (e.g. ``CAUSAL_LM``).
    """
    document, tensors = read_adapter(adapter_dir)
    if document.get("method", "adalink") != "adalink":
        raise AdapterFileError(f"{adapter_dir}: holds a {document.get('method')!r} adapter, not AdaLink.")
    config = AdaLinkConfig.from_dict(document["config"])
    fingerprint = document.get("base_model") or None
    task_type = task_type or task_type_for((fingerprint or {}).get("architecture", ""))
    keys = sorted({name.split(".")[1] for name in tensors if name.startswith("adalink.")})
    heads = {_HEAD + k.removeprefix("modules_to_save."): v for k, v in tensors.items() if k.startswith("modules_to_")}
    single = config.tasks == ["default"]
    written = {}
    for index, task in enumerate(config.tasks):
        target = Path(out_dir) if single else Path(out_dir) / task
        target.mkdir(parents=True, exist_ok=True)
        peft_config = AdaLinkPeftConfig.from_adalink_config(
            config, task_type=task_type, base_model_fingerprint=fingerprint
        )
        weights = {
            _LINK.format(key=key, which=which): tensors[f"adalink.{key}.{which}"][index : index + 1].clone()
            for key in keys
            for which in ("down", "up")
        }
        save_file({**weights, **heads}, str(target / _WEIGHTS), metadata={"format": "pt"})
        peft_config.save_pretrained(str(target))
        written[task] = target
    return written


def peft_to_adalink(adapters: Mapping[str, str | os.PathLike], out_dir: str | os.PathLike) -> Path:
    """Stack peft AdaLink adapters (task name -> directory) into one adalink checkpoint with those tasks.

    Ranks may differ (the smaller are zero-padded, which adds exactly 0); everything else must agree.
    """
    if not adapters:
        raise UsageError("peft_to_adalink needs at least one adapter directory.")
    configs, weights = {}, {}
    for task, directory in adapters.items():
        config = AdaLinkPeftConfig.from_pretrained(str(directory))
        if not isinstance(config, AdaLinkPeftConfig):
            raise AdapterFileError(f"{directory}: holds a {config.peft_type} adapter, not AdaLink.")
        configs[task], weights[task] = config, load_file(str(Path(directory) / _WEIGHTS))
    first = next(iter(configs.values()))
    _check_agree(configs, weights)
    heads = {k.removeprefix(_HEAD): v for k, v in next(iter(weights.values())).items() if k.startswith(_HEAD)}
    saved = [m for m in first.modules_to_save or [] if any(k.startswith(f"{m}.") for k in heads)]
    rank = max(c.rank for c in configs.values())
    adalink_config = AdaLinkConfig.from_dict(
        {**first.to_adalink_config(list(adapters)).to_dict(), "rank": rank, "modules_to_save": saved}
    )
    keys = sorted({k.split(".")[2] for k in next(iter(weights.values())) if k.startswith("base_model.adalink.")})
    tensors = {f"modules_to_save.{name}": value for name, value in heads.items()}
    for key in keys:
        downs = [_pad(w[_LINK.format(key=key, which="down")], rank, dim=2) for w in weights.values()]
        ups = [_pad(w[_LINK.format(key=key, which="up")], rank, dim=1) for w in weights.values()]
        tensors[f"adalink.{key}.down"], tensors[f"adalink.{key}.up"] = torch.cat(downs), torch.cat(ups)
    metadata = {
        "adalink_version": __version__,
        "method": "adalink",
        "config": adalink_config.to_dict(),
        "base_model": first.base_model_fingerprint or {},
        "base_model_name_or_path": first.base_model_name_or_path,
    }
    return write_adapter(out_dir, tensors, metadata)


def _check_agree(configs: Mapping[str, AdaLinkPeftConfig], weights: Mapping[str, dict[str, torch.Tensor]]) -> None:
    first_task, first = next(iter(configs.items()))
    shared = ("activation", "dropout", "init", "modalities", "unified", "sides", "boundaries", "base_model_fingerprint")
    for task, config in configs.items():
        differ = [name for name in shared if getattr(config, name) != getattr(first, name)]
        if differ:
            raise AdapterFileError(
                f"Adapters {first_task!r} and {task!r} differ in {differ}: one adalink checkpoint holds tasks of "
                "one AdaLink (only the rank may differ)."
            )
    heads = [{k: v for k, v in w.items() if k.startswith(_HEAD)} for w in weights.values()]
    if any(h.keys() != heads[0].keys() or any(not torch.equal(h[k], heads[0][k]) for k in h) for h in heads):
        raise AdapterFileError(
            "These adapters carry different modules_to_save weights (e.g. heads); an adalink checkpoint keeps one set "
            "for all its tasks: convert them one by one."
        )


def _pad(weight: torch.Tensor, rank: int, dim: int) -> torch.Tensor:
    missing = rank - weight.shape[dim]
    if not missing:
        return weight
    shape = list(weight.shape)
    shape[dim] = missing
    return torch.cat([weight, weight.new_zeros(shape)], dim=dim)
