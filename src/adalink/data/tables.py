"""Tables read from the user's own data files with the Hugging Face ``datasets`` library.

:func:`read_table` is the one reader behind ``--train-file`` / ``--eval-file``: the classification tasks of
:mod:`adalink.data.files` and the generative (SFT) data build on it. It returns plain rows (``dict`` per row) as
``datasets`` decodes them, after checking that the required columns exist.

Formats (:data:`SUPPORTED_FORMATS`; the extension is matched case-insensitively):

* ``.csv``: the header row names the columns; **every value is a string** (no type guessing, so ``"007"`` stays
  ``"007"`` and ``"NA"`` stays ``"NA"``); a missing trailing field is ``""``. UTF-8, a byte-order mark is tolerated;
  blank lines are skipped; a header that repeats a name is refused, a blank name is ``"Unnamed: N"`` (0-based).
* ``.jsonl`` / ``.json-lines`` / ``.json`` (the last only when it holds JSON Lines): one JSON object per line, UTF-8,
  blank lines skipped. Values keep their JSON shape (a chat ``messages`` list stays a list of dicts); a column
  mixing integers and decimals is read as decimals (``2`` -> ``2.0``), one mixing other types keeps each value as
  JSON read it. Every object must have every required key (``null`` is a value, a missing key an error).
* ``.parquet``: a Parquet file.
* a directory written by ``Dataset.save_to_disk``; of a ``DatasetDict``, its ``"train"`` split.

Problems raise :class:`DataFileError` naming the role (``--train-file``), the file, the line or row where relevant
(1-based), the column, what was expected and what was found. Line-based formats are pre-scanned in Python for what
the ``datasets`` / ``pyarrow`` errors do not locate (malformed JSON, bytes that are not UTF-8, missing keys); any
other error of theirs is translated, never passed through. :func:`row_location` names a row for the callers' own
messages (``"line 3"``, ``"row 2 (line 3)"``, ``"row 2"``).

``datasets`` runs offline, silently (no progress bars or log lines on stderr) and with a fresh temporary cache
per call, so a file that changed since the last call is read again and nothing is left in the user's cache.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AdalinkError, did_you_mean

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "DataFileError",
    "MissingColumnError",
    "read_table",
    "row_location",
    "table_columns",
]

_CSV = (".csv",)
_JSON_LINES = (".jsonl", ".json-lines", ".json")
_PARQUET = (".parquet",)
SUPPORTED_EXTENSIONS: tuple[str, ...] = _CSV + _JSON_LINES + _PARQUET
"""File extensions :func:`read_table` accepts (matched case-insensitively); directories are accepted too."""
SUPPORTED_FORMATS: tuple[str, ...] = (
    "CSV (.csv) with a header row; every value is read as text",
    "JSON Lines (.jsonl, .json-lines, or .json with one JSON object per line)",
    "Parquet (.parquet)",
    "a directory written by datasets' Dataset.save_to_disk (of a DatasetDict, its 'train' split)",
)
"""One phrase per accepted format, for help texts and error messages."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_PANDAS_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class DataFileError(AdalinkError, ValueError):
    """A data file cannot be read as asked.

    The message names the file, the row or line where relevant, what was expected and what was found.
    """


class MissingColumnError(DataFileError):
    """A required column is missing from a data file (see :class:`DataFileError`)."""


def read_table(path: str | Path, *, columns: Sequence[str], role: str = "--train-file") -> list[dict[str, Any]]:
    """Read every row of a data file (or ``save_to_disk`` directory) with ``datasets``.

    Args:
        path: A ``.csv``, ``.jsonl`` / ``.json-lines`` / ``.json`` (JSON Lines) or ``.parquet`` file, or a
            directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
        columns: Columns every row must have.
        role: How the user gave the path (a CLI flag such as ``--train-file``), named in error messages.

    Returns:
        One dict per row, in file order, with every column of the file, values as ``datasets`` decodes them. A
        file without rows (even without a header) gives ``[]``: whether that is an error is the caller's call.

    Raises:
        DataFileError: If the path is missing or of an unsupported kind, cannot be parsed, or lacks one of
            ``columns`` (then a :class:`MissingColumnError`); see the module docstring.
    """
    path = Path(path)
    where = f"{role} {path}"
    kind = _kind(path, where)
    if kind == "directory":
        return _read_saved(path, columns, where)
    if kind == "csv":
        header = _scan_csv(path, where)
        if header is None:
            return []
        _check_columns(where, header, columns, "the header row")
        features = {name: "string" for name in header}
        return _load("csv", path, where, features=features, column_names=header, header=0, na_filter=False)
    if kind == "json":
        count = _scan_json_lines(path, where, columns)
        rows = _load("json", path, where) if count else []
        if len(rows) != count:  # row_location counts non-blank lines: it must agree with datasets
            raise DataFileError(f"{where}: expected {count} rows, one per non-blank line; datasets read {len(rows)}.")
        return rows
    _check_columns(where, _parquet_columns(path, where), columns, "the file")
    return _load("parquet", path, where)


def table_columns(path: str | Path, *, role: str = "--train-file") -> list[str] | None:
    """The columns of a data file from its header row, first JSON object or Parquet schema alone: cheap enough to
    check options with before the file is read (:func:`read_table` reads it all).

    Returns:
        The column names, or ``None`` where they are not known without reading more: a file without data rows (which
        :func:`read_table` reports) or a ``save_to_disk`` directory.

    Raises:
        DataFileError: If the path is missing or of an unsupported kind, or its first row cannot be read.
    """
    path = Path(path)
    where = f"{role} {path}"
    kind = _kind(path, where)
    if kind == "csv":
        return _scan_csv(path, where)
    if kind == "json":
        return _first_object_keys(path, where)
    return _parquet_columns(path, where) if kind == "parquet" else None


def _first_object_keys(path: Path, where: str) -> list[str] | None:
    hint = " (a .json file must hold JSON Lines: one object per line)" if path.suffix.lower() == ".json" else ""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
            if raw.strip():
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _not_utf8(path, where) from None
                return list(_parse_json_line(line, f"{where}, line {number}", hint))
    return None


def row_location(path: str | Path, index: int) -> str:
    """Name row ``index`` (0-based, as in :func:`read_table`'s list) for a message: ``"line N"`` in JSON Lines,
    ``"row N (line M)"`` in CSV (``M``: the line where the row ends), ``"row N"`` otherwise (all 1-based).

    Line numbers are found by reading the file again, so call this only to report a problem."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_file() and suffix in _JSON_LINES:
            lines = (n for n, line in enumerate(_byte_lines(path), start=1) if line.strip())
            return f"line {next(_skip(lines, index))}"
        if path.is_file() and suffix in _CSV:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                records = (reader.line_num for record in reader if record)
                next(records)  # the header
                return f"row {index + 1} (line {next(_skip(records, index))})"
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration):
        pass
    return f"row {index + 1}"


def _skip(items: Iterator[int], count: int) -> Iterator[int]:
    for _ in range(count):
        next(items)
    return items


def _kind(path: Path, where: str) -> str:
    """``"csv"``, ``"json"``, ``"parquet"`` or ``"directory"``, or a :class:`DataFileError`."""
    if path.is_dir():
        return "directory"
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataFileError(
            f"{where}: unsupported file extension {path.suffix or '(none)'!r}; expected one of "
            f"{', '.join(SUPPORTED_EXTENSIONS)}, or a directory written by Dataset.save_to_disk."
        )
    if not path.is_file():
        raise DataFileError(f"{where}: expected a data file, found nothing at this path.")
    return "csv" if suffix in _CSV else "json" if suffix in _JSON_LINES else "parquet"


def _columns_text(columns: Sequence[str]) -> str:
    return ", ".join(repr(column) for column in columns) if columns else "(none)"


def _check_columns(where: str, found: Sequence[str], required: Sequence[str], part: str) -> None:
    for column in required:
        if column not in found:
            raise MissingColumnError(
                f"{where}: {part} has no column {column!r}; the columns are {_columns_text(found)}."
                + did_you_mean(column, found)
            )


def _byte_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).split(b"\n")


def _not_utf8(path: Path, where: str) -> DataFileError:
    """The error for a file that is not UTF-8, naming its first undecodable line."""
    for number, line in enumerate(_byte_lines(path), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            found = line[error.start : error.start + 4]
            return DataFileError(
                f"{where}, line {number}: expected UTF-8 text, found bytes that are not UTF-8 ({found!r} at byte "
                f"{error.start + 1} of the line); re-save the file as UTF-8."
            )
    return DataFileError(f"{where}: expected UTF-8 text, found bytes that are not UTF-8; re-save it as UTF-8.")


def _scan_csv(path: Path, where: str) -> list[str] | None:
    """The header of a CSV file, or ``None`` if it has no data row (or no header).

    The first data row is checked here: pandas would take a column more than the header has for an index."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            records = (record for record in reader if record)
            header, first = next(records, None), next(records, None)
            if header is None or first is None:
                return None
            if len(first) > len(header):
                raise DataFileError(
                    f"{where}, line {reader.line_num}: expected {len(header)} fields like the header row, "
                    f"found {len(first)}."
                )
    except UnicodeDecodeError:
        raise _not_utf8(path, where) from None
    except csv.Error:  # e.g. a field over csv's size limit: datasets (pandas) has none, let it read the file
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(io.StringIO(handle.readline())), None)
        if not header:
            return None
    header = [name or f"Unnamed: {number}" for number, name in enumerate(header)]  # blank names as pandas has them
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataFileError(
            f"{where}: expected distinct column names in the header row, found {_columns_text(repeated)} repeated."
        )
    return header


def _scan_json_lines(path: Path, where: str, columns: Sequence[str]) -> int:
    """Check every line of a JSON Lines file the way ``datasets`` cannot report; return the number of objects."""
    hint = " (a .json file must hold JSON Lines: one object per line)" if path.suffix.lower() == ".json" else ""
    count = 0
    for number, raw in enumerate(_byte_lines(path), start=1):
        if not raw.strip():
            continue
        at = f"{where}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8(path, where) from None
        record = _parse_json_line(line, at, hint)
        if _SURROGATE_ESCAPE.search(raw):
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise DataFileError(
                    f"{at}: expected text UTF-8 can hold, found a lone surrogate escape (such as \\ud800)."
                ) from None
        part = f"the first object (line {number})" if count == 0 else f"the object on line {number}"
        _check_columns(where, list(record), columns, part)
        count += 1
    return count


def _parse_json_line(line: str, at: str, hint: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataFileError(
            f"{at}: expected one JSON object per line{hint}, found malformed JSON "
            f"({error.msg} at column {error.colno})."
        ) from None
    except (ValueError, RecursionError) as error:  # an integer over 4300 digits; nesting deeper than Python's stack
        found = "nesting too deep to read" if isinstance(error, RecursionError) else str(error).split(";")[0]
        raise DataFileError(
            f"{at}: expected one JSON object per line, found JSON Python cannot read ({found})."
        ) from None
    if not isinstance(record, dict):
        kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
        raise DataFileError(f"{at}: expected a JSON object{hint}, found a JSON {kind}.")
    return record


def _read_saved(path: Path, columns: Sequence[str], where: str) -> list[dict[str, Any]]:
    """Rows of a ``save_to_disk`` directory (of a ``DatasetDict``: its ``"train"`` split)."""
    import datasets

    try:
        with _quiet_datasets():
            saved = datasets.load_from_disk(str(path), keep_in_memory=True)
    except FileNotFoundError:
        raise DataFileError(
            f"{where}: expected a data file or a directory written by Dataset.save_to_disk, found a directory "
            "without the dataset_info.json / dataset_dict.json that save_to_disk writes."
        ) from None
    except Exception as error:  # any datasets / pyarrow failure becomes our message
        raise _translated(where, error) from None
    if isinstance(saved, datasets.DatasetDict):
        if "train" not in saved:
            raise DataFileError(
                f"{where}: expected a DatasetDict with a 'train' split, found the splits {_columns_text(list(saved))}; "
                "save the split to use with Dataset.save_to_disk, or name it 'train'."
            )
        saved = saved["train"]
    _check_columns(where, saved.column_names, columns, "the dataset")
    return _with_label_names(saved)


def _with_label_names(saved: Any) -> list[dict[str, Any]]:
    """Rows with every ``ClassLabel`` column given as its names (``"positive"``), not as the stored integers."""
    import datasets

    rows = saved.to_list()
    for name, feature in saved.features.items():
        if isinstance(feature, datasets.ClassLabel):
            for row in rows:
                if row[name] is not None and row[name] >= 0:  # -1 is datasets' "no label"
                    row[name] = feature.int2str(row[name])
    return rows


def _parquet_columns(path: Path, where: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as error:  # not a Parquet file, or a damaged one
        raise _translated(where, error, "parquet") from None


def _load(builder: str, path: Path, where: str, features: dict[str, str] | None = None, **options: Any) -> list[dict]:
    """``datasets.load_dataset(builder)`` over one file, into memory, with a throw-away cache."""
    import datasets

    if features is not None:
        options["features"] = datasets.Features({name: datasets.Value(kind) for name, kind in features.items()})
    try:
        with tempfile.TemporaryDirectory(prefix="adalink-data-") as cache, _quiet_datasets():
            # data_files are glob patterns: a link with a plain name keeps "[", "*" in the user's name literal.
            source = Path(cache, f"data.{builder}")
            try:
                source.symlink_to(path.resolve())
            except OSError:  # no symlinks here (some Windows set-ups): a copy
                shutil.copyfile(path, source)
            table = datasets.load_dataset(
                builder,
                data_files=[str(source)],
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **options,
            )
            return _with_label_names(table)
    except Exception as error:  # any datasets / pandas / pyarrow failure: our message
        cause = _root_cause(error)
        if isinstance(cause, UnicodeDecodeError):
            raise _not_utf8(path, where) from None
        raise _translated(where, cause, builder) from None


def _root_cause(error: BaseException) -> BaseException:
    while True:
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None:
            return error
        error = inner


def _translated(where: str, error: BaseException, builder: str = "") -> DataFileError:
    """A :class:`DataFileError` for a failure inside ``datasets`` / ``pandas`` / ``pyarrow``."""
    message = " ".join(str(error).split()).removeprefix("Error tokenizing data. C error: ")
    fields = _PANDAS_FIELDS.search(message)
    if fields:
        expected_count, line, found_count = fields.groups()
        return DataFileError(
            f"{where}, line {line}: expected {expected_count} fields like the header row, found {found_count}."
        )
    expected = {"csv": "CSV", "json": "JSON Lines", "parquet": "a Parquet file"}.get(builder, "a saved dataset")
    found = message or type(error).__name__
    return DataFileError(f"{where}: expected {expected}, found a file that cannot be read as such ({found}).")


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No progress bars or log lines from ``datasets`` while reading; the previous settings come back after."""
    import datasets

    bars_were_enabled = datasets.is_progress_bar_enabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL + 10)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_were_enabled:
            datasets.enable_progress_bars()
