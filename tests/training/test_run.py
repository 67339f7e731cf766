"""``TrainArgs.question_types``: the easy-VQA question-type filter of the training harness's task loading."""

import pytest

from adalink.training.run import TrainArgs, load_tasks


def test_question_types_filter_easyvqa_splits():
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    (data,) = load_tasks(TrainArgs(task="easyvqa", question_types="yesno-shape, shape"))
    for split in (data.train, data.validation, data.test):
        assert split and {e.question_type for e in split} == {"yesno-shape", "shape"}
    (everything,) = load_tasks(TrainArgs(task="easyvqa"))
    assert len(everything.test) > len(data.test)


def test_question_types_refused_for_text_tasks_and_unknown_types():
    with pytest.raises(ValueError, match="--question-types"):
        load_tasks(TrainArgs(task="tweets", question_types="yesno-shape"))
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    with pytest.raises(ValueError, match="question types"):
        load_tasks(TrainArgs(task="easyvqa", question_types="colour"))
