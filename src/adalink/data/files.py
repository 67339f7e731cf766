"""Text-classification tasks read from the user's own data files (CSV, JSON Lines, Parquet, saved datasets).

:func:`load_file_task` backs the training CLI's ``--train-file F [--eval-file G] --text-column T --label-column L``
and returns the same :class:`~adalink.data.text_tasks.TextClassificationData` as the packaged tasks.

Procedure:

1. **Read** each file with :func:`adalink.data.tables.read_table` (the Hugging Face ``datasets`` library; the
   format follows the extension: ``.csv``, ``.jsonl`` / ``.json-lines`` / ``.json`` holding JSON Lines,
   ``.parquet``, or a directory written by ``save_to_disk``; see :mod:`adalink.data.tables`). CSV values are read
   as strings, JSON values keep their type.

   An unsupported or missing file, a malformed line, bytes that are not UTF-8, a missing column, a text that is
   not a string, a row whose text or label is empty (or null), or a file without rows raises
   :class:`DataFileError`, whose message names the flag and file (``--train-file data.csv``), the row or line
   where relevant, what was expected and what was found. Problems are reported, never silently skipped.
2. **Labels.** Labels are strings with their ends stripped. JSON numbers and booleans are written as JSON spells
   them (``1`` -> ``"1"``, ``1.5`` -> ``"1.5"``, ``true`` -> ``"true"``), so a CSV and a JSONL copy of the same
   data agree; a JSON column mixing integers and decimals is read as decimals by ``datasets`` (``2`` -> ``"2.0"``).
   ``label_names`` are the distinct training labels sorted **as strings** (so ``"10"`` sorts before ``"2"``);
   ``Example.label`` indexes them. Eval-file labels that never occur in the training file are an error.
3. **Normalise and deduplicate** texts exactly like the packaged tasks (see :mod:`adalink.data.cleaning`):
   whitespace runs become one space and the ends are stripped (a text that is empty afterwards is an error);
   repeats with one label are kept once, and a text seen with different labels is dropped, all copies. The
   training and eval files are deduplicated separately; a text present in both is kept in both.
4. **Split** by the same stable SHA-256 key ``u`` in [0, 1) as the packaged tasks, so results do not depend on row
   order and are identical across runs and machines:

   * without an eval file, the training file is split 80/10/10 into train/validation/test exactly like the
     packaged tasks (``u < 0.8`` train, ``u < 0.9`` validation, else test);
   * with an eval file, every training example goes to ``train``, and the eval file is split 50/50:
     ``u < 0.5`` -> validation, else test.

   Each split is ordered by ``(u, text)``. Small files can leave a split empty; that is not an error.

Nothing is cached: files may change between calls. The returned object is immutable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cleaning import deduplicate, normalise_text, split_examples, split_held_out, split_key
from .tables import SUPPORTED_EXTENSIONS, DataFileError, MissingColumnError, read_table, row_location
from .text_tasks import TextClassificationData

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "DataFileError",
    "load_file_task",
]

_COLUMNS_HINT = "Choose the columns with text_column / label_column (--text-column / --label-column in the CLI)."


def _label_text(value: Any) -> str | None:
    """A label value as a string (JSON numbers and booleans as JSON spells them), or ``None`` if it is none."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _read_rows(path: Path, role: str, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """Read and validate ``(normalised_text, label)`` rows from a data file.

    Args:
        path: The data file (or ``save_to_disk`` directory).
        role: The CLI flag it came from (``--train-file`` / ``--eval-file``), for messages.
        text_column: Column holding the text.
        label_column: Column holding the label.

    Returns:
        One ``(text, label)`` pair per data row, in file order; texts are normalised, labels stripped.

    Raises:
        DataFileError: For any problem with the file; see the module docstring.
    """
    where = f"{role} {path}"
    try:
        table = read_table(path, columns=(text_column, label_column), role=role)
    except MissingColumnError as error:
        raise MissingColumnError(f"{error} {_COLUMNS_HINT}") from None
    rows = []
    for index, row in enumerate(table):
        raw_text, raw_label = row[text_column], row[label_column]
        if raw_text is not None and not isinstance(raw_text, str):
            raise DataFileError(
                f"{where}, {row_location(path, index)}: expected a string in text column {text_column!r}, "
                f"found {_shown(raw_text)}."
            )
        label = _label_text(raw_label)
        if raw_label is not None and label is None:
            raise DataFileError(
                f"{where}, {row_location(path, index)}: expected a string, number or boolean in label column "
                f"{label_column!r}, found {_shown(raw_label)}."
            )
        text, label = normalise_text(raw_text or ""), (label or "").strip()
        for value, kind, column in ((text, "text", text_column), (label, "label", label_column)):
            if not value:
                raise DataFileError(
                    f"{where}, {row_location(path, index)}: expected a non-empty {kind} in column {column!r}, "
                    "found none."
                )
        rows.append((text, label))
    if not rows:
        raise DataFileError(f"{where} has no examples: expected a header or first object and at least one data row.")
    return rows


def _shown(value: Any) -> str:
    """A wrong value, short, for a message."""
    try:
        return json.dumps(value)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


# File names that say which split a file is, not what it holds: such a file's task is named after its folder.
_SPLIT_STEMS = frozenset({"train", "training", "data", "dataset", "eval", "test", "validation", "valid", "dev", "all"})


def file_task_name(path: str | Path) -> str:
    """The task name of a data file: its stem (``data/reviews.csv`` -> ``"reviews"``), or its folder's name where
    the stem only names a split (``reviews/train.csv`` -> ``"reviews"``)."""
    path = Path(path).resolve()
    generic = path.stem.lower() in _SPLIT_STEMS or (path.suffix == "" and path.name.lower() in _SPLIT_STEMS)
    return path.parent.name if generic and path.parent.name else path.stem


def load_file_task(
    train_file: str | Path,
    eval_file: str | Path | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    name: str | None = None,
) -> TextClassificationData:
    """Build a text-classification task from a training data file and an optional eval file.

    Without ``eval_file`` the training file is split 80/10/10 into train/validation/test like the packaged tasks;
    with it, the whole training file is ``train`` and the eval file is split 50/50 into validation/test. Splits
    are hash-based: independent of row order and identical across runs. See the module docstring for details.

    Args:
        train_file: File with the training examples: ``.csv``, ``.jsonl`` / ``.json-lines`` / ``.json`` (JSON
            Lines), ``.parquet``, or a directory written by ``Dataset.save_to_disk`` (see
            :data:`adalink.data.tables.SUPPORTED_FORMATS`).
        eval_file: Optional file (any supported format) with held-out examples for validation and test.
        text_column: Column (CSV header field, JSON key, dataset column) holding the text, in both files.
        label_column: Column holding the label, in both files.
        name: Task name; defaults to :func:`file_task_name` of the training file.

    Returns:
        The task; ``label_names`` are the distinct training labels sorted as strings.

    Raises:
        DataFileError: If a file has an unsupported extension, does not exist, cannot be parsed, lacks a column,
            has a row with an empty text or label, or has no rows; if every training text is dropped as
            conflicting (likewise for the eval file); or if the eval file has labels the training file lacks.
    """
    train_path = Path(train_file)
    train_rows = _read_rows(train_path, "--train-file", text_column, label_column)
    label_names = tuple(sorted({label for _, label in train_rows}))
    index = {label: i for i, label in enumerate(label_names)}
    train_examples, _, _ = deduplicate((text, index[label]) for text, label in train_rows)
    if not train_examples:
        raise DataFileError(
            f"--train-file {train_path} has no examples left after deduplication: "
            "every text appears with conflicting labels."
        )
    if eval_file is None:
        train, validation, test = split_examples(train_examples)
    else:
        eval_path = Path(eval_file)
        eval_rows = _read_rows(eval_path, "--eval-file", text_column, label_column)
        unseen = sorted({label for _, label in eval_rows} - index.keys())
        if unseen:
            raise DataFileError(
                f"--eval-file {eval_path}: expected only labels that occur in the training file {train_path} "
                f"({', '.join(map(repr, label_names))}), found unseen labels {', '.join(map(repr, unseen))}."
            )
        eval_examples, _, _ = deduplicate((text, index[label]) for text, label in eval_rows)
        if not eval_examples:
            raise DataFileError(
                f"--eval-file {eval_path} has no examples left after deduplication: "
                "every text appears with conflicting labels."
            )
        train = tuple(sorted(train_examples, key=lambda example: (split_key(example.text), example.text)))
        validation, test = split_held_out(eval_examples)
    return TextClassificationData(name or file_task_name(train_path), label_names, train, validation, test)
