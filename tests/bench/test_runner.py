"""The bench plan: the learning rate swept on one task is re-used on the others."""

from adalink.bench.grid import resolve_lr
from adalink.bench.profiles import PROFILES
from adalink.bench.runner import BenchPlan


def test_standard_profile_sweeps_on_tweets_and_reuses_the_rate_on_bbc(monkeypatch, tmp_path):
    import adalink.bench.runner as runner

    profile = PROFILES["standard"]
    plan = BenchPlan(profile, ["minilm"], ["bbc", "tweets"], ["adalink", "full"], [0, 1, 2], list(profile.lrs))
    assert plan.ordered_tasks() == [("tweets", True), ("bbc", False)]
    assert plan.total_runs() == 2 * (3 + 2) + 2 * 3
    alone = BenchPlan(profile, ["minilm"], ["bbc"], ["adalink"], [0, 1, 2], list(profile.lrs))
    assert alone.ordered_tasks() == [("bbc", True)] and alone.total_runs() == 3 + 2

    made = []
    low, mid, high = (resolve_lr(token, "adalink") for token in ("0.3x", "1x", "3x"))

    def fake_one(spec, out, progress, retry_failed, timeout_s):
        made.append((spec.task, spec.method, spec.lr, spec.seed, spec.validate))
        validation = {mid: 0.5, high: 0.9, low: 0.1}.get(spec.lr, 0.2)  # adalink is best at 3x its default
        return {"status": "ok", "spec": spec.to_dict(), "validation_score": validation, "score": 0.0}

    monkeypatch.setattr(runner, "_one", fake_one)
    runner.run_bench(plan, tmp_path)
    assert len(made) == plan.total_runs()
    adalink_bbc = [(lr, seed, validate) for task, m, lr, seed, validate in made if (task, m) == ("bbc", "adalink")]
    assert adalink_bbc == [(high, 0, False), (high, 1, False), (high, 2, False)]
    full_tweets = sorted(lr for task, m, lr, seed, _ in made if (task, m, seed) == ("tweets", "full", 0))
    assert full_tweets == [1.5e-5, 5e-5, 1.5e-4]
