"""Export an ``adalink train`` output directory: every task's adapter in peft's format, with what a client needs.

Each task directory (see :func:`adalink.export.export_peft` for the layout) gets, beside the adapter:

- the run's tokenizer (with the padding token the run set), so ``AutoTokenizer.from_pretrained(directory)`` works;
- ``adalink_task.json``: the task's labels and, for a classification run, ``num_labels`` / ``id2label`` of the
  exported head (a multi-task run's shared head is cut to the task's own rows, so build the base with
  ``num_labels`` of the task); for a text-to-text run, the exact prompt template the run trained with
  (``prompt_template.format(text=...)``) and the answer it expects (a space, the label word, end of sequence); for
  an sft run, how its prompts were given (as is, or chat messages through the tokenizer's chat template, which the
  exported tokenizer holds) and how its responses end (:mod:`adalink.tasks.sft`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ..export.adapter import AdaptedModel, ExportError
from ..export.convert import TaskDetails, export_peft
from ..export.heads import HeadRows
from ..methods.full import FullConfig
from ..tasks.formats import ClassificationFormat, TextToTextFormat
from ..tasks.sft import SFTFormat, eos_id
from .reading import LoadedRun, load_run, read_run, run_shares_base

__all__ = ["export_run", "prompt_template"]

_SLOT = "\x00text\x00"  # stands for the text while the template is built; cannot occur in a task name or label


def export_run(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, tasks: Sequence[str] | None = None
) -> list[Path]:
    """Export the tasks (default: all) of the run in ``run_dir`` under ``out_dir``; returns the task directories.

    Raises:
        ExportError: The run's method or settings cannot be exported exactly (nothing is written then).
        FileNotFoundError: ``run_dir`` is not an ``adalink train`` output directory.
    """
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    if not run_shares_base(run):
        raise ExportError(f"Cannot export {run_dir}: {FullConfig.peft_refusal}.")
    names = [task["name"] for task in run["tasks"]]
    chosen = list(tasks) if tasks else names
    unknown = [t for t in chosen if t not in names]
    if unknown:  # checked before the base model is loaded
        raise ExportError(f"Tasks {unknown} are not tasks of the run in {run_dir}; its tasks are {names}.")
    loaded = load_run(run_dir)
    details = {name: _details(loaded, names.index(name)) for name in chosen}
    model = cast(AdaptedModel, loaded.model)  # runs that save an adapter load as a PeftModel
    directories = export_peft(model, out_dir, tasks=chosen, details=details)
    for directory in directories:
        loaded.tokenizer.save_pretrained(directory)
    return directories


def prompt_template(fmt: TextToTextFormat, task: int) -> tuple[str, str]:
    """(text before, text after) the input text in the prompt ``fmt`` builds for ``task``."""
    before, after = fmt.prompt(task, _SLOT).split(_SLOT)
    return before, after


def _details(loaded: LoadedRun, task: int) -> TaskDetails:
    fmt, model = loaded.fmt, loaded.model
    info_task = fmt.tasks[task]
    source = info_task.name if model.peft_config.has_tasks() else str(model.task_names[0])
    info: dict[str, Any] = {
        "format": fmt.name,
        "label_names": list(info_task.label_names),
        "base_model": loaded.run.get("model_path", loaded.run.get("model")),
        "max_length": loaded.run.get("max_length"),
    }
    head = None
    if isinstance(fmt, ClassificationFormat):
        paths, start = fmt.head_modules(model.get_base_model()), fmt.offsets[task]
        head = HeadRows(paths[0], start, start + len(info_task.label_names)) if paths else None
        info.update(num_labels=len(info_task.label_names), id2label=dict(enumerate(info_task.label_names)))
    elif isinstance(fmt, SFTFormat):
        info.update(_sft_details(loaded, fmt))
    elif isinstance(fmt, TextToTextFormat):
        before, after = prompt_template(fmt, task)
        eos = loaded.tokenizer.eos_token or loaded.tokenizer.sep_token or ""  # what TextToTextFormat appends
        info.update(
            prompt_template=_escape(before) + "{text}" + _escape(after),
            prompt_prefix=before,
            prompt_suffix=after,
            answer_template=" {label}" + _escape(eos),
            encoder_decoder=fmt.encoder_decoder,
            decoding="greedy; the answer is the first line of the generation, matched case-insensitively to a label",
        )
    return TaskDetails(adapter_task=source, head=head, info=info)


def _sft_details(loaded: LoadedRun, fmt: SFTFormat) -> dict[str, Any]:
    end = eos_id(loaded.tokenizer)
    space = "none (encoder-decoder)" if fmt.encoder_decoder else "one space when the prompt does not end in whitespace"
    return {
        "encoder_decoder": fmt.encoder_decoder,
        "prompt": "the prompt as given, tokenized with the tokenizer's special tokens; chat messages rendered by the "
        "tokenizer's chat template with add_generation_prompt=True, tokenized without adding special tokens",
        "response_template": "{response}" + _escape(loaded.tokenizer.convert_ids_to_tokens(end)),
        "response_space_before": space,
        "eos_token_id": end,
        "max_new_tokens": loaded.max_new_tokens,
        "decoding": "greedy, stopped at eos_token_id; scored by ROUGE-L F1 and exact match of the stripped text",
    }


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
