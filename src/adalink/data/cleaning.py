"""Labelled texts and the steps every text task shares: normalise, deduplicate, split by a stable hash.

The packaged tasks (:mod:`adalink.data.text_tasks`) and the user's own files (:mod:`adalink.data.files`) go through
the same steps, so a text is cleaned the same way and lands in the same split wherever it comes from:

- :func:`normalise_text`: whitespace runs become one space, the ends are stripped.
- :func:`deduplicate`: repeats with one label are kept once; a text seen with different labels is dropped, all copies.
- :func:`split_key`: the first 8 bytes of ``sha256(text.encode("utf-8"))`` read as a big-endian integer and divided
  by 2**64, a number ``u`` in [0, 1) independent of input order and of Python's salted ``hash()``.
- :func:`split_examples`: ``u < 0.8`` -> train, ``u < 0.9`` -> validation, else test; each split sorted by ``u``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Example", "deduplicate", "normalise_text", "split_examples", "split_held_out", "split_key"]

_TRAIN_END, _VALIDATION_END = 0.8, 0.9
_HELD_OUT_VALIDATION_END = 0.5  # a separate eval file: half validation, half test


@dataclass(frozen=True)
class Example:
    """One labelled text.

    Attributes:
        text: Whitespace-normalised, non-empty text.
        label: Index into the owning task's ``label_names``.
    """

    text: str
    label: int


def normalise_text(text: str) -> str:
    """Collapse whitespace runs into single spaces and strip the ends."""
    return " ".join(text.split())


def split_key(text: str) -> float:
    """Map a text to a stable number in [0, 1) from its SHA-256 digest."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def deduplicate(pairs: Iterable[tuple[str, int]]) -> tuple[list[Example], int, int]:
    """Normalise texts, drop empty ones, keep one copy per text and drop texts with conflicting labels.

    Args:
        pairs: ``(raw_text, label)`` pairs in any order.

    Returns:
        ``(examples, repeats_removed, conflicting_rows_dropped)``; ``examples`` is sorted by text.
    """
    labels_by_text: dict[str, list[int]] = {}
    for raw_text, label in pairs:
        text = normalise_text(raw_text)
        if text:
            labels_by_text.setdefault(text, []).append(label)
    examples, repeats, conflicting = [], 0, 0
    for text in sorted(labels_by_text):
        labels = labels_by_text[text]
        if len(set(labels)) > 1:
            conflicting += len(labels)
            continue
        repeats += len(labels) - 1
        examples.append(Example(text, labels[0]))
    return examples, repeats, conflicting


def split_examples(
    examples: Iterable[Example],
) -> tuple[tuple[Example, ...], tuple[Example, ...], tuple[Example, ...]]:
    """Assign examples to train/validation/test by :func:`split_key` and order each split by it.

    Args:
        examples: Deduplicated examples in any order.

    Returns:
        ``(train, validation, test)``, each sorted by ``(split key, text)``.
    """
    keyed = sorted(((split_key(example.text), example.text, example) for example in examples), key=lambda k: k[:2])
    splits: tuple[list[Example], list[Example], list[Example]] = ([], [], [])
    for key, _, example in keyed:
        index = 0 if key < _TRAIN_END else 1 if key < _VALIDATION_END else 2
        splits[index].append(example)
    return tuple(splits[0]), tuple(splits[1]), tuple(splits[2])


def split_held_out(examples: Iterable[Example]) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """Split a held-out set (the user's ``--eval-file``) 50/50 into validation/test by :func:`split_key`.

    Args:
        examples: Deduplicated examples in any order.

    Returns:
        ``(validation, test)``, each sorted by ``(split key, text)``.
    """
    keyed = sorted(((split_key(example.text), example.text, example) for example in examples), key=lambda k: k[:2])
    validation = tuple(example for key, _, example in keyed if key < _HELD_OUT_VALIDATION_END)
    test = tuple(example for key, _, example in keyed if key >= _HELD_OUT_VALIDATION_END)
    return validation, test
