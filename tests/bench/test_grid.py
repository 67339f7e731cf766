"""Run specs, result files and the choice of learning rate."""

import pytest

from adalink.bench.grid import RunSpec, best_lr, read_result, resolve_lr, result_path, write_json
from adalink.bench.profiles import PROFILES
from adalink.bench.runner import BenchPlan


def _spec(**changes) -> RunSpec:
    plan = BenchPlan(PROFILES["quick"], ["minilm"], ["tweets"], ["adalink"], [0], ["default"])
    spec = plan.spec("minilm", "tweets", "adalink", 2e-3, 0, False)
    return RunSpec(**{**spec.to_dict(), **changes})


def test_result_for_another_spec_is_not_reused(tmp_path):
    spec = _spec()
    write_json(result_path(tmp_path, spec), {"spec_key": spec.key(), "status": "ok"})
    assert read_result(tmp_path, spec)["status"] == "ok"
    changed = _spec(max_steps=spec.max_steps + 1)
    assert changed.run_id == spec.run_id and read_result(tmp_path, changed) is None


def test_best_lr_uses_validation_and_prefers_the_smaller_rate_on_ties():
    def run(lr, validation, test):
        return {"status": "ok", "spec": {"lr": lr}, "validation_score": validation, "score": test}

    assert best_lr([run(1e-3, 0.7, 0.9), run(1e-4, 0.8, 0.1)]) == 1e-4
    assert best_lr([run(1e-3, 0.8, 0.9), run(1e-4, 0.8, 0.1)]) == 1e-4
    assert best_lr([{"status": "error", "spec": {"lr": 1e-3}}]) is None


def test_lr_tokens_and_plan_size():
    assert resolve_lr("1e-4", "adalink") == 1e-4
    assert resolve_lr("default", "full") == 5e-5
    assert resolve_lr("3x", "adalink") == 6e-3
    assert resolve_lr("0.3x", "full") == 1.5e-5
    assert resolve_lr("1x", "lora") == resolve_lr("default", "lora")
    for token in ("fast", "0x", "-1x", "infx", "nan", "x"):
        with pytest.raises(ValueError, match=f"--lrs entry '{token}'"):
            resolve_lr(token, "adalink")
    plan = BenchPlan(PROFILES["paper"], ["minilm"], ["tweets", "bbc"], ["adalink", "full"], [0, 1, 2], ["1e-3", "1e-4"])
    assert plan.total_runs() == 1 * 2 * 2 * (2 + 2)
    assert plan.spec("minilm", "tweets", "full", 1e-3, 0, True).grad_accum == 1  # microbatch 32 of batch 32


def test_standard_profile_sweeps_on_tweets_and_reuses_the_rate_on_bbc(monkeypatch, tmp_path):
    import adalink.bench.runner as runner

    profile = PROFILES["standard"]
    plan = BenchPlan(profile, ["minilm"], ["bbc", "tweets"], ["adalink", "full"], [0, 1, 2], list(profile.lrs))
    assert plan.ordered_tasks() == [("tweets", True), ("bbc", False)]
    assert plan.total_runs() == 2 * (3 + 2) + 2 * 3
    alone = BenchPlan(profile, ["minilm"], ["bbc"], ["adalink"], [0, 1, 2], list(profile.lrs))
    assert alone.ordered_tasks() == [("bbc", True)] and alone.total_runs() == 3 + 2

    made = []

    def fake_one(spec, out, progress, retry_failed, timeout_s):
        made.append((spec.task, spec.method, spec.lr, spec.seed, spec.validate))
        validation = {2e-3: 0.5, 6e-3: 0.9, 6e-4: 0.1}.get(spec.lr, 0.2)  # adalink is best at 3x its default
        return {"status": "ok", "spec": spec.to_dict(), "validation_score": validation, "score": 0.0}

    monkeypatch.setattr(runner, "_one", fake_one)
    runner.run_bench(plan, tmp_path)
    assert len(made) == plan.total_runs()
    adalink_bbc = [(lr, seed, validate) for task, m, lr, seed, validate in made if (task, m) == ("bbc", "adalink")]
    assert adalink_bbc == [(6e-3, 0, False), (6e-3, 1, False), (6e-3, 2, False)]
    full_tweets = sorted(lr for task, m, lr, seed, _ in made if (task, m, seed) == ("tweets", "full", 0))
    assert full_tweets == [1.5e-5, 5e-5, 1.5e-4]
