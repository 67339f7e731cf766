"""The streamed rule and the finished rule of a row agree: a row streamed step by step ends with exactly the tokens,
and the finish reason, that the finished row keeps (its budget, its first end-of-sequence token). Generation stops
at the model's EOS ids and at the tokenizer's, the one sft training ends responses with."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch
from transformers import GenerationConfig

from adalink.serve.generation import Completion, RowStreamer, Sampling, generation_config, kept_tokens

EOS = {2, 9}
PAD = 0


def _generate(rows: list[list[int]], budgets: list[int], streamer: RowStreamer) -> list[list[int]]:
    """What ``generate`` does with a batch of rows (the tokens the model would pick for each) and its streamer: it puts
    the prompt, then one token per row per step (padding after a row's EOS) until every row has met EOS or the
    largest budget is spent, then ends. Returns the generated rows."""
    streamer.put(torch.ones(len(rows), 5, dtype=torch.long))
    out: list[list[int]] = [[] for _ in rows]
    for step in range(max(budgets)):
        tokens = [PAD if any(t in EOS for t in out[i]) else row[step] for i, row in enumerate(rows)]
        for i, token in enumerate(tokens):
            out[i].append(token)
        streamer.put(torch.tensor(tokens))
        if all(any(t in EOS for t in row) for row in out):
            break
    streamer.end()
    return out


def test_a_streamed_row_ends_as_the_finished_row():
    rng = random.Random(0)
    for _ in range(300):
        rows = [[rng.choice([2, 9, *range(3, 15)]) for _ in range(12)] for _ in range(4)]
        budgets = [rng.randint(1, 12) for _ in rows]
        seen: list[list] = [[] for _ in rows]
        feeds = [lambda ids, final, into=into: into.append((ids, final)) for into in seen]
        feeds[3] = None  # rows without a feed are generated all the same
        generated = _generate(rows, budgets, RowStreamer(feeds, budgets, EOS))
        for i in range(3):
            expected = kept_tokens(generated[i], budgets[i], EOS)
            *steps, (ids, final) = seen[i]
            assert final == expected and ids == expected.token_ids, (rows[i], budgets[i])
            assert all(f is None and ids == expected.token_ids[: len(ids)] for ids, f in steps)  # growing prefixes
            assert [len(ids) for ids, _ in steps] == list(range(1, len(steps) + 1))


def test_kept_tokens():
    assert kept_tokens([5, 6, 2, 7], 10, EOS) == Completion([5, 6], "stop")
    assert kept_tokens([5, 6, 2, 7], 2, EOS) == Completion([5, 6], "length")  # the budget ends it before EOS
    assert kept_tokens([5, 6, 2], 3, EOS) == Completion([5, 6], "stop")
    assert kept_tokens([5, 6], 5, EOS) == Completion([5, 6], "length")  # generate stopped: every budget was spent


def test_generation_stops_at_the_model_eos_and_the_tokenizer_eos():
    def stops(model_eos, config_eos, tokenizer_eos):
        base = SimpleNamespace(
            generation_config=GenerationConfig(eos_token_id=model_eos), config=SimpleNamespace(eos_token_id=config_eos)
        )
        return generation_config(base, 4, Sampling(), PAD, tokenizer_eos=tokenizer_eos).eos_token_id

    assert stops(2, None, 7) == [2, 7]  # a model whose generation config names another end than its tokenizer's
    assert stops([2, 5], None, 5) == [2, 5]
    assert stops(2, None, 2) == 2 and stops(2, None, None) == 2
    assert stops(None, 3, 7) == [3, 7]  # no generation config EOS: the model config's
    assert stops(None, None, None) is None
