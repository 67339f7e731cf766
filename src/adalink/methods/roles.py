"""Where each PEFT method attaches: a small per-architecture map of module *roles*.

A role names what a module does in a transformer layer, whatever the architecture calls it:

=============  ======================================================================================
``q k v o``    attention query / key / value / output projections (GPT-2 fuses q, k, v into ``c_attn``)
``ffn_in``     feed-forward input projection(s) (Llama: ``gate_proj`` and ``up_proj``)
``ffn_out``    feed-forward output projection, whose output is the FFN sublayer's output
``ffn``        the module whose *input* is the FFN sublayer's input (BERT: ``BertIntermediate``)
``attention``  the (self and cross) attention module
``layernorm``  every LayerNorm / RMSNorm, the final one included
=============  ======================================================================================

Roles are found by module class and attribute (``"LlamaAttention.q_proj"``), never by splitting parameter names.
A composite model (a VLM) without a map of its own uses its ``language_model``'s or ``text_model``'s map, so
role-based methods adapt the language model's blocks.
An unknown architecture gets an error naming the missing role; users pass module names per role instead
(``roles={"q": ["model.layers.0.attn.wq", ...]}``, exact dotted paths or full-match regular expressions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import nn

from ..errors import ConfigError

__all__ = ["ROLES", "ROLE_MAP", "RoleError", "find_role", "layer_of", "model_type_of"]

ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out", "ffn", "attention", "layernorm")

# model_type -> role -> "Class" (the module itself) or "Class.attr" (an attribute of every module of that class)
ROLE_MAP: dict[str, dict[str, tuple[str, ...]]] = {
    "bert": {
        "q": ("BertSelfAttention.query",),
        "k": ("BertSelfAttention.key",),
        "v": ("BertSelfAttention.value",),
        "o": ("BertSelfOutput.dense",),
        "ffn_in": ("BertIntermediate.dense",),
        "ffn_out": ("BertOutput.dense",),
        "ffn": ("BertIntermediate",),
        "attention": ("BertSelfAttention",),
        "layernorm": ("BertEmbeddings.LayerNorm", "BertSelfOutput.LayerNorm", "BertOutput.LayerNorm"),
    },
    "gpt2": {  # q, k and v are one fused Conv1D (weight stored (in, out))
        "q": ("GPT2Attention.c_attn",),
        "k": ("GPT2Attention.c_attn",),
        "v": ("GPT2Attention.c_attn",),
        "o": ("GPT2Attention.c_proj",),
        "ffn_in": ("GPT2MLP.c_fc",),
        "ffn_out": ("GPT2MLP.c_proj",),
        "ffn": ("GPT2MLP",),
        "attention": ("GPT2Attention",),
        "layernorm": ("GPT2Block.ln_1", "GPT2Block.ln_2", "GPT2Model.ln_f"),
    },
    "llama": {
        "q": ("LlamaAttention.q_proj",),
        "k": ("LlamaAttention.k_proj",),
        "v": ("LlamaAttention.v_proj",),
        "o": ("LlamaAttention.o_proj",),
        "ffn_in": ("LlamaMLP.gate_proj", "LlamaMLP.up_proj"),
        "ffn_out": ("LlamaMLP.down_proj",),
        "ffn": ("LlamaMLP",),
        "attention": ("LlamaAttention",),
        "layernorm": ("LlamaRMSNorm",),
    },
    "t5": {
        "q": ("T5Attention.q",),
        "k": ("T5Attention.k",),
        "v": ("T5Attention.v",),
        "o": ("T5Attention.o",),
        "ffn_in": ("T5DenseActDense.wi", "T5DenseGatedActDense.wi_0", "T5DenseGatedActDense.wi_1"),
        "ffn_out": ("T5DenseActDense.wo", "T5DenseGatedActDense.wo"),
        "ffn": ("T5DenseActDense", "T5DenseGatedActDense"),
        "attention": ("T5Attention",),
        "layernorm": ("T5LayerNorm",),
    },
}
for _family in ("Mistral", "Qwen2"):  # Llama's layout under other class names
    ROLE_MAP[_family.lower()] = {r: tuple(s.replace("Llama", _family) for s in v) for r, v in ROLE_MAP["llama"].items()}


class RoleError(ConfigError):
    """A method needs a role that the model's architecture map lacks (or that matched no module)."""


def model_type_of(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None)


def find_role(
    model: nn.Module, role: str, overrides: Mapping[str, Sequence[str]] | None = None, *, method: str = "this method"
) -> dict[str, nn.Module]:
    """Every module playing ``role`` in ``model``, as {dotted path: module} in model order (never empty).

    ``overrides`` (a config's ``roles`` field) maps a role to exact dotted paths or full-match regular expressions
    and takes precedence over :data:`ROLE_MAP`.
    """
    if role not in ROLES:
        raise RoleError(f"Unknown role {role!r}: expected one of {list(ROLES)}.")
    if overrides and role in overrides:
        found = _by_patterns(model, overrides[role])
        source = f"roles[{role!r}]={list(overrides[role])}"
    else:
        model_type = model_type_of(model)
        if model_type not in ROLE_MAP:  # a VLM: the roles of its language model (LLaVA-style or our TinyVLM)
            model_type = _language_model_type(model) or model_type
        if model_type not in ROLE_MAP:
            raise RoleError(
                f"{method} needs the {role!r} modules, but architecture {model_type!r} ({type(model).__name__}) has "
                f"no role map (known: {sorted(ROLE_MAP)}). Pass roles={{{role!r}: [module names or regexes]}} in "
                "the method's config."
            )
        found = _by_class(model, ROLE_MAP[model_type][role])
        source = f"the {model_type!r} role map"
    if not found:
        raise RoleError(
            f"{method} needs the {role!r} modules, but {source} matched no module of {type(model).__name__}."
        )
    return found


def _language_model_type(model: nn.Module) -> str | None:
    """The model type of a composite model's language model (``language_model``, ``model.language_model`` as in
    transformers' LLaVA, or ``text_model`` as in our TinyVLM), so that role-based methods adapt the language model's
    blocks of a VLM; None if it has no such known part."""
    for path in _LANGUAGE_MODEL_PATHS:
        try:
            inner = model.get_submodule(path)
        except AttributeError:
            continue
        if model_type_of(inner) in ROLE_MAP:
            return model_type_of(inner)
    return None


_LANGUAGE_MODEL_PATHS = ("language_model", "model.language_model", "text_model")


def _by_class(model: nn.Module, specs: Sequence[str]) -> dict[str, nn.Module]:
    wanted = [(owner, attr) for owner, _, attr in (spec.partition(".") for spec in specs)]
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        cls = type(module).__name__.removeprefix("Parametrized")
        for owner, attr in wanted:
            if cls != owner:
                continue
            if not attr:
                found[name] = module
            elif isinstance(getattr(module, attr, None), nn.Module):
                found[f"{name}.{attr}" if name else attr] = getattr(module, attr)
    order = {name: i for i, (name, _) in enumerate(model.named_modules(remove_duplicate=False))}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def _by_patterns(model: nn.Module, patterns: Sequence[str]) -> dict[str, nn.Module]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise RoleError(f"roles pattern {pattern!r} is not a valid regular expression ({err}).") from None
    return {name: m for name, m in model.named_modules() if name and any(p.fullmatch(name) for p in compiled)}


def layer_of(path: str) -> str:
    """The outermost ``<list>.<index>`` prefix of ``path`` (its transformer layer), e.g. ``encoder.block.3``."""
    match = re.match(r"^(.*?\.\d+)(\.|$)", path)
    return match.group(1) if match else ""
