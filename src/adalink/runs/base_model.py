"""A finished run's ``run.json`` and its base model, built from what ``run.json`` says, without its task format.

``run.json`` (:data:`RUN_FILE`) names the base (``model``), the format and every task's labels; that is all it takes
to rebuild the base a run trained on: a classifier with the head over those labels, a language model, or the
easy-VQA TinyVLM (:func:`build_run_base`), and to attach the run's adapter to it (:func:`load_run_model`). Loading a
run for evaluation (:func:`adalink.runs.reading.load_run`) and folding it into a plain checkpoint (:mod:`.folding`)
both build it here; only the first also needs the task format. Nothing here imports :mod:`adalink.tasks`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from ..errors import MissingFileError, UsageError
from ..methods.full import FullConfig
from ..models.heads import load_classifier, load_language_model
from ..models.precision import BaseLoading
from ..peft_model import PeftModel, get_peft_model

__all__ = [
    "RUN_FILE",
    "VLM_ALIAS",
    "RunModel",
    "base_tokenizer",
    "build_run_base",
    "load_run_model",
    "load_tokenizer",
    "read_run",
    "vlm_path",
]

RUN_FILE = "run.json"
VLM_ALIAS = "easyvqa-vlm"  # the stage-1 TinyVLM (vision side trained on easy-VQA, MiniLM frozen), built once


def read_run(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` of a run directory (model, format, tasks and labels, max_length, ...)."""
    run_file = Path(directory) / RUN_FILE
    if not run_file.is_file():
        raise MissingFileError(f"{directory} is not an `adalink train` output directory: {RUN_FILE} is missing.")
    try:
        return json.loads(run_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{run_file} is corrupt or truncated (not valid JSON: {err}).") from None


def vlm_path(model: str) -> str:
    """The TinyVLM directory of an easy-VQA run's ``--model`` (``minilm`` or the alias: the cached stage-1 one)."""
    from ..vision.pretrain import cached_pretrained_vlm

    return str(cached_pretrained_vlm()) if model in ("minilm", VLM_ALIAS) else model


def build_run_base(
    run: dict[str, Any],
    *,
    model: str | None = None,
    weights: str | Path | None = None,
    loading: BaseLoading | None = None,
) -> tuple[nn.Module, str]:
    """(the base model of ``run`` with its new head initialised from the run's seed, the base checkpoint's directory).

    ``model``: build on this base instead of the run's own; ``weights``: a directory to load instead of the base
    checkpoint (a fully fine-tuned run's own model); ``loading``: the frozen base's dtype, quantization and
    checkpointing (default float32, none, off).

    Raises:
        UsageError: ``loading`` other than the default for an easy-VQA run (its TinyVLM is built float32).
    """
    seed, name = run["seed"], model or run["model"]
    if run["format"] == "vqa":
        if loading is not None and not loading.is_default:
            raise UsageError(
                "--dtype, --quantize and --gradient-checkpointing do not apply to the vqa format: it builds its own "
                "model (the easy-VQA TinyVLM) as float32."
            )
        import torch

        from ..vision.vlm import TinyVLM

        path = vlm_path(name)
        torch.manual_seed(seed)  # as the format builds it: its head is kept, not re-initialised
        return TinyVLM.from_pretrained(weights or path), path
    from ..models import resolve_model

    resolved = resolve_model(name)
    source = str(weights or resolved.path)
    if run["format"] == "classification":
        labels = [(t["name"], t["label_names"]) for t in run["tasks"]]
        return load_classifier(source, labels, seed=seed, loading=loading), resolved.path
    encoder_decoder = resolved.kind == "encoder-decoder"  # text2text and sft
    return load_language_model(source, encoder_decoder=encoder_decoder, seed=seed, loading=loading), resolved.path


class RunModel(NamedTuple):
    """A run's base with its adapter attached, as :func:`load_run_model` builds it from ``run.json``."""

    model: PeftModel  # in eval mode, frozen
    base_path: str  # the base checkpoint's directory
    tokenizer: Any  # the one saved beside a full-tuning run from before full tuning was a method; else None


def load_run_model(
    directory: Path,
    run: dict[str, Any],
    *,
    model: str | None = None,
    ignore_fingerprint: bool = False,
    loading: BaseLoading | None = None,
) -> RunModel:
    """The run's base with its adapter (refused on a different base model), built from ``run.json`` alone: no task
    format. ``loading``: how to hold the base (default: as the run trained on it, without checkpointing)."""
    if not run.get("saves_adapter", True):  # a full-tuning run from before full tuning was a method: model/
        base, path = build_run_base(run, model=model, weights=directory / "model")
        loaded = get_peft_model(base, FullConfig()).requires_grad_(False)
        saved = directory / "model" / "tokenizer_config.json"
        return RunModel(loaded.eval(), path, load_tokenizer(str(directory / "model")) if saved.is_file() else None)
    loading = loading or BaseLoading.from_options(run.get("args", {})).for_inference()
    base, path = build_run_base(run, model=model, loading=loading)
    loaded = PeftModel.from_pretrained(base.eval(), directory, ignore_fingerprint=ignore_fingerprint)
    return RunModel(loaded.eval(), path, None)


def base_tokenizer(run: dict[str, Any], base_path: str) -> Any:
    """The tokenizer of a run's base (an easy-VQA run's: its TinyVLM's text model's)."""
    if run["format"] == "vqa":
        from ..vision.vlm import TinyVLMConfig, read_vlm_config, resolve_text_model_path

        config = TinyVLMConfig.from_dict(read_vlm_config(Path(base_path))["config"])
        return load_tokenizer(resolve_text_model_path(config.text_model))
    return load_tokenizer(base_path)


def load_tokenizer(path: str) -> Any:
    """The tokenizer saved in ``path``, with a pad token (decoders often have none: their end or separator token)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    return tokenizer
