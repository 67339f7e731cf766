"""Vision-language models for AdaLink's multimodal experiments.

:mod:`adalink.vision.vlm` assembles the TinyVLM from :mod:`~adalink.vision.config` (its architecture and text model),
:mod:`~adalink.vision.encoder` (the ViT and projector) and :mod:`~adalink.vision.vlm_files` (its directory's files);
:mod:`adalink.vision.pretrain` trains and caches the stage-1 VLM of the easy-VQA experiments.
"""

from .config import POOLINGS, TinyVLMConfig
from .encoder import Projector, VisionEncoder
from .vlm import TinyVLM
from .vlm_files import TinyVLMFileError

__all__ = ["POOLINGS", "Projector", "TinyVLM", "TinyVLMConfig", "TinyVLMFileError", "VisionEncoder"]
