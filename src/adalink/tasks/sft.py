"""Generative supervised fine-tuning (``--format sft``): a prompt in, the response the model should write out.

The format wraps the text-to-text one (:class:`~adalink.tasks.formats.TextToTextFormat`) and keeps its base model
(``build_base``, the same causal or sequence-to-sequence LM), its loss (summed over target tokens, the prediction of
token t+1 at position t for decoders) and its global token count; only the batches differ:

- **Prompt.** A plain prompt is tokenized as given, with the tokenizer's special tokens. Chat ``messages`` are
  rendered by the tokenizer's own chat template with the cue of the assistant's turn
  (``apply_chat_template(..., add_generation_prompt=True)``), then tokenized without adding special tokens (the
  template holds them). A tokenizer without a chat template is refused, naming the flags of plain data.
- **Target.** The response, then the end-of-sequence token, so that the model learns to stop. After a prompt that
  does not end in whitespace, a decoder's response starts with a space (as text-to-text's `` label``), so that its
  first word is the token a BPE vocabulary has for a word inside a text. The loss covers the target only: prompt and
  padding positions are -100.
- **Length.** ``max_length`` bounds a decoder's prompt + response together, an encoder-decoder's prompt and response
  each. A long prompt loses its middle (its start holds the instruction, its end the chat template's answer cue); a
  long response loses its end, and with it the end-of-sequence token (it was not finished), leaving the prompt at
  least half the budget when it needs it.
- **Evaluation** (:func:`adalink.tasks.evaluation.evaluate`): greedy generation of at most the task's
  ``max_new_tokens``, stopped at the same end-of-sequence token, scored by ROUGE-L F1 (``rouge-score``) and exact
  match (whitespace-normalised, case-insensitive); the run's score is ROUGE-L (:attr:`SFTFormat.metric`).

Classification tasks train in this format too (:func:`classification_as_generation`): the text-to-text prompt, and
the label word as the response, so that ``--task bbc,headlines --format sft`` is one multi-task run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..data import (
    GENERATION_TASK_NAMES,
    TASK_NAMES,
    GenerationData,
    GenerationExample,
    TextClassificationData,
    load_generation_file,
    load_generation_task,
    load_text_task,
)
from ..errors import UsageError
from .examples import TaskExample
from .formats import ModelCall, TaskInfo, TextToTextFormat, pad_rows
from .options import TaskOptions

__all__ = ["SFTFormat", "classification_as_generation", "end_token", "eos_id", "is_sft", "load_sft_tasks"]


class SFTFormat:
    """Prompt -> response batches over the text-to-text format's model and loss (see the module docstring)."""

    name = "sft"
    metric = "rouge_l"  # what the run's score is
    modalities: ClassVar[dict[str, str] | None] = None

    def __init__(self, text2text: TextToTextFormat) -> None:
        self.text2text = text2text
        self.tasks, self.encoder_decoder = text2text.tasks, text2text.encoder_decoder

    def build_base(self, path: str, **options: Any) -> nn.Module:
        return self.text2text.build_base(path, **options)

    def head_modules(self, model: nn.Module) -> list[str]:
        return self.text2text.head_modules(model)

    def loss(self, call: ModelCall, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text2text.loss(call, batch)

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return self.text2text.count(batch)

    # ------------------------------------------------------------------------------------------------- batches
    def prompt_text(self, tokenizer: Any, example: GenerationExample) -> str:
        """The prompt as the model reads it: as given, or chat messages rendered by the tokenizer's template."""
        if example.messages is None:
            return example.prompt
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError(
                "The data holds chat 'messages', but this model's tokenizer has no chat template to render them "
                "with (tokenizer.chat_template is None). Use a model whose tokenizer has one (--model), or give the "
                "data as plain prompt and response columns (--prompt-column, --response-column)."
            )
        return tokenizer.apply_chat_template(example.chat, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, tokenizer: Any, example: GenerationExample, max_tokens: int) -> list[int]:
        """Token ids of the prompt, at most ``max_tokens`` of them (a long prompt loses its middle)."""
        return _cut_middle(self._all_prompt_ids(tokenizer, self.prompt_text(tokenizer, example), example), max_tokens)

    def response_ids(self, tokenizer: Any, example: GenerationExample, prompt: str) -> list[int]:
        """Token ids of the target after the prompt text ``prompt``: the response, then end of sequence."""
        space = "" if self.encoder_decoder or not prompt or prompt[-1].isspace() else " "
        return tokenizer(space + example.response, add_special_tokens=False)["input_ids"] + [eos_id(tokenizer)]

    def pair(self, tokenizer: Any, example: GenerationExample, max_length: int) -> tuple[list[int], list[int]]:
        """(prompt ids, target ids) of one example within ``max_length`` (see the module docstring)."""
        if max_length < 2:
            raise UsageError(
                f"--max-length {max_length} is too short for sft: expected at least 2 (prompt + response)."
            )
        prompt = self.prompt_text(tokenizer, example)
        ids, target = self._all_prompt_ids(tokenizer, prompt, example), self.response_ids(tokenizer, example, prompt)
        if self.encoder_decoder:
            return _cut_middle(ids, max_length), target[:max_length]
        target = target[: max_length - min(len(ids), max_length // 2)]
        return _cut_middle(ids, max_length - len(target)), target

    @staticmethod
    def _all_prompt_ids(tokenizer: Any, prompt: str, example: GenerationExample) -> list[int]:
        # a rendered chat holds its special tokens already
        return tokenizer(prompt, add_special_tokens=example.messages is None)["input_ids"]

    def collate(self, items: Sequence[TaskExample], tokenizer: Any, max_length: int) -> dict[str, torch.Tensor]:
        pairs = [self.pair(tokenizer, _generation(item), max_length) for item in items]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        if self.encoder_decoder:
            batch = pad_rows([prompt for prompt, _ in pairs], pad)
            batch["labels"] = pad_rows([target for _, target in pairs], -100)["input_ids"]
        else:
            batch = pad_rows([prompt + target for prompt, target in pairs], pad)
            batch["labels"] = pad_rows([[-100] * len(prompt) + target for prompt, target in pairs], -100)["input_ids"]
        batch["task_ids"] = torch.tensor([item.task for item in items])
        return batch

    def generation_batch(
        self, items: Sequence[TaskExample], tokenizer: Any, max_length: int
    ) -> dict[str, torch.Tensor]:
        """The prompts, left-padded (a decoder continues every row at its end), with their task ids."""
        prompts = [self.prompt_ids(tokenizer, _generation(item), max_length) for item in items]
        batch = pad_rows(prompts, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0, left=True)
        batch["task_ids"] = torch.tensor([item.task for item in items])
        return batch


def end_token(tokenizer: Any) -> int | None:
    """The token that ends every response: end of sequence, or the separator of tokenizers without one (None: no
    such token)."""
    token = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return None if token is None else int(token)


def eos_id(tokenizer: Any) -> int:
    """:func:`end_token`, refused when the tokenizer has none."""
    token = end_token(tokenizer)
    if token is None:
        raise UsageError("The tokenizer has no end-of-sequence (or separator) token: sft needs one to end responses.")
    return int(token)


def _generation(item: TaskExample) -> GenerationExample:
    """The example of an sft batch's item: an sft run's tasks hold generation examples (:func:`load_sft_tasks`)."""
    return cast(GenerationExample, item.example)


def _cut_middle(ids: list[int], budget: int) -> list[int]:
    """``ids`` if they fit in ``budget``; else their first half-budget and their last tokens."""
    if len(ids) <= budget:
        return ids
    head = (budget + 1) // 2
    return ids[:head] + ids[len(ids) - (budget - head) :]


# ----------------------------------------------------------------------------------------------------- tasks
def is_sft(args: TaskOptions) -> bool:
    """Whether ``args`` train generatively: ``--format sft``, or ``auto`` with a packaged generative task.

    Raises:
        ValueError: A generative task with ``--format classification`` or ``text2text``.
    """
    if args.format == "sft":
        return True
    generative = [] if args.train_file else [n for n in _task_names(args.task) if n in GENERATION_TASK_NAMES]
    if generative and args.format != "auto":
        raise UsageError(
            f"--task {','.join(generative)} is generative (a response to write, no labels): train it with --format "
            f"sft (or auto), not --format {args.format}."
        )
    return bool(generative)


def load_sft_tasks(args: TaskOptions) -> list[GenerationData]:
    """The tasks of an sft run: the user's files, or packaged tasks (classification ones as label-word responses)."""
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {args.max_new_tokens!r} is invalid: expected a positive integer.")
    if args.train_file:
        tasks = [
            load_generation_file(
                args.train_file,
                args.eval_file,
                prompt_column=args.prompt_column,
                response_column=args.response_column,
                name=args.task_name,
            )
        ]
    else:
        names, known = _task_names(args.task), (*GENERATION_TASK_NAMES, *TASK_NAMES)
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise UsageError(
                f"--task {args.task!r}: unknown task(s) {unknown} for --format sft; expected a comma-separated list "
                f"of {list(known)}, or your own data with --train-file."
            )
        tasks = [
            load_generation_task(n) if n in GENERATION_TASK_NAMES else classification_as_generation(load_text_task(n))
            for n in names
        ]
    return [replace(task, max_new_tokens=args.max_new_tokens) for task in tasks]


def classification_as_generation(data: TextClassificationData) -> GenerationData:
    """A classification task as prompt -> label word, with text-to-text's prompt and the task's own splits."""
    text2text = TextToTextFormat([TaskInfo(data.name, data.label_names)], encoder_decoder=False)

    def convert(split: Sequence) -> tuple[GenerationExample, ...]:
        return tuple(GenerationExample(text2text.prompt(0, e.text), data.label_names[e.label]) for e in split)

    return GenerationData(data.name, convert(data.train), convert(data.validation), convert(data.test))


def _task_names(task: str) -> list[str]:
    return [name.strip() for name in task.split(",") if name.strip()]
