"""The stage-1 VLM built once per setting and reused: ``<cache_dir>/models/easyvqa-vlm-<settings hash>``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ...errors import MissingFileError
from ...models.cache import default_cache_dir, materialise
from ..config import TinyVLMConfig, resolve_text_model_path
from .settings import Stage1Settings
from .train import pretrain_vlm

__all__ = ["cache_key", "cached_pretrained_vlm"]

_RECIPE_VERSION = 1  # bump when the training code changes what a setting produces


def cache_key(settings: Stage1Settings, eval_per_type: int | None) -> str:
    """The hash that names the cached stage-1 VLM of these settings (16 hex digits)."""
    text = json.dumps(
        {"recipe": _RECIPE_VERSION, **_key_document(settings, eval_per_type)}, sort_keys=True, default=list
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cached_pretrained_vlm(
    cache_dir: str | os.PathLike | None = None,
    settings: Stage1Settings | None = None,
    *,
    eval_per_type: int | None = 500,
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """The stage-1 VLM for these settings, trained once (see :func:`pretrain_vlm`) and reused afterwards.

    Lives in ``<cache_dir>/models/easyvqa-vlm-<hash of the settings>`` (``cache_dir`` defaults to
    :func:`adalink.models.default_cache_dir`). Built through :func:`adalink.models.cache.materialise`: in a temporary
    sibling, finished by a marker written last that lists every file with its size and records the text-model weight
    file, renamed into place. A directory whose marker is missing or stale (another MiniLM installed) is rebuilt; a
    process that loses a race uses the winner's. The stage-1 metrics are in ``pretraining.json`` inside the directory.

    Args:
        cache_dir: The cache root (default :func:`adalink.models.default_cache_dir`).
        settings: What stage 1 trains (default :class:`Stage1Settings`); part of the directory's name.
        eval_per_type: As in :func:`pretrain_vlm`; part of the directory's name too.
        progress: Show progress bars while training.
        **overrides: Fields of :class:`Stage1Settings` that replace those of ``settings`` (``steps=24``, ...).
    """
    settings = Stage1Settings.of(settings, overrides)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / "models" / f"easyvqa-vlm-{cache_key(settings, eval_per_type)}"
    document = _key_document(settings, eval_per_type)

    def build(out_dir: Path) -> None:
        model_dir = out_dir / "model"  # pretrain_vlm saves atomically; its output is then moved up into out_dir
        own_config = dataclasses.replace(settings.config)  # the model keeps its config: not the caller's object
        pretrain_vlm(model_dir, settings, config=own_config, eval_per_type=eval_per_type, progress=progress)
        for entry in model_dir.iterdir():
            os.rename(entry, out_dir / entry.name)
        model_dir.rmdir()
        (out_dir / "settings.json").write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")

    return materialise(
        target,
        build,
        source=_text_weights_file(settings.config),
        announce=f"training the stage-1 easy-VQA VLM once into {target} ({settings.steps} steps; reused afterwards)",
        what="the stage-1 VLM",
    )


def _key_document(settings: Stage1Settings, eval_per_type: int | None) -> dict[str, Any]:
    """What names a cached stage-1 VLM (also written to its ``settings.json``)."""
    return {**settings.to_dict(), "eval_per_type": eval_per_type}


def _text_weights_file(config: TinyVLMConfig) -> Path:
    directory = Path(resolve_text_model_path(config.text_model))
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return directory / name
    raise MissingFileError(f"No model.safetensors or pytorch_model.bin in {directory}.")
