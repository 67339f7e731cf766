"""adalink: non-intrusive parameter-efficient fine-tuning for PyTorch and Hugging Face transformers.

AdaLink (Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning for versatile
multimodal modeling") adapts a frozen model at its input boundary: ``E' = E + f(E·W_down)·W_up``.
"""

from ._version import __version__
from .errors import AdalinkError, ConfigError, FoldError
from .fingerprint import FingerprintMismatchError
from .integrations.peft_registration import register_when_peft_imported
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
