"""Text-classification tasks read from the user's own CSV or JSON Lines files.

:func:`load_file_task` backs the training CLI's ``--train-file F [--eval-file G] --text-column T --label-column L``
and returns the same :class:`~adalink.data.text_tasks.TextClassificationData` as the packaged tasks.

Procedure:

1. **Read.** The format follows the extension (case-insensitive):

   * ``.csv``: :class:`csv.DictReader` over the file decoded as UTF-8 (a leading byte-order mark is tolerated);
     the header row names the columns.
   * ``.jsonl`` / ``.json-lines``: one JSON object per line, UTF-8 (a byte-order mark is tolerated); blank lines
     are skipped. The columns are the keys of the first object.

   Anything else, a missing column, a malformed line, a row whose text or label is empty, or a file without rows
   raises :class:`DataFileError`, whose message names the file, the row or line where relevant, what was expected
   and what was found. Problems are reported, never silently skipped.
2. **Labels.** Labels are strings with their ends stripped. JSON numbers and booleans are written as JSON spells
   them (``1`` -> ``"1"``, ``1.5`` -> ``"1.5"``, ``true`` -> ``"true"``), so a CSV and a JSONL copy of the same
   data agree. ``label_names`` are the distinct training labels sorted **as strings** (so ``"10"`` sorts before
   ``"2"``); ``Example.label`` indexes them. Eval-file labels that never occur in the training file are an error.
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

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from .cleaning import Example, deduplicate, normalise_text, split_examples, split_key
from .text_tasks import TextClassificationData

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "DataFileError",
    "load_file_task",
]

_CSV_EXTENSIONS = (".csv",)
_JSONL_EXTENSIONS = (".jsonl", ".json-lines")
SUPPORTED_EXTENSIONS: tuple[str, ...] = _CSV_EXTENSIONS + _JSONL_EXTENSIONS
"""File extensions :func:`load_file_task` accepts (matched case-insensitively)."""
_EVAL_VALIDATION_END = 0.5

# One data row: (where, for messages; raw text; raw label).
_Row = tuple[str, str, str]


class DataFileError(ValueError):
    """A data file cannot be read as a text-classification task.

    The message names the file, the row or line where relevant, what was expected and what was found.
    """


def _columns_text(columns: list[str]) -> str:
    """Render column names for an error message."""
    return ", ".join(repr(column) for column in columns) if columns else "(none)"


def _check_columns(path: Path, columns: list[str], required: tuple[str, ...], where: str) -> None:
    """Raise :class:`DataFileError` if a required column is missing from ``columns``."""
    for column in required:
        if column not in columns:
            raise DataFileError(
                f"{path}: {where} has no column {column!r}; the columns are {_columns_text(columns)}. "
                "Choose the columns with text_column / label_column (--text-column / --label-column in the CLI)."
            )


def _read_csv(path: Path, text_column: str, label_column: str) -> Iterator[_Row]:
    """Yield ``(where, text, label)`` for each CSV data row.

    Raises:
        DataFileError: On undecodable bytes, broken CSV syntax or missing columns.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            fieldnames = reader.fieldnames
            if not fieldnames:  # empty file (or a blank first line)
                return
            _check_columns(path, list(fieldnames), (text_column, label_column), "the header row")
            for number, row in enumerate(reader, start=1):
                where = f"row {number} (line {reader.line_num})"
                # Short rows leave trailing columns as None; they then fail the emptiness checks.
                yield where, row[text_column] or "", row[label_column] or ""
    except UnicodeDecodeError as error:
        raise DataFileError(
            f"{path}: expected UTF-8 text, found bytes that are not UTF-8; re-save it as UTF-8."
        ) from error
    except csv.Error as error:
        raise DataFileError(f"{path}: expected CSV, found a syntax error: {error}.") from error


def _json_label(value: object) -> str | None:
    """Turn a JSON label value into a string, or ``None`` if it is not a string, number or boolean."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _read_jsonl(path: Path, text_column: str, label_column: str) -> Iterator[_Row]:
    """Yield ``(where, text, label)`` for each JSON object line, skipping blank lines.

    Raises:
        DataFileError: On undecodable bytes, malformed JSON, a line that is not an object, missing keys, or a
            text or label of the wrong type.
    """
    columns: list[str] | None = None
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"line {line_number}"
                try:
                    record = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as error:
                    raise DataFileError(
                        f"{path}, {where}: expected one JSON object per line, found malformed JSON "
                        f"({error.msg} at column {error.colno})."
                    ) from error
                if not isinstance(record, dict):
                    raise DataFileError(
                        f"{path}, {where}: expected a JSON object, found a JSON {type(record).__name__}."
                    )
                keys = list(record)
                if columns is None:
                    columns = keys
                    _check_columns(path, columns, (text_column, label_column), f"the first object ({where})")
                else:
                    _check_columns(path, keys, (text_column, label_column), f"the object on {where}")
                text, label = record[text_column], record[label_column]
                if text is not None and not isinstance(text, str):
                    raise DataFileError(
                        f"{path}, {where}: expected a string in text column {text_column!r}, "
                        f"found {json.dumps(text)[:80]}."
                    )
                label_text = None if label is None else _json_label(label)
                if label is not None and label_text is None:
                    raise DataFileError(
                        f"{path}, {where}: expected a string, number or boolean in label column "
                        f"{label_column!r}, found {json.dumps(label)[:80]}."
                    )
                yield where, text or "", label_text or ""
    except UnicodeDecodeError as error:
        raise DataFileError(
            f"{path}: expected UTF-8 text, found bytes that are not UTF-8; re-save it as UTF-8."
        ) from error


def _read_rows(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """Read and validate ``(normalised_text, label)`` rows from a CSV or JSONL file.

    Args:
        path: The data file.
        text_column: Column (CSV header field or JSON key) holding the text.
        label_column: Column holding the label.

    Returns:
        One ``(text, label)`` pair per data row, in file order; texts are normalised, labels stripped.

    Raises:
        DataFileError: For any problem with the file; see the module docstring.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataFileError(
            f"{path}: unsupported file extension {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    if not path.is_file():
        found = "a directory" if path.is_dir() else "nothing"
        raise DataFileError(f"{path}: expected a data file, found {found} at this path.")
    reader = _read_csv if suffix in _CSV_EXTENSIONS else _read_jsonl
    rows = []
    for where, raw_text, raw_label in reader(path, text_column, label_column):
        text, label = normalise_text(raw_text), raw_label.strip()
        if not text:
            raise DataFileError(f"{path}, {where}: expected a non-empty text in column {text_column!r}, found none.")
        if not label:
            raise DataFileError(f"{path}, {where}: expected a non-empty label in column {label_column!r}, found none.")
        rows.append((text, label))
    if not rows:
        raise DataFileError(f"{path} has no examples: expected a header or first object and at least one data row.")
    return rows


def _split_eval(examples: list[Example]) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """Split eval examples 50/50 into validation/test by :func:`~adalink.data.cleaning.split_key`.

    Args:
        examples: Deduplicated examples in any order.

    Returns:
        ``(validation, test)``, each sorted by ``(split key, text)``.
    """
    keyed = sorted(((split_key(example.text), example.text, example) for example in examples), key=lambda k: k[:2])
    validation = tuple(example for key, _, example in keyed if key < _EVAL_VALIDATION_END)
    test = tuple(example for key, _, example in keyed if key >= _EVAL_VALIDATION_END)
    return validation, test


def load_file_task(
    train_file: str | Path,
    eval_file: str | Path | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    name: str | None = None,
) -> TextClassificationData:
    """Build a text-classification task from a CSV or JSON Lines training file and an optional eval file.

    Without ``eval_file`` the training file is split 80/10/10 into train/validation/test like the packaged tasks;
    with it, the whole training file is ``train`` and the eval file is split 50/50 into validation/test. Splits
    are hash-based: independent of row order and identical across runs. See the module docstring for details.

    Args:
        train_file: ``.csv``, ``.jsonl`` or ``.json-lines`` file with the training examples.
        eval_file: Optional file (any supported format) with held-out examples for validation and test.
        text_column: Column (CSV header field or JSON key) holding the text, in both files.
        label_column: Column holding the label, in both files.
        name: Task name; defaults to the training file's stem (``data/reviews.csv`` -> ``"reviews"``).

    Returns:
        The task; ``label_names`` are the distinct training labels sorted as strings.

    Raises:
        DataFileError: If a file has an unsupported extension, does not exist, cannot be parsed, lacks a column,
            has a row with an empty text or label, or has no rows; if every training text is dropped as
            conflicting (likewise for the eval file); or if the eval file has labels the training file lacks.
    """
    train_path = Path(train_file)
    train_rows = _read_rows(train_path, text_column, label_column)
    label_names = tuple(sorted({label for _, label in train_rows}))
    index = {label: i for i, label in enumerate(label_names)}
    train_examples, _, _ = deduplicate((text, index[label]) for text, label in train_rows)
    if not train_examples:
        raise DataFileError(
            f"{train_path} has no examples left after deduplication: every text appears with conflicting labels."
        )
    if eval_file is None:
        train, validation, test = split_examples(train_examples)
    else:
        eval_path = Path(eval_file)
        eval_rows = _read_rows(eval_path, text_column, label_column)
        unseen = sorted({label for _, label in eval_rows} - index.keys())
        if unseen:
            raise DataFileError(
                f"{eval_path}: expected only labels that occur in the training file {train_path} "
                f"({', '.join(map(repr, label_names))}), found unseen labels {', '.join(map(repr, unseen))}."
            )
        eval_examples, _, _ = deduplicate((text, index[label]) for text, label in eval_rows)
        if not eval_examples:
            raise DataFileError(
                f"{eval_path} has no examples left after deduplication: every text appears with conflicting labels."
            )
        train = tuple(sorted(train_examples, key=lambda example: (split_key(example.text), example.text)))
        validation, test = _split_eval(eval_examples)
    return TextClassificationData(name or train_path.stem, label_names, train, validation, test)
