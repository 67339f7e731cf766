"""Check every hand-written number of the manifest (docs/numbers.yaml) against its source (run from the repository
root): for each entry, read its sources (a JSON value, a regex over a text file, a cell of a generated markdown
table), format them as the entry declares, and check that the result is the entry's text and that its document still
contains that text. Prints one line per disagreement and a summary; exits 1 where any entry disagrees.

Manifest entries (a YAML list, read with ``yaml.safe_load``: nothing in the file runs):

    - doc: README.md                     # the file that quotes the number
      text: "0.818"                      # the text as it appears there (any run of whitespace reads as one space)
      value: "{v:.3f}"                   # a str.format template over the sources, giving the text
      source: {json: f.json, path: [metrics, score]}   # one source, named v; or sources: {name: source, ...}

A source is one of
    {json: FILE, path: [KEY_OR_INDEX, ...]}             a value of a JSON file (path [] = the whole document)
    {file: FILE, regex: PATTERN}                        the first group of PATTERN's first match in a text file
    {table: FILE, heading: TEXT, row: TEXT, column: TEXT}
        the cell in row ROW (its first cell, or its first cells where ROW is a list; ** and ` stripped) and column
        COLUMN of the first markdown table after the first line that contains HEADING
and may add ``regex: PATTERN`` (applied to a JSON string or a table cell: its first group), ``number: true`` (the
string read as a float), ``reciprocal: true`` (1 / the number), ``scale: K`` / ``divide: K`` (times / over K).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


class SourceError(Exception):
    """A source that cannot be read: a missing file, key, table, row or column, or a regex that does not match."""


def _squash(text: str) -> str:
    return " ".join(text.split())


def _json_value(root: Path, source: dict[str, Any]) -> Any:
    path = root / source["json"]
    if not path.is_file():
        raise SourceError(f"no file {source['json']}")
    value = json.loads(path.read_text())
    for key in source.get("path", []):
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise SourceError(f"{source['json']}: no {key!r} in {source.get('path')}") from None
    return value


def _table_rows(lines: list[str], heading: str) -> Iterator[list[str]]:
    """The rows (cells stripped) of the first table after the first line containing ``heading``."""
    start = next((i for i, line in enumerate(lines) if heading in line), None)
    if start is None:
        raise SourceError(f"no line contains {heading!r}")
    rows = lines[start + 1 :]
    while rows and not rows[0].lstrip().startswith("|"):
        rows = rows[1:]
    for line in rows:
        if not line.lstrip().startswith("|"):
            return
        yield [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_cell(root: Path, source: dict[str, Any]) -> str:
    path = root / source["table"]
    if not path.is_file():
        raise SourceError(f"no file {source['table']}")
    where = f"{source['table']}, table after {source['heading']!r}"
    header, *rows = list(_table_rows(path.read_text().splitlines(), source["heading"])) or [[]]
    if source["column"] not in header:
        raise SourceError(f"{where}: no column {source['column']!r} in {header}")
    column = header.index(source["column"])
    key = source["row"] if isinstance(source["row"], list) else [source["row"]]
    for row in rows:
        if [cell.strip("*` ") for cell in row[: len(key)]] == [str(k) for k in key]:
            return row[column]
    raise SourceError(f"{where}: no row {source['row']!r}")


def read_source(root: Path, source: dict[str, Any]) -> Any:
    """The value ``source`` names, after its ``regex``, ``number`` and ``scale``."""
    if "json" in source:
        value = _json_value(root, source)
    elif "table" in source:
        value = _table_cell(root, source)
    elif "file" in source:
        path = root / source["file"]
        if not path.is_file():
            raise SourceError(f"no file {source['file']}")
        value = path.read_text()
    else:
        raise SourceError(f"a source needs json, file or table: {source}")
    if "regex" in source:
        match = re.search(source["regex"], str(value), re.DOTALL)
        if match is None:
            raise SourceError(f"regex {source['regex']!r} does not match {str(value)[:80]!r}")
        value = match.group(1)
    if source.get("number"):
        value = float(str(value).replace(",", ""))
    if source.get("reciprocal"):
        value = 1 / value
    if "scale" in source:
        value = value * source["scale"]
    if "divide" in source:
        value = value / source["divide"]
    return value


def check_entry(root: Path, entry: dict[str, Any], docs: dict[str, str]) -> str | None:
    """None where the entry agrees with its sources and its document; else one line saying how it does not."""
    sources = entry.get("sources") or {"v": entry["source"]}
    where = f"{entry['doc']}: {entry['text']!r}"
    values: dict[str, Any] = {}
    try:
        for name, source in sources.items():
            values[name] = read_source(root, source)
        rendered = entry["value"].format(**values)
    except SourceError as error:
        return f"{where}: its source cannot be read: {error}"
    except (ValueError, TypeError, KeyError) as error:
        return f"{where}: {entry['value']!r} cannot format {values} (read so far): {error}"
    named = ", ".join(f"{n} = {v!r}" for n, v in values.items())
    if _squash(rendered) != _squash(entry["text"]):
        return f"{where}: the source gives {rendered!r} ({named}; {sources})"
    if entry["doc"] not in docs:
        path = root / entry["doc"]
        docs[entry["doc"]] = _squash(path.read_text()) if path.is_file() else ""
    if _squash(entry["text"]) not in docs[entry["doc"]]:
        return f"{where}: no longer in the document (its source gives {rendered!r})"
    return None


def check(root: Path, manifest: Path) -> tuple[int, list[str]]:
    """(entries checked, one line per disagreement)."""
    entries = yaml.safe_load(manifest.read_text()) or []
    docs: dict[str, str] = {}  # document -> its text, whitespace squashed, read once
    problems = [p for entry in entries if (p := check_entry(root, entry, docs)) is not None]
    return len(entries), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="docs/numbers.yaml", help="the manifest (default docs/numbers.yaml)")
    parser.add_argument("--root", default=".", help="the repository root the manifest's paths start from")
    opts = parser.parse_args(argv)
    count, problems = check(Path(opts.root), Path(opts.root) / opts.manifest)
    for problem in problems:
        print(problem)
    print(f"check_numbers: {count} numbers checked, {len(problems)} disagree with their source")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
