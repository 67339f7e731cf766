"""User data files: CSV / JSON Lines / Parquet / saved-dataset loading, validation errors and deterministic splits."""

import csv
import json
import random
from pathlib import Path

import pytest

from adalink.data.cleaning import deduplicate, split_examples, split_key
from adalink.data.files import SUPPORTED_EXTENSIONS, DataFileError, file_task_name, load_file_task

_SPLITS = ("train", "validation", "test")
_ROWS = [{"text": f"example  number {i}\n", "label": ("neg", "pos", "mid")[i % 3]} for i in range(200)]


def _write_csv(path: Path, rows: list[dict], *, bom: bool = False, fieldnames: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _splits(task) -> tuple:
    return tuple(getattr(task, split) for split in _SPLITS)


def test_csv_round_trip(tmp_path):
    task = load_file_task(_write_csv(tmp_path / "reviews.csv", _ROWS))
    assert task.name == "reviews"
    assert task.label_names == ("mid", "neg", "pos")
    examples = [example for split in _splits(task) for example in split]
    assert len(examples) == len(_ROWS)
    assert {(e.text, task.label_names[e.label]) for e in examples} == {
        (" ".join(row["text"].split()), row["label"]) for row in _ROWS
    }
    sizes = [len(split) for split in _splits(task)]
    assert sizes[0] > sizes[1] and sizes[0] > sizes[2] and sizes[1] > 0 and sizes[2] > 0


def test_csv_split_matches_packaged_procedure(tmp_path):
    task = load_file_task(_write_csv(tmp_path / "d.csv", _ROWS))
    index = {label: i for i, label in enumerate(task.label_names)}
    examples, _, _ = deduplicate((row["text"], index[row["label"]]) for row in _ROWS)
    assert _splits(task) == split_examples(examples)


def test_jsonl_round_trip_equals_csv(tmp_path):
    from_csv = load_file_task(_write_csv(tmp_path / "a.csv", _ROWS), name="x")
    from_jsonl = load_file_task(_write_jsonl(tmp_path / "a.jsonl", _ROWS), name="x")
    assert from_jsonl == from_csv


def test_json_lines_extension_and_blank_lines(tmp_path):
    path = tmp_path / "data.JSON-LINES"
    path.write_text('\n{"text": "a", "label": "x"}\n\n   \n{"text": "b", "label": "y"}\n', encoding="utf-8")
    task = load_file_task(path)
    assert task.name == tmp_path.name  # "data" names no task: its folder does
    assert sum(len(split) for split in _splits(task)) == 2


def test_bom_csv(tmp_path):
    task = load_file_task(_write_csv(tmp_path / "bom.csv", _ROWS, bom=True))
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert task == load_file_task(_write_csv(tmp_path / "bom.csv", _ROWS), name="bom")


def test_custom_columns_and_name(tmp_path):
    rows = [{"id": i, "review": row["text"], "stars": row["label"]} for i, row in enumerate(_ROWS)]
    task = load_file_task(_write_csv(tmp_path / "r.csv", rows), text_column="review", label_column="stars", name="mine")
    assert task.name == "mine"
    assert task == load_file_task(_write_csv(tmp_path / "s.csv", _ROWS), name="mine")


@pytest.mark.parametrize("missing", ["text", "label"])
def test_missing_column_lists_existing_columns_csv(tmp_path, missing):
    path = _write_csv(tmp_path / "d.csv", [{"sentence": "hi", "label": "a", "text": "x"}])
    other = "body" if missing == "text" else "category"
    kwargs = {"text_column": other} if missing == "text" else {"label_column": other}
    with pytest.raises(DataFileError) as info:
        load_file_task(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and repr(other) in message
    assert "'sentence', 'label', 'text'" in message


def test_missing_column_lists_existing_keys_jsonl(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"sentence": "hi", "label": "a"}])
    with pytest.raises(DataFileError, match=r"no column 'text'.*'sentence', 'label'"):
        load_file_task(path)


def test_missing_key_on_later_jsonl_line(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": "hi", "label": "a"}, {"text": "yo"}])
    with pytest.raises(DataFileError, match=r"line 2.*no column 'label'"):
        load_file_task(path)


@pytest.mark.parametrize("content", ["", "\n", "text,label\n"])
def test_empty_csv(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match="has no examples") as info:
        load_file_task(path)
    assert str(path) in str(info.value)


def test_empty_jsonl(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataFileError, match="has no examples"):
        load_file_task(path)


def test_blank_label_row_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,  \nfine,pos\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 2 \(line 3\).*empty label in column 'label'"):
        load_file_task(path)


def test_blank_text_and_short_row_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n \t ,pos\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 1 .*empty text in column 'text'"):
        load_file_task(path)
    path.write_text("label,text\npos\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 1 .*empty text"):
        load_file_task(path)


@pytest.mark.parametrize("label", ["", None])
def test_blank_label_jsonl(tmp_path, label):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": label}])
    with pytest.raises(DataFileError, match=r"line 2: .*empty label"):
        load_file_task(path)


def test_malformed_json_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": \n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"line 3: .*malformed JSON") as info:
        load_file_task(path)
    assert str(path) in str(info.value)


def test_non_object_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n["b", "y"]\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"line 2: expected a JSON object, found a JSON list"):
        load_file_task(path)


def test_wrong_json_types(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": 5, "label": "x"}])
    with pytest.raises(DataFileError, match=r"line 1: expected a string in text column"):
        load_file_task(path)
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": ["x"]}])
    with pytest.raises(DataFileError, match=r"line 1: expected a string, number or boolean"):
        load_file_task(path)


@pytest.mark.parametrize("filename", ["data.tsv", "data.txt", "data"])
def test_unknown_extension(tmp_path, filename):
    path = tmp_path / filename
    path.write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="unsupported file extension") as info:
        load_file_task(path)
    for extension in SUPPORTED_EXTENSIONS:
        assert extension in str(info.value)


@pytest.mark.parametrize("kind", ["json", "parquet", "saved", "dict"])
def test_other_formats_give_the_csv_task(tmp_path, kind):
    expected = load_file_task(_write_csv(tmp_path / "a.csv", _ROWS), name="x")
    path = tmp_path / f"a.{kind}"
    if kind == "json":
        _write_jsonl(path, _ROWS)
    else:
        datasets = pytest.importorskip("datasets")
        dataset = datasets.Dataset.from_list(_ROWS)
        if kind == "parquet":
            dataset.to_parquet(str(path))
        elif kind == "saved":
            dataset.save_to_disk(str(path))
        else:
            datasets.DatasetDict({"train": dataset, "test": dataset.select(range(3))}).save_to_disk(str(path))
    assert load_file_task(path, name="x") == expected
    assert load_file_task(_write_csv(tmp_path / "t.csv", _ROWS[:50]), path, name="x").validation


def test_non_string_text_in_parquet_names_the_row(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "d.parquet"
    datasets.Dataset.from_list([{"text": 1, "label": "a"}, {"text": 2, "label": "b"}]).to_parquet(str(path))
    with pytest.raises(DataFileError, match=r"--train-file .*d\.parquet, row 1: expected a string in text column"):
        load_file_task(path)


def test_mixed_integer_and_decimal_json_labels_are_decimals(tmp_path):
    # Deliberate change with datasets: such a column is read as floats (the old reader gave "2" and "1.5").
    task = load_file_task(
        _write_jsonl(tmp_path / "n.jsonl", [{"text": f"t{i}", "label": (2, 1.5)[i % 2]} for i in range(9)])
    )
    assert task.label_names == ("1.5", "2.0")


def test_eval_file_errors_name_the_eval_flag(tmp_path):
    train = _write_csv(tmp_path / "train.csv", _ROWS)
    evaluation = tmp_path / "eval.csv"
    evaluation.write_text("text,label\na,pos\nb,pos,extra\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"--eval-file .*eval\.csv, line 3: expected 2 fields like the header row"):
        load_file_task(train, evaluation)


def test_missing_column_hint_names_the_options(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"sentence": "hi", "label": "a"}])
    with pytest.raises(DataFileError, match=r"--text-column / --label-column"):
        load_file_task(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="found nothing"):
        load_file_task(tmp_path / "nope.csv")


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9,x\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="not UTF-8"):
        load_file_task(path)


def test_unseen_eval_labels(tmp_path):
    train = _write_csv(tmp_path / "train.csv", _ROWS)
    eval_rows = [{"text": "new one", "label": "other"}, {"text": "x", "label": "pos"}, {"text": "y", "label": "zz"}]
    evaluation = _write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    with pytest.raises(DataFileError, match=r"unseen labels 'other', 'zz'") as info:
        load_file_task(train, evaluation)
    assert str(evaluation) in str(info.value)


def test_numeric_and_boolean_labels_in_jsonl(tmp_path):
    rows = [{"text": f"t{i}", "label": (2, 10, 1.5, True)[i % 4]} for i in range(40)]
    task = load_file_task(_write_jsonl(tmp_path / "n.jsonl", rows))
    assert task.label_names == ("1.5", "10", "2", "true")  # sorted as strings
    as_csv = [{"text": row["text"], "label": json.dumps(row["label"])} for row in rows]
    assert task == load_file_task(_write_csv(tmp_path / "n.csv", as_csv))


def test_eval_file_split_50_50(tmp_path):
    train = _write_csv(tmp_path / "train.csv", _ROWS)
    eval_rows = [{"text": f"held out {i}", "label": ("neg", "pos")[i % 2]} for i in range(400)]
    task = load_file_task(train, _write_jsonl(tmp_path / "eval.jsonl", eval_rows))
    assert task.name == tmp_path.name  # "train" is a split, not a task: its folder names it
    assert len(task.train) == len(_ROWS)
    assert task.train == tuple(sorted(task.train, key=lambda e: (split_key(e.text), e.text)))
    assert len(task.validation) + len(task.test) == len(eval_rows)
    assert 150 < len(task.validation) < 250
    assert all(split_key(e.text) < 0.5 for e in task.validation)
    assert all(split_key(e.text) >= 0.5 for e in task.test)
    assert {e.text for e in task.validation + task.test} == {row["text"] for row in eval_rows}
    assert all(task.label_names[e.label] in {"neg", "pos"} for e in task.test)


def test_deduplication_like_packaged_tasks(tmp_path):
    rows = [
        {"text": "same", "label": "a"},
        {"text": " same ", "label": "a"},
        {"text": "clash", "label": "a"},
        {"text": "clash", "label": "b"},
        {"text": "solo", "label": "b"},
    ]
    task = load_file_task(_write_csv(tmp_path / "d.csv", rows))
    texts = sorted(e.text for split in _splits(task) for e in split)
    assert texts == ["same", "solo"]


def test_all_conflicting_is_an_error(tmp_path):
    rows = [{"text": "clash", "label": "a"}, {"text": "clash", "label": "b"}]
    with pytest.raises(DataFileError, match="conflicting labels"):
        load_file_task(_write_csv(tmp_path / "d.csv", rows))


@pytest.mark.parametrize("with_eval", [False, True])
def test_splits_deterministic_and_order_independent(tmp_path, with_eval):
    eval_rows = [{"text": f"held out {i}", "label": ("neg", "pos")[i % 2]} for i in range(100)]
    shuffled, shuffled_eval = list(_ROWS), list(eval_rows)
    random.Random(0).shuffle(shuffled)
    random.Random(1).shuffle(shuffled_eval)
    first = load_file_task(
        _write_csv(tmp_path / "a.csv", _ROWS),
        _write_csv(tmp_path / "ea.csv", eval_rows) if with_eval else None,
        name="t",
    )
    again = load_file_task(tmp_path / "a.csv", tmp_path / "ea.csv" if with_eval else None, name="t")
    reordered = load_file_task(
        _write_jsonl(tmp_path / "b.jsonl", shuffled),
        _write_jsonl(tmp_path / "eb.jsonl", shuffled_eval) if with_eval else None,
        name="t",
    )
    assert first == again == reordered
    assert len({e.text for split in _splits(first) for e in split}) == sum(len(s) for s in _splits(first))


def test_exported_from_package():
    import adalink.data as data

    assert data.load_file_task is load_file_task
    assert data.DataFileError is DataFileError
    assert issubclass(DataFileError, ValueError)


@pytest.mark.parametrize(
    ("path", "name"),
    [("data/reviews.csv", "reviews"), ("reviews/train.csv", "reviews"), ("tickets/Data.jsonl", "tickets"),
     ("chats.jsonl", "chats"), ("corpus/test", "corpus")],
)  # fmt: skip
def test_a_file_task_is_named_after_what_it_holds_not_its_split(tmp_path, path, name):
    assert file_task_name(tmp_path / path) == name
