"""Vision-language models for AdaLink's multimodal experiments (see :mod:`adalink.vision.vlm`)."""

from .vlm import POOLINGS, Projector, TinyVLM, TinyVLMConfig, TinyVLMFileError, VisionEncoder

__all__ = ["POOLINGS", "Projector", "TinyVLM", "TinyVLMConfig", "TinyVLMFileError", "VisionEncoder"]
