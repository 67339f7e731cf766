"""Loading what a run needs: its tasks' data, and its base model with format and tokenizer.

This is the one place that tells text models (resolved by :func:`adalink.models.resolve_model`, classification or
text-to-text) from the easy-VQA runs on the stage-1 TinyVLM: ``adalink train``, ``eval``/``predict``/``merge``
(:func:`adalink.runs.reading.load_run`), ``adalink bench`` and ``adalink serve`` all load a base through
:func:`setup_model`.
"""

from __future__ import annotations

from inspect import signature
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from ..data import (
    TASK_NAMES,
    GenerationData,
    TextClassificationData,
    VQAData,
    load_easyvqa,
    load_file_task,
    load_text_task,
)
from ..data.easyvqa import TASK_NAME as EASYVQA
from ..errors import UsageError
from ..models.precision import BaseLoading
from ..tasks.formats import ClassificationFormat, TaskInfo, TextToTextFormat, make_format
from ..tasks.options import TaskOptions
from ..tasks.sft import SFTFormat, is_sft, load_sft_tasks
from .base_model import VLM_ALIAS, load_tokenizer, vlm_path

__all__ = [
    "VLM_ALIAS",
    "VQA_TASK",
    "Format",
    "ModelSetup",
    "check_vocabulary",
    "load_tasks",
    "load_tokenizer",
    "setup_model",
]

VQA_TASK = EASYVQA
Format = ClassificationFormat | TextToTextFormat | SFTFormat


class ModelSetup(NamedTuple):
    """A run's base model before its weights are loaded; unpacks as ``(path, fmt, tokenizer)``."""

    path: str  # directory of the base checkpoint (easy-VQA: of the stage-1 TinyVLM)
    fmt: Format  # how examples become batches, losses and predictions (VQAFormat for easy-VQA)
    tokenizer: Any

    def build_base(
        self, *, seed: int, weights: str | Path | None = None, loading: BaseLoading | None = None
    ) -> nn.Module:
        """The base model with the format's head (new ones initialised from ``seed``); ``weights``: a directory to
        load instead of :attr:`path` (a fully fine-tuned run's own model); ``loading``: the frozen base's dtype,
        quantization and checkpointing (:mod:`.precision`; default float32, none, off)."""
        path = str(weights or self.path)
        if loading is None or loading.is_default:
            return self.fmt.build_base(path, seed=seed)
        if not any(
            p.name == "loading" or p.kind is p.VAR_KEYWORD for p in signature(self.fmt.build_base).parameters.values()
        ):
            raise UsageError(
                f"--dtype, --quantize and --gradient-checkpointing do not apply to the {self.fmt.name} format: it "
                "builds its own model (the easy-VQA TinyVLM) as float32."
            )
        return self.fmt.build_base(path, seed=seed, loading=loading)


def load_tasks(args: TaskOptions) -> list[TextClassificationData | VQAData | GenerationData]:
    if is_sft(args):  # generative: --format sft, or a generative --task (adalink.tasks.sft)
        return list(load_sft_tasks(args))  # a list of the union: list is invariant
    if args.train_file:
        data = load_file_task(
            args.train_file,
            args.eval_file,
            text_column=args.text_column,
            label_column=args.label_column,
            name=args.task_name,
        )
        return [data]
    names = [n.strip() for n in args.task.split(",") if n.strip()]
    known = (*TASK_NAMES, VQA_TASK)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(
            f"--task {args.task!r}: unknown task(s) {unknown}; expected a comma-separated list of {list(known)}, "
            "or your own data with --train-file."
        )
    if VQA_TASK in names:
        if len(names) > 1:
            raise UsageError(f"--task {VQA_TASK} (images + questions) cannot be mixed with text tasks {names}.")
        vqa = load_easyvqa()
        if args.question_types:
            vqa = vqa.with_question_types([t.strip() for t in args.question_types.split(",") if t.strip()])
        return [vqa]
    if args.question_types:
        raise UsageError(f"--question-types {args.question_types!r} applies only to --task {VQA_TASK}, not {names}.")
    return [load_text_task(name) for name in names]


def setup_model(model: str, format_name: str, tasks: list[TaskInfo]) -> ModelSetup:
    """(checkpoint path, format, tokenizer) of a run. easyvqa runs on the stage-1 TinyVLM built from MiniLM."""
    from ..models import resolve_model

    if format_name == "vqa" or any(t.name == VQA_TASK for t in tasks):
        return _setup_vlm(model, tasks)
    resolved = resolve_model(model)
    tokenizer = load_tokenizer(resolved.path)
    check_vocabulary(tokenizer, _embedding_rows(resolved.path), model)
    if format_name == "auto" and any(not t.label_names for t in tasks):  # generative tasks have no labels
        format_name = "sft"
    fmt = make_format(format_name, tasks, resolved.kind)
    if format_name == "sft":
        assert isinstance(fmt, TextToTextFormat)  # make_format refuses sft on an encoder
        return ModelSetup(resolved.path, SFTFormat(fmt), tokenizer)
    return ModelSetup(resolved.path, fmt, tokenizer)


def _setup_vlm(model: str, tasks: list[TaskInfo]) -> ModelSetup:
    from ..vision.vlm import TinyVLMConfig, read_vlm_config, resolve_text_model_path
    from ..vision.vqa import VQAFormat

    path = vlm_path(model)
    config = TinyVLMConfig.from_dict(read_vlm_config(Path(path))["config"])
    fmt = VQAFormat(tasks, image_size=config.image_size)
    return ModelSetup(path, fmt, load_tokenizer(resolve_text_model_path(config.text_model)))


def _embedding_rows(path: str) -> int | None:
    """Rows of the model's input embedding table, from its config (no weights loaded); None if it does not say."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    rows = getattr(config.get_text_config(), "vocab_size", None)
    return rows if isinstance(rows, int) else None


def check_vocabulary(tokenizer: Any, rows: int | None, model: str) -> None:
    """Refuse a tokenizer with token ids that the model's embedding table has no row for.

    Such an id fails deep inside torch (``IndexError: index out of range in self``) at the first batch that holds
    it, e.g. a tokenizer class that adds an end-of-sequence token on reload (which the text-to-text targets end
    with). A table with more rows than the tokenizer has tokens is common (padded for speed) and fine.

    Raises:
        ValueError: Naming the tokens (ids and strings), both sizes and what to do.
    """
    if rows is None:
        return
    beyond = sorted((index, token) for token, index in tokenizer.get_vocab().items() if index >= rows)
    if not beyond:
        return
    shown = ", ".join(f"{index} {token!r}" for index, token in beyond[:5])
    more = f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
    raise UsageError(
        f"--model {model}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has only "
        f"{rows} rows, so token id(s) {shown}{more} have no embedding and would fail inside the model. Use the "
        "model's own tokenizer, or give the model rows for them and save it: "
        "model.resize_token_embeddings(len(tokenizer)); model.save_pretrained(DIR); tokenizer.save_pretrained(DIR)."
    )
