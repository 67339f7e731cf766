"""Run ids: unique per setting, and stable for the committed runs."""

from dataclasses import replace

from adalink.experiments import build, run_id


def test_run_ids_are_unique_per_setting():
    experiment = build("table3")
    ids = {run_id(spec, seed) for c in experiment.conditions for spec in c.specs for seed in (0, 1)}
    assert len(ids) == 4
    shared = build("rank-easyvqa").conditions[3].specs[0]  # r=64 of the rank sweep is Table 3's modality-specific run
    assert run_id(shared, 0) == run_id(experiment.conditions[0].specs[0], 0)
    table1 = build("table1").conditions[-1].specs[0]  # Table 1's AdaLink r=64 differs from it by its head's rate alone
    assert table1.head_lr is not None and table1 == replace(shared, head_lr=table1.head_lr)
    assert run_id(table1, 0) != run_id(shared, 0)
    assert run_id(table1, 0) == run_id(build("lr-easyvqa").conditions[-3].specs[0], 0)  # AdaLink at 1x: one run


def test_run_ids_of_committed_runs_do_not_change():
    # Fields added to TrainRun later (task_mixing) stay out of the id at their default: the committed results in
    # experiments/results/runs are found again instead of being made again.
    table5 = {c.label: c.specs for c in build("table5").conditions}
    assert run_id(table5["FT single-task"][0], 0) == "minilm-tweets-full-r16-200steps-seed0-ddd7d1e3"
    assert run_id(table5["FT multi-task"][0], 2) == "minilm-tweets+bbc-full-r16-200steps-seed2-5e686f74"
    equal = table5["FT multi-task, equal mixing"][0]
    assert equal.task_mixing == "equal" and "--task-mixing equal" in equal.command(0)
    assert run_id(equal, 0).startswith("minilm-tweets+bbc-full-equal-r16-200steps-seed0-")
    assert "--task-mixing" not in table5["FT multi-task"][0].command(0)
    ranks = {c.label: c.specs[0] for c in build("rank-easyvqa").conditions}
    assert run_id(ranks["r=64"], 1) == "easyvqa-vlm-easyvqa[yesno-shape]-adalink-r64-200steps-seed1-fdbf3088"
    # Tables 1/4 train the answer head at --head-lr since issue 28: new runs, not the ones made at each method's rate
    sweep = {c.label: c.specs[0] for c in build("lr-easyvqa").conditions}
    assert run_id(sweep["AdaLink lr 0.002 (1×)"], 1) != run_id(ranks["r=64"], 1)
    assert run_id(sweep["FT lr 5e-05 (1×)"], 0) != "easyvqa-vlm-easyvqa[yesno-shape]-full-r8-200steps-seed0-68313d8e"
    assert "--lr 0.00015 " in sweep["FT lr 0.00015 (3×)"].command(0)
