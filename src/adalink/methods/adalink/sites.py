"""Where AdaLink attaches: the boundaries between a frozen model and its vocabulary (``AdaLinkConfig.boundaries``).

A *site* is one place a link adapts:

- ``"input"`` boundary (the paper's AdaLink, §3.2): a module whose OUTPUT is adapted, one per modality of
  ``AdaLinkConfig.modalities``. ``"input_embeddings"`` resolves through the model's own ``get_input_embeddings()``
  (per side for encoder-decoder models); any other value is a dotted module path.
- ``"output"`` boundary (issue 26): the INPUT of the model's output embedding (``get_output_embeddings()``, the LM
  head), i.e. the last hidden state before the vocabulary projection. Its link is the bank :data:`OUTPUT`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Protocol

from torch import nn

from ...errors import ConfigError

__all__ = ["BOUNDARIES", "INPUT_EMBEDDINGS", "OUTPUT", "UNIFIED", "Site", "SiteSpec", "bank_key", "resolve_sites"]

# The modality path that means "whatever ``model.get_input_embeddings()`` returns".
INPUT_EMBEDDINGS = "input_embeddings"
BOUNDARIES = ("input", "output")  # where a link can sit: after the input embeddings, before the output head
OUTPUT = "output"  # the bank key (and site modality) of the output-boundary link
UNIFIED = "unified"  # the bank key when one input link serves every modality
# Heads that are new, task-specific classifiers rather than a projection onto the vocabulary
_CLASSIFIER_ENDINGS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


class SiteSpec(Protocol):
    """The fields of :class:`~adalink.methods.adalink.AdaLinkConfig` that decide where it attaches."""

    @property
    def modalities(self) -> dict[str, str]: ...
    @property
    def unified(self) -> bool: ...
    @property
    def sides(self) -> str: ...
    @property
    def boundaries(self) -> list[str]: ...


@dataclass(frozen=True)
class Site:
    modality: str  # the modality of an input site; OUTPUT for the output site
    path: str  # dotted path of the adapted module inside the base model
    module: nn.Module
    dim: int  # width of what is adapted (the module's output; the head's input for the output site), the link's d
    # Module that receives ``inputs_embeds=`` in place of calling ``module``; its pre-hook adapts them instead.
    embeds_entry: nn.Module | None
    boundary: str = "input"  # "input": the module's output is adapted; "output": its input (the LM head's)


def bank_key(site: Site, unified: bool) -> str:
    """The key of the bank that adapts ``site``: its modality, ``"unified"`` for shared input links, ``"output"``."""
    return UNIFIED if unified and site.boundary == "input" else site.modality


def resolve_sites(model: nn.Module, config: SiteSpec) -> list[Site]:
    """Resolve every boundary of ``config`` to the module(s) it adapts in ``model``: input sites, then output."""
    sites: list[Site] = []
    for modality, path in config.modalities.items() if "input" in config.boundaries else ():
        if path == INPUT_EMBEDDINGS:
            sites.extend(_embedding_sites(model, modality, config.sides))
        else:
            module = _get_module(model, path)
            sites.append(Site(modality, path, module, _output_dim(module, path), embeds_entry=None))
    if config.unified and len({s.dim for s in sites}) > 1:
        widths = {s.modality: s.dim for s in sites}
        raise ConfigError(
            f"AdaLinkConfig.unified=True is invalid here: expected all adapted modules to share one width, "
            f"found {widths}."
        )
    if OUTPUT in config.boundaries:
        sites.append(_output_site(model))
    return sites


def _output_site(model: nn.Module) -> Site:
    """The output boundary: the input of ``model.get_output_embeddings()``, a Linear onto the vocabulary."""
    name = type(model).__name__
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None and name.endswith(_CLASSIFIER_ENDINGS):
        raise ConfigError(
            f"AdaLinkConfig.boundaries contains 'output', which is invalid for {name}: expected a model with a head "
            "onto the vocabulary (a causal or sequence-to-sequence LM). This model's head is a new task classifier, "
            "trained in full (modules_to_save); a link on its input adds nothing a trained head cannot learn. Use "
            "boundaries=['input']."
        )
    if head is None:
        raise ConfigError(
            f"AdaLinkConfig.boundaries contains 'output', which is invalid for {name}: expected a model with an "
            "output embedding module (get_output_embeddings(), the LM head), found none. Use boundaries=['input'], "
            "or load the model with its LM head (e.g. AutoModelForCausalLM)."
        )
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"AdaLinkConfig.boundaries contains 'output', which is invalid for {name}: expected its output "
            f"embedding module to be an nn.Linear (the link is folded into and exported as a change of its weight), "
            f"found {type(head).__name__}."
        )
    return Site(OUTPUT, _name_of(model, head), head, head.in_features, embeds_entry=None, boundary="output")


def _embedding_sites(model: nn.Module, modality: str, sides: str) -> list[Site]:
    config = getattr(model, "config", None)
    if not getattr(config, "is_encoder_decoder", False):
        module = model.get_input_embeddings()
        return [Site(modality, _name_of(model, module), module, _output_dim(module, ""), embeds_entry=model)]
    stacks = {"encoder": model.get_encoder(), "decoder": model.get_decoder()}
    chosen = ["encoder", "decoder"] if sides == "both" else [sides]
    if sides != "both" and stacks["encoder"].get_input_embeddings() is stacks["decoder"].get_input_embeddings():
        raise ConfigError(
            f"AdaLinkConfig.sides={sides!r} cannot be honoured: this model's encoder and decoder call one shared "
            "embedding module, so its output cannot be adapted for one side only; expected sides='both' "
            "(or transformers>=5, where each side has its own embedding module)."
        )
    sites = []
    for side in chosen:
        module = stacks[side].get_input_embeddings()
        sites.append(Site(modality, _name_of(model, module), module, _output_dim(module, ""), stacks[side]))
    return sites


def _get_module(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        hint = f"close matches: {close}" if close else f"top-level modules: {[n for n in names if '.' not in n]}"
        raise ConfigError(
            f"AdaLinkConfig.modalities path {path!r} is invalid: expected a dotted path of a module in "
            f"{type(model).__name__} or {INPUT_EMBEDDINGS!r}; {hint}."
        ) from None


def _name_of(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)


def _output_dim(module: nn.Module, path: str) -> int:
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    if isinstance(module, nn.Linear):
        return module.out_features
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if linears:  # e.g. a vision projector: Linear -> act -> Linear; its output width is the last Linear's
        return linears[-1].out_features
    raise ConfigError(
        f"AdaLinkConfig.modalities path {path!r} is invalid: expected a module whose output width can be read "
        f"(an Embedding, a Linear, or a module ending in a Linear), found {type(module).__name__}."
    )
