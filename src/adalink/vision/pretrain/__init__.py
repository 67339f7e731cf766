"""Stage 1 of the easy-VQA experiments: building the "pre-trained VLM" that every PEFT method then adapts.

- :func:`pretrain_vlm` (:mod:`~adalink.vision.pretrain.train`): the vision encoder is pre-trained as an image
  classifier, then vision encoder, projector and head are trained with MiniLM frozen on easy-VQA train *without* the
  held-out question types (default ``yesno-shape``), so that a second stage can adapt the frozen VLM to the held-out
  type with each PEFT method. The head still covers all 13 answers.
- :class:`Stage1Settings` (:mod:`~adalink.vision.pretrain.settings`): the steps, batch sizes, learning rates, seed,
  held-out types and architecture that define a stage-1 VLM.
- :func:`cached_pretrained_vlm` (:mod:`~adalink.vision.pretrain.cache`) builds that model once per setting under
  ``default_cache_dir() / "models" / "easyvqa-vlm-<settings hash>"`` through the directory cache
  (:func:`adalink.models.cache.materialise`): trained into a temporary sibling, completed by a marker written last
  (which also records the MiniLM weight file it was trained against), renamed into place; reused while the marker is
  valid.
"""

from .cache import cache_key, cached_pretrained_vlm
from .sampling import QuestionSampler
from .settings import DEFAULT_PRETRAIN, Stage1Settings
from .train import PRETRAIN_FILE, evaluate_vlm, pretrain_vision, pretrain_vlm

__all__ = [
    "DEFAULT_PRETRAIN",
    "PRETRAIN_FILE",
    "QuestionSampler",
    "Stage1Settings",
    "cache_key",
    "cached_pretrained_vlm",
    "evaluate_vlm",
    "pretrain_vision",
    "pretrain_vlm",
]
