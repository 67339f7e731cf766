"""User data files read through ``datasets``: every format, the column check, row locations and clear errors."""

import json
from pathlib import Path

import pytest

from adalink.data.tables import (
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    DataFileError,
    MissingColumnError,
    read_table,
    row_location,
    table_columns,
)

datasets = pytest.importorskip("datasets")

_ROWS = [
    {
        "text": "hello",
        "label": "a",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    },
    {"text": "world", "label": "b", "messages": [{"role": "user", "content": "bye"}]},
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _error(path, columns=("text",), role="--train-file") -> str:
    with pytest.raises(DataFileError) as info:
        read_table(path, columns=columns, role=role)
    assert str(path) in str(info.value) and role in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name", ["d.jsonl", "d.JSON-LINES", "d.json"])
def test_json_lines_keep_nested_values(tmp_path, name):
    assert read_table(_jsonl(tmp_path / name, _ROWS), columns=["text", "messages"]) == _ROWS


def test_csv_values_are_strings_as_written(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\n007,NA\n\n"two\nlines",null\nshort\n')
    assert read_table(path, columns=["text", "label"]) == [
        {"text": "007", "label": "NA"},
        {"text": "two\nlines", "label": "null"},
        {"text": "short", "label": ""},
    ]
    assert [row_location(path, i) for i in range(3)] == ["row 1 (line 2)", "row 2 (line 5)", "row 3 (line 6)"]


def test_parquet_and_saved_datasets_read_like_json_lines(tmp_path):
    dataset = datasets.Dataset.from_list(_ROWS)
    dataset.to_parquet(str(tmp_path / "d.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": dataset, "test": dataset.select([0])}).save_to_disk(str(tmp_path / "dict"))
    for path in (tmp_path / "d.parquet", tmp_path / "saved", tmp_path / "dict"):
        assert read_table(path, columns=["text", "messages"]) == _ROWS, path
        assert row_location(path, 1) == "row 2"


def test_class_label_columns_come_back_as_their_names(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    dataset = datasets.Dataset.from_dict({"text": ["bad", "good"], "label": [0, 1]}, features=features)
    dataset.save_to_disk(str(tmp_path / "saved"))
    dataset.to_parquet(str(tmp_path / "d.parquet"))
    for path in (tmp_path / "saved", tmp_path / "d.parquet"):
        rows = read_table(path, columns=["text", "label"])
        assert rows == [{"text": "bad", "label": "neg"}, {"text": "good", "label": "pos"}], path


def test_dataset_dict_without_train_split_names_its_splits(tmp_path):
    dataset = datasets.Dataset.from_list(_ROWS)
    datasets.DatasetDict({"validation": dataset, "test": dataset}).save_to_disk(str(tmp_path / "dict"))
    assert "'train' split, found the splits 'validation', 'test'" in _error(tmp_path / "dict")


def test_directory_not_written_by_save_to_disk(tmp_path):
    (tmp_path / "plain").mkdir()
    assert "Dataset.save_to_disk" in _error(tmp_path / "plain")


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet", "saved"])
def test_missing_column_names_it_and_the_columns_found(tmp_path, kind):
    rows = [{"sentence": "hi", "label": "a"}]
    path = tmp_path / f"d.{kind}"
    if kind == "csv":
        path.write_text("sentence,label\nhi,a\n", encoding="utf-8")
    elif kind == "jsonl":
        _jsonl(path, rows)
    elif kind == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    with pytest.raises(
        MissingColumnError, match=r"--eval-file .*no column 'text'; the columns are 'sentence', 'label'"
    ):
        read_table(path, columns=["label", "text"], role="--eval-file")


def test_missing_key_on_a_later_line(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"text": "b"}, {"label": "c"}])
    assert "the object on line 3 has no column 'text'" in _error(path)


@pytest.mark.parametrize("content", [b"", b"\n", b"text,label\n", b"text,label\n\n\n"])
def test_files_without_rows_give_no_rows(tmp_path, content):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    assert read_table(path, columns=["text"]) == []
    path = tmp_path / "d.jsonl"
    path.write_bytes(content.replace(b"text,label", b""))
    assert read_table(path, columns=["text"]) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_bytes_that_are_not_utf8_name_their_line(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    good = b"text\na\nb\n" if suffix == ".csv" else b'{"text": "a"}\n{"text": "b"}\n'
    path.write_bytes(good + good.splitlines()[-1].replace(b"b", b"\xe9") + b"\n")
    line = 4 if suffix == ".csv" else 3
    assert f"line {line}: expected UTF-8 text, found bytes that are not UTF-8" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"text": "a"}\n\n{"text": \n', "line 3: expected one JSON object per line, found malformed JSON"),
        (b'{"text": "a"}\n["b"]\n', "line 2: expected a JSON object, found a JSON list"),
        (b'{"text": "\\udc00"}\n', "line 1: expected text UTF-8 can hold, found a lone surrogate"),
        (b'{"text": "' + b"[" * 10 + b'"}\n' + b"[" * 100_000 + b"\n", "line 2: expected one JSON object per line"),
    ],
)
def test_json_lines_errors_name_the_line(tmp_path, content, expected):
    (tmp_path / "d.jsonl").write_bytes(content)
    assert expected in _error(tmp_path / "d.jsonl", columns=())


def test_a_json_document_is_not_json_lines(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(_ROWS, indent=2), encoding="utf-8")
    assert "a .json file must hold JSON Lines" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"text,label\na,b\nc,d,e\n", "line 3: expected 2 fields like the header row, found 3"),
        (b"text,label\na,b,c\nd,e,f\n", "line 2: expected 2 fields like the header row, found 3"),
        (b"text,text,label\na,b,c\n", "expected distinct column names in the header row, found 'text' repeated"),
        (b'text,label\n"open,b\n', "expected CSV"),
    ],
)
def test_csv_errors(tmp_path, content, expected):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    assert expected in _error(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"text,label\na,b\n")
    assert "expected a Parquet file" in _error(path)


@pytest.mark.parametrize("name", ["d.tsv", "d.txt", "d"])
def test_unsupported_extension_lists_the_supported_ones(tmp_path, name):
    (tmp_path / name).write_text("text\na\n", encoding="utf-8")
    message = _error(tmp_path / name)
    assert "unsupported file extension" in message
    assert all(extension in message for extension in SUPPORTED_EXTENSIONS)


def test_missing_path(tmp_path):
    assert "found nothing at this path" in _error(tmp_path / "nope.csv")


def test_file_names_are_not_patterns(tmp_path):
    literal = tmp_path / "d[1]*.csv"
    literal.write_text("text\nmine\n", encoding="utf-8")
    (tmp_path / "d1x.csv").write_text("text\nother\n", encoding="utf-8")
    assert read_table(literal, columns=["text"]) == [{"text": "mine"}]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_changed_file_is_read_again(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    for value in ("first", "other"):  # same size, written within the same second
        path.write_text(f"text\n{value}\n" if suffix == ".csv" else json.dumps({"text": value}) + "\n", "utf-8")
        assert read_table(path, columns=["text"]) == [{"text": value}]


def test_quiet_offline_and_no_cache_left(tmp_path, monkeypatch, capfd):
    cache = Path(datasets.config.HF_DATASETS_CACHE)
    before = sorted(cache.rglob("*")) if cache.exists() else []
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    datasets.enable_progress_bars()
    path = _jsonl(tmp_path / "d.jsonl", _ROWS)
    assert read_table(path, columns=["text"]) == _ROWS
    (tmp_path / "e.csv").write_text("text\na\nb,c\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="line 3"):  # raised inside datasets, which logs it as an error
        read_table(tmp_path / "e.csv", columns=["text"])
    assert capfd.readouterr().err == ""
    assert datasets.is_progress_bar_enabled()  # the caller's setting comes back
    assert (sorted(cache.rglob("*")) if cache.exists() else []) == before


def test_supported_formats_describe_every_extension():
    described = " ".join(SUPPORTED_FORMATS)
    assert all(extension in described for extension in SUPPORTED_EXTENSIONS)
    assert "save_to_disk" in described


def test_exported_from_package():
    import adalink.data as data
    from adalink.data import files

    assert data.read_table is read_table and data.SUPPORTED_FORMATS is SUPPORTED_FORMATS
    assert files.DataFileError is DataFileError and issubclass(MissingColumnError, DataFileError)


def test_table_columns_reads_the_first_row_only(tmp_path):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("\ufefftext,label\nhello,a\n" + "x" * 10 + "\n", encoding="utf-8")  # a later bad row: unread
    assert table_columns(csv_file) == ["text", "label"]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('\n{"prompt": "p", "response": "r"}\nnot json\n', encoding="utf-8")
    assert table_columns(jsonl) == ["prompt", "response"]
    (tmp_path / "empty.csv").write_text("text,label\n")
    assert table_columns(tmp_path / "empty.csv") is None
    with pytest.raises(DataFileError, match=r"--eval-file .*bad.jsonl, line 1: expected one JSON object per line"):
        (tmp_path / "bad.jsonl").write_text("{nope\n")
        table_columns(tmp_path / "bad.jsonl", role="--eval-file")


def test_a_missing_column_suggests_the_closest(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("txt,label\nhello,a\n")
    assert _error(path).endswith("the columns are 'txt', 'label'. Did you mean 'txt'?")
