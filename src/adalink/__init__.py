"""adalink: non-intrusive parameter-efficient fine-tuning for PyTorch and Hugging Face transformers.

AdaLink (Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning for versatile
multimodal modeling") adapts a frozen model at its input boundary: ``E' = E + f(E·W_down)·W_up``.
"""

from ._version import __version__
from .config import INPUT_EMBEDDINGS, AdaLinkConfig, ConfigError
from .fingerprint import FingerprintMismatchError
from .folding import FoldError
from .io import AdapterFileError
from .layer import AdaLinkBank
from .model import PeftModel, TaskSpec, UnknownTaskError, get_peft_model

__all__ = [
    "INPUT_EMBEDDINGS",
    "AdaLinkBank",
    "AdaLinkConfig",
    "AdapterFileError",
    "ConfigError",
    "FingerprintMismatchError",
    "FoldError",
    "PeftModel",
    "TaskSpec",
    "UnknownTaskError",
    "__version__",
    "get_peft_model",
]
