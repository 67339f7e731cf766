"""Aggregation as the survey does it: best lr, mean ± std over seeds, variance mean over tasks, full = 100."""

import math

import pytest

from adalink.bench.aggregate import aggregate, load_results, variant_label
from adalink.bench.grid import BenchRun, default_method_config
from adalink.bench.train_memory import measurement_name, measurement_path, needs_measurement


def _run(method, task, lr, seed, score, tps, validation=None, memory=100, config=None):
    config = default_method_config(method) if config is None and method != "x" else config
    return {
        "status": "ok",
        "spec": {
            **{"profile": "quick", "model": "m", "task": task, "method": method, "lr": lr, "seed": seed},
            "method_config": config,
        },
        "score": score,
        "validation_score": validation,
        "metrics": {"trainable_params": 10, "head_params": 2, "total_params": 1000, "train_tokens_per_second": tps},
        "train_memory_bytes": memory,
        "memory_scope": "optimiser steps",
        "memory_protocol": 2,
        "infer_tokens_per_second": tps * 10,
        "infer_merged_tokens_per_second": None,
        "forgetting": {"kind": "embedding_drift", "value": 0.1},
    }


def test_best_lr_then_seeds_then_tasks():
    runs = [
        _run("adalink", "a", 1e-3, 0, 0.6, 200, validation=0.9),
        _run("adalink", "a", 1e-4, 0, 0.9, 200, validation=0.5),  # worse on validation: not chosen
        _run("adalink", "a", 1e-3, 1, 0.8, 200),
        _run("adalink", "b", 1e-3, 0, 0.5, 200),
        _run("full", "a", 5e-5, 0, 0.7, 100, memory=400),
        _run("full", "b", 5e-5, 0, 0.7, 100, memory=400),
        {"status": "error", "spec": {"profile": "quick", "model": "m", "task": "a", "method": "x", "lr": 1, "seed": 0}},
    ]
    cells, rows = aggregate(runs)
    cell = next(c for c in cells if c.method == "adalink" and c.task == "a")
    assert cell.lr == 1e-3 and cell.scores == [0.6, 0.8]
    row = next(r for r in rows if r.method == "adalink")
    assert row.stats["score"] == pytest.approx((0.7 + 0.5) / 2)
    assert row.stats["score_std"] == pytest.approx(math.sqrt((0.02 + 0.0) / 2))  # stdev(0.6, 0.8)^2 = 0.02
    assert row.relative["train_tps"] == pytest.approx(200) and row.relative["memory_bytes"] == pytest.approx(25)
    assert [r.method for r in rows] == ["full", "adalink"]  # full first, the failed method absent
    assert rows[0].relative["infer_merged_tps"] == pytest.approx(100)  # a plain model counts as merged


def test_a_run_of_another_config_is_a_row_of_its_own_named_by_what_differs():
    older = {**default_method_config("houlsby"), "bottleneck": 8, "dropout": 0.1}
    runs = [
        _run("houlsby", "a", 1e-3, 0, 0.9, 200, validation=0.9),
        _run("houlsby", "a", 3e-3, 0, 0.5, 200, validation=0.95, config=older),  # best validation, but not pooled
        _run("houlsby", "a", 3e-3, 0, 0.6, 200, validation=0.5, config={"gone_field": 1}),
    ]
    today_row, older_row, _ = sorted(aggregate(runs)[1], key=lambda r: r.method)
    assert today_row.method == "houlsby" and today_row.stats["score"] == pytest.approx(0.9)
    assert older_row.method == "houlsby (bottleneck 8, dropout 0.1)" and older_row.stats["score"] == pytest.approx(0.5)
    assert variant_label("houlsby", {"gone_field": 1}) == "houlsby (gone_field 1)"
    assert variant_label("lora", None) == "lora (config unrecorded)"
    adalink_before_boundaries = {k: v for k, v in default_method_config("adalink").items() if k != "boundaries"}
    assert variant_label("adalink", adalink_before_boundaries) == "adalink"  # a field added later does not count


def _spec(method, seed):
    return {
        **{"profile": "quick", "model": "m", "task": "a", "method": method, "lr": 1e-3, "head_lr": None, "seed": seed},
        **{"batch_size": 8, "grad_accum": 1, "max_length": 64, "max_steps": 4, "epochs": 1.0, "min_steps": 1},
        **{"max_eval": 16, "validate": False, "infer_batches": 1, "infer_batch_size": 8, "infer_rounds": 1},
        **{"generic_texts": 2, "threads": 1, "method_config": default_method_config(method)},
    }


def test_memory_is_training_only_its_own_or_measured_again_never_the_whole_runs(tmp_path):
    import json

    whole_run = {**_run("lora", "a", 1e-3, 0, 0.9, 200, memory=900), "memory_scope": None}
    whole_run["spec"] = _spec("lora", 0)
    unmeasured = {**_run("ia3", "a", 1e-3, 0, 0.8, 200, memory=900), "memory_scope": None, "spec": _spec("ia3", 0)}
    own = {**_run("full", "a", 1e-3, 0, 0.7, 100, memory=400), "spec": _spec("full", 0)}
    for document in (whole_run, unmeasured, own):
        document["spec_key"] = BenchRun(**document["spec"]).key()
        (tmp_path / f"{document['spec']['method']}.json").write_text(json.dumps(document))
    name = measurement_name(whole_run["spec"])
    measurement_path(tmp_path, name).parent.mkdir()
    measured = {"status": "ok", "memory_scope": "optimiser steps", "train_memory_bytes": 300, "gpu_peak_bytes": None}
    measurement_path(tmp_path, name).write_text(json.dumps(measured))
    rows = {r.method: r for r in aggregate(load_results(tmp_path))[1]}
    assert rows["lora"].stats["memory_bytes"] == 300  # measured again, not the whole run's 900
    assert rows["ia3"].stats["memory_bytes"] is None  # the whole run's peak is not shown as training memory
    assert rows["full"].stats["memory_bytes"] == 400 and rows["lora"].relative["memory_bytes"] == pytest.approx(75)


def _protocol_1(run):
    return {k: v for k, v in run.items() if k != "memory_protocol"}


def test_an_earlier_protocols_peak_of_a_routing_sensitive_method_is_not_shown_and_is_measured_again():
    earlier = _protocol_1(_run("mam", "a", 1e-3, 0, 0.9, 200, memory=1200))
    assert needs_measurement(earlier)  # one-task batches were routed per example before protocol 2
    assert next(r for r in aggregate([earlier])[1]).stats["memory_bytes"] is None
    assert not needs_measurement(_run("mam", "a", 1e-3, 0, 0.9, 200, memory=500))


def test_an_earlier_protocols_peak_of_a_method_the_routing_fix_left_alone_stands():
    earlier = _protocol_1(_run("lora", "a", 1e-3, 0, 0.9, 200, memory=300))
    assert not needs_measurement(earlier)
    assert next(r for r in aggregate([earlier])[1]).stats["memory_bytes"] == 300


def test_a_rows_memory_needs_every_task_measured():
    runs = [
        _run("lora", "a", 1e-3, 0, 0.9, 200, memory=300),
        {**_run("lora", "b", 1e-3, 0, 0.9, 200, memory=900), "memory_scope": None},  # a whole run's peak
        _run("full", "a", 1e-3, 0, 0.7, 100, memory=400),
        _run("full", "b", 1e-3, 0, 0.7, 100, memory=600),
    ]
    cells, rows = aggregate(runs)
    rows_by_method = {r.method: r for r in rows}
    assert rows_by_method["lora"].stats["memory_bytes"] is None  # task b has no training-only memory
    assert rows_by_method["full"].stats["memory_bytes"] == 500
    assert next(c for c in cells if c.method == "lora" and c.task == "a").stat("memory_bytes") == 300
