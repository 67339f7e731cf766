"""adalink: non-intrusive parameter-efficient fine-tuning for PyTorch and Hugging Face transformers.

AdaLink (Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning for versatile
multimodal modeling") adapts a frozen model at its input boundary: ``E' = E + f(E·W_down)·W_up``.
"""

from ._version import __version__
from .config import INPUT_EMBEDDINGS, AdaLinkConfig
from .errors import ConfigError, FoldError
from .fingerprint import FingerprintMismatchError
from .io import AdapterFileError
from .layer import AdaLinkBank
from .methods import METHOD_CONFIGS, MethodConfig
from .model import PeftModel, get_peft_model
from .routing import TaskSpec, UnknownTaskError

__all__ = [
    "INPUT_EMBEDDINGS",
    "METHOD_CONFIGS",
    "AdaLinkBank",
    "AdaLinkConfig",
    "AdapterFileError",
    "ConfigError",
    "FingerprintMismatchError",
    "FoldError",
    "MethodConfig",
    "PeftModel",
    "TaskSpec",
    "UnknownTaskError",
    "__version__",
    "get_peft_model",
]
