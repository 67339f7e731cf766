"""adalink: non-intrusive parameter-efficient fine-tuning for PyTorch and Hugging Face transformers.

AdaLink (Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning for versatile
multimodal modeling") adapts a frozen model at its input boundary: ``E' = E + f(E·W_down)·W_up``.

The names below are imported on first use (PEP 562), not by ``import adalink``: the methods import torch, which takes
seconds, and ``adalink train --method loraa`` (``adalink.cli`` is a submodule, so it runs this file first) should be
refused before that. ``from adalink import AdaLinkConfig`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import AdalinkError, ConfigError, FoldError
from .integrations.peft_registration import register_when_peft_imported

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .fingerprint import FingerprintMismatchError
    from .io import AdapterFileError
    from .methods import METHOD_CONFIGS, MethodConfig
    from .methods.adalink import INPUT_EMBEDDINGS, AdaLinkBank, AdaLinkConfig
    from .methods.adapters import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig
    from .methods.bitfit import BitFitConfig
    from .methods.compacter import CompacterConfig, CompacterPlusPlusConfig
    from .methods.dora import DoRAConfig
    from .methods.full import FullConfig
    from .methods.ia3 import IA3Config
    from .methods.krona import KronAConfig
    from .methods.ln_tuning import LNTuningConfig
    from .methods.lora import LoRAAllConfig, LoRAConfig
    from .methods.mam import MAMConfig
    from .methods.prefix_tuning import PrefixTuningConfig
    from .methods.prompt_tuning import PromptTuningConfig
    from .methods.unipelt import UniPELTConfig
    from .peft_model import PeftModel, get_peft_model
    from .routing import TaskSpec, UnknownTaskError

# module -> the public names it provides, imported on first access (the same names as the block above)
_LAZY: dict[str, tuple[str, ...]] = {
    ".fingerprint": ("FingerprintMismatchError",),
    ".io": ("AdapterFileError",),
    ".methods": ("METHOD_CONFIGS", "MethodConfig"),
    ".methods.adalink": ("INPUT_EMBEDDINGS", "AdaLinkBank", "AdaLinkConfig"),
    ".methods.adapters": ("HoulsbyConfig", "ParallelAdapterConfig", "PfeifferConfig"),
    ".methods.bitfit": ("BitFitConfig",),
    ".methods.compacter": ("CompacterConfig", "CompacterPlusPlusConfig"),
    ".methods.dora": ("DoRAConfig",),
    ".methods.full": ("FullConfig",),
    ".methods.ia3": ("IA3Config",),
    ".methods.krona": ("KronAConfig",),
    ".methods.ln_tuning": ("LNTuningConfig",),
    ".methods.lora": ("LoRAAllConfig", "LoRAConfig"),
    ".methods.mam": ("MAMConfig",),
    ".methods.prefix_tuning": ("PrefixTuningConfig",),
    ".methods.prompt_tuning": ("PromptTuningConfig",),
    ".methods.unipelt": ("UniPELTConfig",),
    ".peft_model": ("PeftModel", "get_peft_model"),
    ".routing": ("TaskSpec", "UnknownTaskError"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

register_when_peft_imported()  # AdaLink becomes a peft method once peft is imported (adalink does not import it)

__all__ = [
    "INPUT_EMBEDDINGS",
    "METHOD_CONFIGS",
    "AdaLinkBank",
    "AdaLinkConfig",
    "AdalinkError",
    "AdapterFileError",
    "BitFitConfig",
    "CompacterConfig",
    "CompacterPlusPlusConfig",
    "ConfigError",
    "DoRAConfig",
    "FingerprintMismatchError",
    "FoldError",
    "FullConfig",
    "HoulsbyConfig",
    "IA3Config",
    "KronAConfig",
    "LNTuningConfig",
    "LoRAAllConfig",
    "LoRAConfig",
    "MAMConfig",
    "MethodConfig",
    "ParallelAdapterConfig",
    "PeftModel",
    "PfeifferConfig",
    "PrefixTuningConfig",
    "PromptTuningConfig",
    "TaskSpec",
    "UniPELTConfig",
    "UnknownTaskError",
    "__version__",
    "get_peft_model",
]


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    try:  # a submodule (`adalink.methods`), as when this file imported them all
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
