"""AdaLink as a peft LoRA, exactly: the link is linear (identity activation), so it is a low-rank update of the
module it adapts (paper §3.2-3.3, the same algebra as folding).

- Token embeddings ``E`` (vocab×d): for token ``t`` AdaLink gives ``E[t] + (E[t]·W_down)·W_up``. peft's embedding
  LoRA adds ``lora_embedding_A[:, t]ᵀ · lora_embedding_Bᵀ · scaling``, so ``lora_embedding_A = (E·W_down)ᵀ``
  (r×vocab), ``lora_embedding_B = W_upᵀ`` (d×r) and ``lora_alpha = r`` (scaling 1). The lookup alone changes: a
  tied output head keeps the original table, as with AdaLink. (An embedding that scales its output, as Gemma's,
  is scaled by peft on the LoRA term too, so ``A`` is taken from the unscaled table.)
- A Linear ``y = x Wᵀ + b`` (an image projector): ``y + (y·W_down)·W_up`` is the LoRA ``lora_A = W_downᵀ W`` (r×in),
  ``lora_B = W_upᵀ`` (out×r) with peft's ``lora_bias`` ``b·W_down·W_up`` (out,).
- The output link (``boundaries`` with ``"output"``) on the LM head's input ``h``: ``(h + h·W_down·W_up)·Wᵀ + b`` is
  ``h·Wᵀ + b`` plus the LoRA ``lora_A = W_downᵀ`` (r×d), ``lora_B = W·W_upᵀ`` (V×r) on the head, scaling 1, no bias
  term. peft drops out the head's input ``h``, the link's own input: its dropout is AdaLink's here. A TIED head
  (``tie_word_embeddings=True``): peft wraps ``lm_head`` on its own and only adds to its output, so the exported
  adapter is exact in inference, and the embedding LoRA still sees the original table; but peft's
  ``merge_and_unload`` writes the head's delta into the weight it shares with the table (peft warns that a tied
  target "can lead to complications"), changing the input embeddings too. Merge with adalink (``adalink merge``),
  which unties, or load the base with ``tie_word_embeddings=False`` before merging in peft.

Dropout: ``lora_dropout`` records AdaLink's dropout, but AdaLink drops out ``E`` (the link's input) while peft drops
out the Linear's input ``x``, and peft's embedding LoRA applies no dropout at all; in evaluation both are off, so
outputs are equal there, and continuing training in peft regularises a little differently.
Not carried over: AdaLink also adapts ``inputs_embeds=`` passed to the model instead of ``input_ids``; peft's
embedding LoRA only sees token lookups.
"""

from __future__ import annotations

import torch
from torch import nn

from ..methods.adalink import AdaLinkConfig
from ..methods.adalink.sites import Site, bank_key, resolve_sites
from .adapter import AdaptedModel, ExportError, PeftAdapter, tuner_key

__all__ = ["adalink_to_lora"]


def adalink_to_lora(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of an identity-activation AdaLink as a peft LoRA on the module(s) whose output it adapts."""
    config = model.peft_config
    assert isinstance(config, AdaLinkConfig)
    if config.activation is not None:
        raise ExportError(
            f"Cannot export an AdaLink with activation={config.activation!r} to peft exactly: only the identity "
            "activation (activation=None, the paper's final form) is a low-rank update that peft's LoRA can hold. "
            "Serve it with adalink instead (adalink serve, or adalink.PeftModel.from_pretrained)."
        )
    sites = resolve_sites(model.base_model, config)
    banks = model.adapter_modules
    tensors: dict[str, torch.Tensor] = {}
    biased = False
    for site in sites:
        _check_single_name(model.base_model, site)
        bank = banks[bank_key(site, config.unified)]
        down, up = bank.down[task].detach(), bank.up[task].detach()  # (d, r), (r, d)
        if site.boundary == "output":
            tensors.update(_head_input_tensors(site, down, up))
        elif isinstance(site.module, nn.Embedding):
            tensors.update(_embedding_tensors(site, down, up))
        elif isinstance(site.module, nn.Linear):
            linear = _linear_tensors(site, down, up)
            biased |= any(k.endswith("lora_B.bias") for k in linear)
            tensors.update(linear)
        else:
            raise ExportError(_not_linear(model.base_model, site))
    if biased and any(isinstance(s.module, nn.Embedding) for s in sites):
        linears = [s.path for s in sites if s.boundary == "input" and isinstance(s.module, nn.Linear)]
        raise ExportError(
            f"Cannot export this AdaLink to peft in one adapter: its Linear site(s) {linears} need peft's lora_bias "
            "(the Linear's bias passes through the link), and peft does not support lora_bias on embedding layers "
            f"{[s.path for s in sites if isinstance(s.module, nn.Embedding)]}. Export each modality from its own "
            "AdaLink (one modality per config), or use `adalink merge` to fold both into a plain checkpoint."
        )
    for site in sites if biased else ():  # peft's lora_bias is for every target: the head's adds nothing
        if site.boundary == "output" and isinstance(site.module, nn.Linear):
            tensors[tuner_key(site.path, "lora_B.bias")] = site.module.weight.new_zeros(site.module.out_features)
    peft_config = {
        "peft_type": "LORA",
        "r": config.rank,
        "lora_alpha": config.rank,  # scaling α / r = 1: the link has no scale of its own
        "lora_dropout": config.dropout,
        "target_modules": [s.path for s in sites],
        "bias": "none",
        "lora_bias": biased,
        "fan_in_fan_out": False,
        "use_dora": False,
        "use_rslora": False,
    }
    return PeftAdapter(peft_config, tensors)


def _embedding_tensors(site: Site, down: torch.Tensor, up: torch.Tensor) -> dict[str, torch.Tensor]:
    module = site.module
    if module.max_norm is not None:
        raise ExportError(
            f"Cannot export the AdaLink on {site.path!r} exactly: the embedding renormalises looked-up rows "
            f"(max_norm={module.max_norm}), which a LoRA computed from the stored table does not see."
        )
    table = module.weight.detach().double()  # (vocab, d), the unscaled table
    a = (table @ down.double()).T  # (r, vocab) = (E·W_down)ᵀ
    return {
        tuner_key(site.path, "lora_embedding_A"): a.to(down.dtype),
        tuner_key(site.path, "lora_embedding_B"): up.T.clone(),  # (d, r) = W_upᵀ
    }


def _linear_tensors(site: Site, down: torch.Tensor, up: torch.Tensor) -> dict[str, torch.Tensor]:
    module = site.module
    weight = module.weight.detach().double()  # (out, in)
    tensors = {
        tuner_key(site.path, "lora_A.weight"): (down.double().T @ weight).to(down.dtype),  # (r, in)
        tuner_key(site.path, "lora_B.weight"): up.T.clone(),  # (out, r)
    }
    if module.bias is not None:
        bias = module.bias.detach().double() @ down.double() @ up.double()  # (out,) = b·W_down·W_up
        tensors[tuner_key(site.path, "lora_B.bias")] = bias.to(down.dtype)
    return tensors


def _head_input_tensors(site: Site, down: torch.Tensor, up: torch.Tensor) -> dict[str, torch.Tensor]:
    weight = site.module.weight.detach().double()  # (V, d), the head's rows
    return {
        tuner_key(site.path, "lora_A.weight"): down.T.clone(),  # (r, d) = W_downᵀ
        tuner_key(site.path, "lora_B.weight"): (weight @ up.double().T).to(up.dtype),  # (V, r) = W·W_upᵀ
    }


def _check_single_name(base: nn.Module, site: Site) -> None:
    names = [name for name, m in base.named_modules(remove_duplicate=False) if m is site.module]
    if len(names) > 1:
        raise ExportError(
            f"Cannot export the AdaLink on {site.path!r}: that module is reachable under several names {names}, and "
            "peft would wrap only one of them, leaving the others unadapted."
        )


def _not_linear(base: nn.Module, site: Site) -> str:
    linears = [name for name, m in site.module.named_modules() if isinstance(m, nn.Linear)]
    hint = f" (e.g. '{site.path}.{linears[-1]}', its last Linear)" if linears else ""
    return (
        f"Cannot export the AdaLink of modality {site.modality!r} on {site.path!r} to peft: it is a "
        f"{type(site.module).__name__}, and a LoRA holds the link exactly only on an Embedding or a Linear. Point the "
        f"modality at a Linear whose output is the same{hint} and retrain, or serve it with adalink."
    )
