"""easy-VQA loader (tests that need the data are skipped where ``easy-vqa`` or Pillow is not installed)."""

import dataclasses
import random
import sys
from collections import Counter

import pytest

from adalink.data import easyvqa
from adalink.data.easyvqa import (
    COLOR_NAMES,
    QUESTION_TYPE_ANSWERS,
    QUESTION_TYPES,
    SHAPE_NAMES,
    VQAData,
    VQAExample,
    load_easyvqa,
    question_type,
)
from adalink.data.text_tasks import MissingDataPackageError

_SPLITS = ("train", "validation", "test")
_SIZES = {"train": 34_791, "validation": 3_784, "test": 9_673}  # measured with easy-vqa 1.0 (module docstring)
_IMAGES = {"train": 3_609, "validation": 391, "test": 1_000}


@pytest.fixture(scope="module")
def data() -> VQAData:
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    return load_easyvqa()


def _example(image_id: int, answer: int, kind: str = "color", question: str = "q?") -> VQAExample:
    return VQAExample(image_id, f"/images/{image_id}.png", question, answer, kind)


# Question types (no data needed).


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what color is the shape?", "color"),
        ("what is the color of the triangle?", "color"),
        ("What color is the circle? ", "color"),
        ("what shape is in the image?", "shape"),
        ("what is the blue shape?", "shape"),
        ("what shape does the image contain?", "shape"),
        ("is there a red shape?", "yesno-color"),
        ("does the image not contain a gray shape?", "yesno-color"),
        ("is no teal shape present?", "yesno-color"),
        ("is there a triangle in the image?", "yesno-shape"),
        ("does the image contain a rectangle?", "yesno-shape"),
        ("is no circle present?", "yesno-shape"),
    ],
)
def test_question_type_rule(question, expected):
    assert question_type(question) == expected


@pytest.mark.parametrize("question", ["how many shapes are there?", "", "whatever?"])
def test_question_type_rejects_other_questions(question):
    with pytest.raises(ValueError, match="question type"):
        question_type(question)


def test_question_type_answers_partition_the_answers():
    assert set(QUESTION_TYPE_ANSWERS) == set(QUESTION_TYPES)
    names = {name for answers in QUESTION_TYPE_ANSWERS.values() for name in answers}
    assert names == {*COLOR_NAMES, *SHAPE_NAMES, "no", "yes"}
    assert len(names) == 13
    assert not set(COLOR_NAMES) & set(SHAPE_NAMES)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "easy_vqa", None)  # makes `import easy_vqa` raise ImportError
    with pytest.raises(MissingDataPackageError, match="pip install easy-vqa"):
        easyvqa._easy_vqa()


# Split logic and baseline on toy examples (no data needed).


def test_validation_carving_is_by_image_and_ignores_order():
    examples = [_example(image_id, 0, question=f"q{k}?") for image_id in range(1_000) for k in range(3)]
    shuffled = examples.copy()
    random.Random(0).shuffle(shuffled)
    train, validation = easyvqa._carve_validation(examples)
    assert easyvqa._carve_validation(shuffled) == (train, validation)
    assert not {e.image_id for e in train} & {e.image_id for e in validation}
    assert 60 < len({e.image_id for e in validation}) < 140
    assert len(train) + len(validation) == len(examples)


def test_hash_key_is_stable_sha256():
    # First 8 bytes of sha256(b"hello") = 2cf24dba5fb0a30e; fixed across processes, unlike hash().
    assert easyvqa.split_key("hello") == 0x2CF24DBA5FB0A30E / 2**64  # the text tasks' key (adalink.data.cleaning)
    assert easyvqa._image_key(7) == easyvqa.split_key("easy-vqa/train/7")


def test_majority_baseline_uses_train_majority_and_question_type():
    toy = VQAData(
        answer_names=("a", "b", "c"),
        train=(_example(0, 1), _example(1, 1), _example(2, 0), _example(3, 2, "shape")),
        validation=(_example(4, 0),),
        test=(_example(5, 1), _example(6, 0), _example(7, 2, "shape"), _example(8, 0, "shape")),
    )
    assert toy.majority_baseline() == pytest.approx(0.25)
    assert toy.majority_baseline("color") == pytest.approx(0.5)
    assert toy.majority_baseline("shape") == pytest.approx(0.5)
    assert toy.majority_baseline(split="validation") == 0.0
    assert toy.majority_baseline("yesno-shape") == 0.0  # no such examples
    with pytest.raises(ValueError, match="question type"):
        toy.majority_baseline("colour")
    with pytest.raises(ValueError, match="split"):
        toy.majority_baseline(split="dev")


def test_with_question_types_keeps_only_those_types_in_order():
    toy = VQAData(
        answer_names=("a", "b", "c"),
        train=(_example(0, 1), _example(1, 2, "shape"), _example(2, 0), _example(3, 1, "yesno-shape")),
        validation=(_example(4, 0, "shape"),),
        test=(_example(5, 1, "yesno-shape"), _example(6, 0)),
    )
    only = toy.with_question_types(["color", "yesno-shape"])
    assert [e.image_id for e in only.train] == [0, 2, 3]
    assert only.validation == () and [e.image_id for e in only.test] == [5, 6]
    assert only.answer_names == toy.answer_names and only.name == toy.name
    assert toy.with_question_types(["shape"]).test == ()
    for bad in (["colour"], []):
        with pytest.raises(ValueError, match="question types"):
            toy.with_question_types(bad)


# The packaged data.


def test_sizes_as_documented(data):
    for split in _SPLITS:
        examples = getattr(data, split)
        assert len(examples) == _SIZES[split], split
        assert len({example.image_path for example in examples}) == _IMAGES[split], split


def test_answer_names_sorted_and_complete(data):
    import easy_vqa

    assert data.answer_names == tuple(sorted(easy_vqa.get_answers()))
    assert len(data.answer_names) == 13


def test_answers_in_range_and_consistent_with_question_type(data):
    for split in _SPLITS:
        for example in getattr(data, split):
            assert 0 <= example.answer < len(data.answer_names)
            assert data.answer_names[example.answer] in QUESTION_TYPE_ANSWERS[example.question_type]


def test_question_types_cover_every_example_in_every_split(data):
    for split in _SPLITS:
        examples = getattr(data, split)
        counts = Counter(example.question_type for example in examples)
        assert set(counts) == set(QUESTION_TYPES), split
        assert sum(counts.values()) == len(examples)
        for example in examples:
            assert example.question_type == question_type(example.question)


def test_no_image_in_two_splits(data):
    train_ids = {example.image_id for example in data.train}
    validation_ids = {example.image_id for example in data.validation}
    assert not train_ids & validation_ids
    assert train_ids | validation_ids == set(range(4_000))
    paths = [{example.image_path for example in getattr(data, split)} for split in _SPLITS]
    assert not paths[0] & paths[1] and not paths[0] & paths[2] and not paths[1] & paths[2]
    for example in data.validation:
        assert easyvqa._image_key(example.image_id) < 0.1


def test_loading_twice_gives_identical_splits(data):
    assert load_easyvqa() is data  # cached in-process
    rebuilt = easyvqa._load_full.__wrapped__()  # read and split afresh, bypassing the cache
    assert rebuilt is not data
    assert rebuilt == data


def test_splits_are_sorted_by_example_key(data):
    for split in _SPLITS:
        keys = [easyvqa._example_key(example) for example in getattr(data, split)]
        assert keys == sorted(keys), split


def test_limit_train_takes_a_prefix_and_keeps_other_splits(data):
    limited = load_easyvqa(limit_train=500)
    assert limited.train == data.train[:500]
    assert (limited.validation, limited.test, limited.answer_names) == (data.validation, data.test, data.answer_names)
    assert load_easyvqa(limit_train=0).train == ()
    assert load_easyvqa(limit_train=10**9) is data
    with pytest.raises(ValueError, match="limit_train"):
        load_easyvqa(limit_train=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limited.train = ()  # type: ignore[misc]


def test_majority_baseline_as_documented(data):
    assert data.answer_names[Counter(e.answer for e in data.train).most_common(1)[0][0]] == "yes"
    assert data.majority_baseline() == pytest.approx(0.3733, abs=1e-4)
    for kind in QUESTION_TYPES:
        assert 0.0 < data.majority_baseline(kind) < 0.6
