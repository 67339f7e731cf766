"""Run specs, result files and the choice of learning rate."""

import pytest

from adalink.bench.grid import BenchRun, best_lr, lr_slug, read_result, resolve_lr, result_path
from adalink.bench.profiles import PROFILES
from adalink.bench.runner import BenchPlan
from adalink.bench.worker import check_recipe
from adalink.io import write_json_atomic


def _spec(**changes) -> BenchRun:
    plan = BenchPlan(PROFILES["quick"], ["minilm"], ["tweets"], ["adalink"], [0], ["default"])
    spec = plan.spec("minilm", "tweets", "adalink", 2e-3, 0, False)
    return BenchRun(**{**spec.to_dict(), **changes})


def test_result_for_another_spec_is_not_reused(tmp_path):
    spec = _spec()
    write_json_atomic(result_path(tmp_path, spec), {"spec_key": spec.key(), "status": "ok"})
    assert read_result(tmp_path, spec)["status"] == "ok"
    changed = _spec(max_steps=spec.max_steps + 1)
    assert changed.run_id == spec.run_id and read_result(tmp_path, changed) is None


def test_every_rate_has_its_own_run_id():
    assert [lr_slug(lr) for lr in (2e-3, 6e-3, 5e-5, 1e-4)] == ["2e-03", "6e-03", "5e-05", "1e-04"]  # as before
    assert [lr_slug(lr) for lr in (1.5e-3, 1.5e-2, 2.66e-4)] == ["1.5e-03", "1.5e-02", "2.66e-04"]
    rates = [resolve_lr(f"{k}x", "adalink") for k in (0.3, 1, 3)] + [2e-3, 1e-2]
    assert len({_spec(lr=lr).run_id for lr in rates}) == len(rates)


def test_best_lr_uses_validation_and_prefers_the_smaller_rate_on_ties():
    def run(lr, validation, test):
        return {"status": "ok", "spec": {"lr": lr}, "validation_score": validation, "score": test}

    assert best_lr([run(1e-3, 0.7, 0.9), run(1e-4, 0.8, 0.1)]) == 1e-4
    assert best_lr([run(1e-3, 0.8, 0.9), run(1e-4, 0.8, 0.1)]) == 1e-4
    assert best_lr([{"status": "error", "spec": {"lr": 1e-3}}]) is None


def test_best_lr_refuses_to_choose_by_the_test_score():
    def run(lr, validation, test, name):
        return {"status": "ok", "spec": {"lr": lr}, "validation_score": validation, "score": test, "run_id": name}

    unscored = [run(1e-3, None, 0.9, "a__lr1e-03"), run(1e-4, 0.8, 0.1, "a__lr1e-04"), run(1e-5, None, 0.5, "x")]
    with pytest.raises(ValueError, match=r"^Cannot choose a learning rate: a__lr1e-03, x have no validation score"):
        best_lr(unscored)
    assert best_lr([run(1e-3, None, 0.9, "b")]) == 1e-3  # one rate: nothing to choose (a task re-using the rate)
    assert best_lr([run(1e-3, None, 0.9, "b"), run(1e-3, None, 0.8, "c")]) == 1e-3


def test_lr_tokens_and_plan_size():
    assert resolve_lr("1e-4", "adalink") == 1e-4
    assert resolve_lr("default", "full") == 5e-5
    assert resolve_lr("3x", "adalink") == pytest.approx(3 * resolve_lr("default", "adalink"))
    assert resolve_lr("0.3x", "full") == 1.5e-5
    assert resolve_lr("1x", "lora") == resolve_lr("default", "lora")
    for token in ("fast", "0x", "-1x", "infx", "nan", "x"):
        with pytest.raises(ValueError, match=f"--lrs entry '{token}'"):
            resolve_lr(token, "adalink")
    plan = BenchPlan(PROFILES["paper"], ["minilm"], ["tweets", "bbc"], ["adalink", "full"], [0, 1, 2], ["1e-3", "1e-4"])
    assert plan.total_runs() == 1 * 2 * 2 * (2 + 2)
    assert plan.spec("minilm", "tweets", "full", 1e-3, 0, True).grad_accum == 1  # microbatch 32 of batch 32


def test_the_worker_refuses_a_run_whose_config_is_not_the_planned_one():
    spec = _spec()
    trained = {**spec.method_config, "tasks": ["tweets"], "modules_to_save": ["classifier"]}
    check_recipe(spec, trained)  # the run's own tasks and heads are not part of the recipe
    with pytest.raises(RuntimeError, match=r"adalink trained with .*'rank': 4.*, but the bench planned .*'rank': 8"):
        check_recipe(spec, {**trained, "rank": 4})
    assert spec.run_id.endswith(f"__seed0__cfg{spec.config_tag}")
    assert _spec(method_config={**spec.method_config, "rank": 4}).run_id != spec.run_id


def test_a_field_added_after_the_runs_were_made_is_taken_at_its_default():
    spec = _spec()
    earlier = {k: v for k, v in spec.method_config.items() if k != "boundaries"}  # recorded before the output link
    trained = {**spec.method_config, "tasks": ["tweets"], "modules_to_save": ["classifier"]}
    check_recipe(_spec(method_config=earlier), trained)  # boundaries ["input"]: what those runs trained with
    with pytest.raises(RuntimeError, match="but the bench planned"):
        check_recipe(_spec(method_config=earlier), {**trained, "boundaries": ["input", "output"]})
