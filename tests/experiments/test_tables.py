"""The paper's tables: every experiment builds, and the learning-rate sweep's judge."""

import pytest

from adalink.experiments import EXPERIMENTS, Scale, build, summarize


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
    assert ft.verdict == "not reproduced" and ft.reason.startswith("FT ahead of AdaLink by 5.0 ± 2.3 points")
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
