"""Base models: resolving a ``--model`` argument to a local checkpoint, and the directory cache adalink builds into.

- :mod:`adalink.models.resolve`: :func:`resolve_model` turns a packaged alias (:data:`MODEL_ALIASES`), a local
  ``save_pretrained`` directory or the name of a model in the offline Hugging Face cache into a checkpoint directory.
- :mod:`adalink.models.smollm2`: the ``smollm2-135m`` alias, a GGUF file converted once into a float32 checkpoint;
  :mod:`adalink.models.gemma3`: the ``gemma3-270m`` alias, a GGUF file in four chunk packages, likewise
  (:mod:`adalink.models.gguf`: their shared conversion).
- :mod:`adalink.models.cache`: the crash- and race-safe directory cache (build into a temporary sibling, marker
  :data:`MARKER_NAME` written last, rename into place) under :func:`default_cache_dir`, also used for the stage-1 VLM.
"""

from .cache import MARKER_NAME, default_cache_dir
from .errors import MissingModelPackageError, ModelNotFoundError
from .resolve import MODEL_ALIASES, ResolvedModel, is_cached_hub_model, resolve_model

__all__ = [
    "MARKER_NAME",
    "MODEL_ALIASES",
    "MissingModelPackageError",
    "ModelNotFoundError",
    "ResolvedModel",
    "default_cache_dir",
    "is_cached_hub_model",
    "resolve_model",
]
