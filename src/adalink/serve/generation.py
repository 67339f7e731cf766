"""One ``generate`` call for a batch of rows with budgets of their own, and its tokens as they come.

A row keeps at most its own budget of new tokens and ends at its first end-of-sequence token: :func:`kept_tokens`
is that rule on a finished row, and :class:`RowStreamer` the same rule applied step by step while ``generate``
runs, so that a streamed row ends with exactly the tokens the finished row keeps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from transformers.generation.streamers import BaseStreamer

if TYPE_CHECKING:
    from transformers import GenerationConfig

__all__ = ["Completion", "RowStreamer", "Sampling", "TokenFeed", "eos_ids", "generation_config", "kept_tokens"]


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]
    finish_reason: str  # "stop" (end of sequence) or "length" (max_tokens reached)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None  # sampling only: the torch seed set before this batch's generate


# Called in the model thread with one row's kept tokens so far, and its Completion once the row has ended.
TokenFeed = Callable[[list[int], Completion | None], None]


def kept_tokens(row: list[int], budget: int, eos: set[int]) -> Completion:
    """What a finished row answers: its first ``budget`` new tokens, cut before the first end-of-sequence token."""
    row = row[:budget]
    stop = next((i for i, token in enumerate(row) if token in eos), None)
    return Completion(row, "length") if stop is None else Completion(row[:stop], "stop")


class RowStreamer(BaseStreamer):
    """A ``generate`` streamer for a whole batch: each row with a feed gets its kept tokens after every step.

    ``generate`` first puts the prompt (decoder) or the decoder's start token (encoder-decoder), then one token per
    row per step (rows that have ended get padding), then calls :meth:`end`.
    """

    def __init__(self, feeds: Sequence[TokenFeed | None], budgets: Sequence[int], eos: set[int]) -> None:
        self._feeds, self._budgets, self._eos = list(feeds), list(budgets), eos
        self._rows: list[list[int]] = [[] for _ in self._feeds]
        self._ended = [False] * len(self._feeds)
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for i, token in enumerate(value.reshape(len(self._feeds), -1)[:, -1].tolist()):  # (B,)
            if self._ended[i]:
                continue
            if token in self._eos:
                self._end(i, "stop")
                continue
            self._rows[i].append(token)
            if len(self._rows[i]) >= self._budgets[i]:
                self._end(i, "length")
            elif (feed := self._feeds[i]) is not None:
                feed(list(self._rows[i]), None)

    def end(self) -> None:
        for i, ended in enumerate(self._ended):
            if not ended:
                self._end(i, "length")

    def _end(self, i: int, reason: str) -> None:
        self._ended[i] = True
        if (feed := self._feeds[i]) is not None:
            feed(list(self._rows[i]), Completion(list(self._rows[i]), reason))


def generation_config(
    base: nn.Module, max_new_tokens: int, sampling: Sampling, pad: int, *, tokenizer_eos: int | None = None
) -> GenerationConfig:
    """The base's generation config for one batch; it stops at the model's EOS ids and at ``tokenizer_eos`` (the
    token an sft run learnt to end its responses with, ``adalink.tasks.sft.eos_id``), which a model's config
    does not always list."""
    config = cast("GenerationConfig", copy.deepcopy(base.generation_config))  # nn.Module types it Tensor | Module
    sample = sampling.temperature > 0
    config.update(
        max_new_tokens=max_new_tokens,
        min_new_tokens=None,
        do_sample=sample,
        num_beams=1,
        temperature=sampling.temperature if sample else None,
        top_p=sampling.top_p if sample else None,
        top_k=None,  # OpenAI semantics: nucleus sampling only
        pad_token_id=pad,
    )
    if config.eos_token_id is None:
        config.eos_token_id = getattr(base.config, "eos_token_id", None)
    stops = eos_ids(config.eos_token_id) | ({tokenizer_eos} if tokenizer_eos is not None else set())
    if stops:
        config.eos_token_id = sorted(stops) if len(stops) > 1 else next(iter(stops))
    return config


def eos_ids(value: int | list[int] | None) -> set[int]:
    if value is None:
        return set()
    return {value} if isinstance(value, int) else set(value)
