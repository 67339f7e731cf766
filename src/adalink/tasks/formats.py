"""The two task formats of the papers: classification with a head, and text-to-text.

- ``classification`` (encoders): one sequence-classification head over the labels of all tasks together; each
  example's logits are restricted to its own task's slice. The head is new and trainable for every method, and
  counted apart from the method's parameters.
- ``text2text`` (decoders and encoder-decoders, the survey's protocol): a task-prefixed prompt, the label word as
  the target, loss on the target tokens only, scored by exact match of the greedy generation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import UsageError
from ..models.heads import head_modules, load_classifier, load_language_model
from ..models.precision import BaseLoading
from .examples import TaskExample

__all__ = ["FORMATS", "ClassificationFormat", "TaskInfo", "TextToTextFormat", "make_format"]

# Calls the (possibly wrapped) model; ``routed`` adds ``task=`` for task-aware methods.
ModelCall = Callable[..., Any]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    label_names: tuple[str, ...]


class ClassificationFormat:
    name = "classification"
    modalities: ClassVar[dict[str, str] | None] = (
        None  # what a modality-aware method adapts; None = the text embeddings
    )

    def __init__(self, tasks: Sequence[TaskInfo]) -> None:
        self.tasks = list(tasks)
        sizes = [len(t.label_names) for t in self.tasks]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.num_labels = sum(sizes)
        self.mask = torch.zeros(len(sizes), self.num_labels, dtype=torch.bool)  # (T, L): each task's label slice
        for i, (offset, size) in enumerate(zip(self.offsets, sizes, strict=True)):
            self.mask[i, offset : offset + size] = True

    def build_base(self, path: str, *, seed: int, loading: BaseLoading | None = None) -> nn.Module:
        """The encoder with a new head over every task's labels (initialised from ``seed``); ``loading``: dtype,
        quantization and checkpointing of the frozen base (the head stays float32). :mod:`adalink.models.heads`."""
        return load_classifier(path, [(t.name, t.label_names) for t in self.tasks], seed=seed, loading=loading)

    @staticmethod
    def head_modules(model: nn.Module) -> list[str]:
        return head_modules(model)

    def collate(self, items: Sequence[TaskExample], tokenizer: Any, max_length: int) -> dict[str, torch.Tensor]:
        batch = tokenizer(
            [item.example.text for item in items],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch["task_ids"] = torch.tensor([item.task for item in items])
        batch["labels"] = torch.tensor([self.offsets[item.task] + item.example.label for item in items])
        return dict(batch)

    def _masked_logits(self, call: ModelCall, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "task_ids")}
        logits = call(inputs, batch["task_ids"]).logits  # (B, L)
        allowed = self.mask.to(logits.device)[batch["task_ids"]]
        return logits.float().masked_fill(~allowed, float("-inf"))

    def loss(self, call: ModelCall, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed over the batch's examples; the loop divides by the global count (:meth:`count`)."""
        return nn.functional.cross_entropy(self._masked_logits(call, batch), batch["labels"], reduction="sum")

    @staticmethod
    def count(batch: dict[str, torch.Tensor]) -> int:
        return batch["labels"].numel()

    @torch.no_grad()
    def predict(self, call: ModelCall, batch: dict[str, torch.Tensor]) -> tuple[list[int], list[list[float]]]:
        """Per example: the label index within its task, and the probabilities over its task's labels."""
        probs = self._masked_logits(call, batch).softmax(-1)
        labels, distributions = [], []
        for row, task in zip(probs, batch["task_ids"].tolist(), strict=True):
            own = row[self.offsets[task] : self.offsets[task] + len(self.tasks[task].label_names)]
            labels.append(int(own.argmax()))
            distributions.append([round(float(p), 6) for p in own])
        return labels, distributions


class TextToTextFormat:
    name = "text2text"
    modalities: ClassVar[dict[str, str] | None] = None

    def __init__(self, tasks: Sequence[TaskInfo], *, encoder_decoder: bool) -> None:
        self.tasks, self.encoder_decoder = list(tasks), encoder_decoder

    def build_base(self, path: str, *, seed: int, loading: BaseLoading | None = None) -> nn.Module:
        """The language model; ``loading``: dtype, quantization and checkpointing of the frozen base."""
        return load_language_model(path, encoder_decoder=self.encoder_decoder, seed=seed, loading=loading)

    @staticmethod
    def head_modules(model: nn.Module) -> list[str]:
        return []  # the label words come out of the model's own vocabulary

    def prompt(self, task: int, text: str) -> str:
        info = self.tasks[task]
        return f"{info.name} ({' / '.join(info.label_names)}): {text}\nAnswer:"

    def prompt_ids(self, tokenizer: Any, task: int, text: str, max_tokens: int) -> list[int]:
        """Token ids of the prompt for ``text``, at most ``max_tokens`` of them.

        A long text is cut from its end, never the frame around it: cutting the whole prompt from its end (plain
        ``truncation=True``) would drop the ``Answer:`` cue, and the model would be asked for a label in the middle
        of an article.
        """
        if max_tokens < 1:
            raise UsageError(f"max_tokens={max_tokens}: a prompt needs at least 1 token.")
        ids = tokenizer(self.prompt(task, text))["input_ids"]
        if len(ids) <= max_tokens:
            return ids
        words = tokenizer(text, add_special_tokens=False)["input_ids"]
        keep = len(words)
        while len(ids) > max_tokens and keep > 0:  # a decoded cut can re-encode a token longer: shorten until it fits
            keep = max(0, keep - (len(ids) - max_tokens))
            ids = tokenizer(self.prompt(task, tokenizer.decode(words[:keep])))["input_ids"]
        return ids[max(0, len(ids) - max_tokens) :]  # a no-op unless the frame alone is too long: then cut at its start

    @staticmethod
    def _eos(tokenizer: Any) -> str:
        return tokenizer.eos_token or tokenizer.sep_token or ""

    def collate(self, items: Sequence[TaskExample], tokenizer: Any, max_length: int) -> dict[str, torch.Tensor]:
        targets = [f" {self.tasks[i.task].label_names[i.example.label]}{self._eos(tokenizer)}" for i in items]
        target_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in targets]
        prompt_ids = [
            self.prompt_ids(tokenizer, i.task, i.example.text, max(1, max_length - len(t)))
            for i, t in zip(items, target_ids, strict=True)
        ]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        if self.encoder_decoder:
            batch = pad_rows(prompt_ids, pad)
            batch["labels"] = pad_rows(target_ids, -100)["input_ids"]
        else:
            batch = pad_rows([p + t for p, t in zip(prompt_ids, target_ids, strict=True)], pad)
            targets_only = [[-100] * len(p) + t for p, t in zip(prompt_ids, target_ids, strict=True)]
            batch["labels"] = pad_rows(targets_only, -100)["input_ids"]
        batch["task_ids"] = torch.tensor([item.task for item in items])
        return batch

    def loss(self, call: ModelCall, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed over target tokens, so micro-batches and processes weigh every token equally (see :meth:`count`)."""
        inputs = {k: v for k, v in batch.items() if k != "task_ids"}
        logits, labels = call(inputs, batch["task_ids"]).logits.float(), batch["labels"]
        if not self.encoder_decoder:
            logits = _last_positions(logits, labels.shape[1])
            logits, labels = logits[:, :-1], labels[:, 1:]  # a decoder predicts token t+1 at position t
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        labels = batch["labels"] if self.encoder_decoder else batch["labels"][:, 1:]
        return int((labels != -100).sum())

    def generation_batch(
        self, items: Sequence[TaskExample], tokenizer: Any, max_length: int
    ) -> dict[str, torch.Tensor]:
        prompts = [self.prompt_ids(tokenizer, i.task, i.example.text, max_length) for i in items]
        batch = pad_rows(prompts, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0, left=True)
        batch["task_ids"] = torch.tensor([item.task for item in items])
        return batch

    def max_new_tokens(self, tokenizer: Any) -> int:
        lengths = [
            len(tokenizer(f" {label}", add_special_tokens=False)["input_ids"])
            for t in self.tasks
            for label in t.label_names
        ]
        return max(lengths) + 1

    def parse(self, task: int, generated: str) -> int:
        """Exact match (case- and space-insensitive) of the generated answer against the task's labels; -1 if none."""
        answer = generated.strip().split("\n")[0].strip().lower()
        names = [label.lower() for label in self.tasks[task].label_names]
        return names.index(answer) if answer in names else -1


def _last_positions(logits: torch.Tensor, length: int) -> torch.Tensor:
    """The logits of the batch's own ``length`` tokens: the last ones of a decoder's output.

    A method may prepend positions to the sequence the model reads (prompt tuning's soft tokens, ``(B, n + L, V)``);
    they come before the tokens, so the tokens' logits are the last ``L`` whatever was prepended. Aligning here, not
    in each method, keeps every method's labels as the batch made them.
    """
    if logits.shape[1] < length:
        raise ValueError(
            f"The model returned logits for {logits.shape[1]} positions, fewer than the batch's {length} tokens."
        )
    return logits[:, logits.shape[1] - length :]  # (B, L, V)


def pad_rows(sequences: Sequence[Sequence[int]], value: int, *, left: bool = False) -> dict[str, torch.Tensor]:
    """Token lists padded with ``value`` into ``input_ids`` / ``attention_mask``: on the right, or on the ``left``
    (for a decoder's prompts, so that it continues every row at its end)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):  # collation of a handful of rows, not a per-token hot path
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


FORMATS = ("auto", "classification", "text2text", "sft")  # sft: adalink.tasks.sft, wrapping text2text (loading.py)


def make_format(name: str, tasks: Sequence[TaskInfo], model_kind: str) -> ClassificationFormat | TextToTextFormat:
    """``auto``: classification for encoders, text-to-text for decoders and encoder-decoders. ``sft``: the text-to-text
    format that :class:`adalink.tasks.sft.SFTFormat` wraps (:func:`adalink.runs.loading.setup_model`)."""
    if name not in FORMATS:
        raise UsageError(f"--format {name!r} is invalid: expected one of {list(FORMATS)}.")
    if name == "auto":
        name = "classification" if model_kind == "encoder" else "text2text"
    if name == "classification":
        return ClassificationFormat(tasks)
    if model_kind == "encoder":
        raise UsageError(f"--format {name} needs a decoder or encoder-decoder model; this model is an encoder.")
    return TextToTextFormat(tasks, encoder_decoder=model_kind == "encoder-decoder")
