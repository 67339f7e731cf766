"""Random bytes and encodings in the CSV / JSONL / Parquet files ``adalink train --train-file`` reads
(:func:`adalink.data.load_file_task`, through ``datasets``): a task, or a ``DataFileError`` that names the file;
never another exception. Where the damage sits on one line, the error names that line too."""

from __future__ import annotations

import json

import pytest

from adalink.data import load_file_task
from adalink.data.files import DataFileError
from fuzz.strategies import JSON, st

hypothesis = pytest.importorskip("hypothesis")
given, settings, example = hypothesis.given, hypothesis.settings, hypothesis.example
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1252", "shift_jis"]
TEXT = st.text(max_size=30)  # any Unicode, surrogates aside (which files cannot hold as UTF-8)


def _load_or_refuse(path) -> None:
    try:
        data = load_file_task(path)
    except DataFileError as err:
        assert str(path) in str(err), err
        return
    assert data.label_names and data.train + data.validation + data.test


@st.composite
def csv_bytes(draw) -> bytes:
    rows = draw(st.lists(st.tuples(TEXT, TEXT), max_size=6))
    text = "text,label\n" + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{label}\n' for t, label in rows)
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


@st.composite
def jsonl_bytes(draw) -> bytes:
    rows = draw(st.lists(st.fixed_dictionaries({"text": TEXT | JSON, "label": TEXT | JSON}) | JSON, max_size=6))
    text = "".join(json.dumps(row, ensure_ascii=draw(st.booleans())) + "\n" for row in rows)
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


def _splice(draw, data: bytes) -> bytes:
    """Random bytes written over, into or instead of a part of ``data``."""
    junk = draw(st.binary(min_size=1, max_size=8))
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 8)))
    return data[:start] + junk + data[end:]


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".csv", ".jsonl", ".json"]))
def test_random_bytes_and_encodings_give_a_task_or_a_data_file_error(tmp_path, data, suffix):
    content = data.draw(csv_bytes() if suffix == ".csv" else jsonl_bytes())
    if data.draw(st.booleans()):
        content = _splice(data.draw, content)
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    _load_or_refuse(path)


@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".jsonl", ".json", ".parquet"]))
@example(content=b"text,label\n" + b"a" * 200_000 + b",b\n", suffix=".csv")  # over csv's field size limit
@example(content=b"text,label\na\x00b,c\n", suffix=".csv")
@example(content=b"PAR1" + b"\x00" * 20 + b"PAR1", suffix=".parquet")  # magic bytes around nothing
@example(content=b'[{"text": "a", "label": "b"}]', suffix=".json")  # a JSON array, not JSON Lines
def test_arbitrary_bytes_give_a_task_or_a_data_file_error(tmp_path, content, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    _load_or_refuse(path)


# Found by the fuzzing above (once strict xfails); the error must name the file and the line.
@pytest.mark.parametrize(
    ("content", "found"),
    [
        pytest.param(b'{"text": "\\ud800", "label": "a"}\n', "lone surrogate", id="lone-surrogate-escape"),
        pytest.param(b'{"text": "a", "label": ' + b"1" * 5000 + b"}\n", "4300 digits", id="integer-over-4300-digits"),
        pytest.param(
            b'{"text": "a", "label": "b"}\n' + b"[" * 100_000 + b"\n", "nesting too deep", id="deeply-nested-line"
        ),
    ],
)
def test_jsonl_lines_that_json_reads_but_a_task_cannot_hold(tmp_path, content, found):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as info:
        load_file_task(path)
    line = content.count(b"\n")
    assert str(path) in str(info.value) and f"line {line}:" in str(info.value) and found in str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_byte_that_is_not_utf8_is_reported_with_its_line(tmp_path, suffix):
    lines = ["text,label"] if suffix == ".csv" else []
    for i in range(6):
        text = f"good day {i}"
        lines.append(f"{text},positive" if suffix == ".csv" else json.dumps({"text": text, "label": "positive"}))
    content = "\n".join(lines).encode().replace(b"day 4", b"d\xe9y 4")  # latin-1 on the 5th data row
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content + b"\n")
    with pytest.raises(DataFileError) as info:
        load_file_task(path)
    line = 6 if suffix == ".csv" else 5
    assert str(path) in str(info.value) and f"line {line}" in str(info.value), str(info.value)
