"""The easy-VQA note reads the stage-1 VLM's zero-shot score from a committed file, never from a constant."""

from adalink.experiments import build
from adalink.experiments.report import STAGE1_FILE, markdown, read_stage1, stage1_summary
from adalink.io import write_json_atomic

STAGE1 = {
    "accuracy": {"color": 1.0, "shape": 0.93, "yesno-color": 0.828, "yesno-shape": 0.638, "all": 0.85},
    "eval_examples": 2000,
    "held_out_types": ["yesno-shape"],
}


def test_the_note_is_filled_from_the_recorded_stage1_metrics(tmp_path):
    assert read_stage1(tmp_path) is None
    assert "not recorded" in stage1_summary(None)
    write_json_atomic(tmp_path / STAGE1_FILE, STAGE1)
    summary = stage1_summary(read_stage1(tmp_path))
    assert summary == f"`yesno-shape` 63.8 on the first 500 test questions of each type (`{STAGE1_FILE}`)"
    section = markdown(build("table1"), {}, [], [0], read_stage1(tmp_path))
    assert f"Un-adapted stage-1 VLM (zero-shot on the held-out type): {summary}." in section
    assert "{stage1}" not in markdown(build("table5"), {}, [], [0])
