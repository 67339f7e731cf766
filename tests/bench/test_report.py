"""BENCHMARKS.md from fake results: the standard profile is the headline while it is still running (partial
results say so), the quick profile follows as a smoke test; Pareto plots, verdicts, sweep and Table 5 beside ours."""

import pytest

from adalink import AdaLinkConfig
from adalink.bench.report import write_report
from adalink.bench.reproduce import REPRODUCTIONS
from bench import _fakes as fakes
from ci_strict_skips import requires

requires("matplotlib", reason="needs matplotlib (bench extra)")


def _quick() -> list[dict]:
    return [
        fakes.run(method, task, lr, 0, score, profile="quick", commit=None)
        for method, lr, score in (("adalink", 2e-3, 0.7), ("full", 5e-5, 0.8), ("lora", 1e-3, 0.75))
        for task in ("tweets", "bbc")
    ]


def _standard_partial() -> list[dict]:
    sweep = fakes.sweep_and_seeds
    return [
        *sweep("adalink", "tweets", {6e-4: 0.70, 2e-3: 0.75, 6e-3: 0.78}, {0: 0.80, 1: 0.82, 2: 0.84}),
        *sweep("full", "tweets", {1.5e-5: 0.85, 5e-5: 0.88, 1.5e-4: 0.86}, {0: 0.90, 1: 0.91, 2: 0.92}),
        fakes.run("lora", "tweets", 3e-4, 0, 0.83, validation=0.80),  # its sweep is not finished
        fakes.run("adalink", "bbc", 6e-3, 0, 0.6),
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory, fake_test_sets):
    root = tmp_path_factory.mktemp("report")
    out = fakes.write(root / "results", _quick() + _standard_partial())
    probes = [fakes.run("adalink", "tweets", 2e-2, 0, 0.85, validation=0.80)]  # beyond AdaLink's sweep top (6e-3)
    fakes.write(out / "probes" / "standard", probes)
    (out / "notes").mkdir()
    (out / "notes" / "standard.md").write_text("### Reading the standard table\n\nhand-written")
    with pytest.MonkeyPatch.context() as patch:  # the fakes sweep AdaLink around 2e-3: its default before issue 26
        patch.setattr(AdaLinkConfig, "default_lr", 2e-3)
        path = write_report(out, root / "BENCHMARKS.md")
    return {"root": root, "text": path.read_text()}


def test_standard_is_the_headline_and_says_how_much_is_finished(report):
    text = report["text"]
    assert text.index("## Headline comparison: profile `standard`") < text.index("## Smoke test: profile `quick`")
    planned = REPRODUCTIONS["standard"].plan().total_runs()
    assert f"**Partial results: 12 of {planned} planned runs are finished (0 failed); 2 of " in text
    assert "| minilm, tweets | adalink, full (2) | lora (sweep 1 of 3 rates) |" in text
    assert "| minilm, bbc | — | adalink (1 of 3 seeds) |" in text
    assert f"Reproduce: `{REPRODUCTIONS['standard'].command}`" in text
    assert "Runs made from: commit `0123456789ab` (clean tree): 12 run(s)." in text
    assert "not recorded (the run predates provenance): 6 run(s)" in text  # the quick fakes have no source
    assert "A smoke test, not a comparison" in text


def test_scores_verdicts_and_sweep(report):
    text = report["text"]
    assert "| full | 5e-05 | 3 | 91.00 ± 1.00 | +9.0 ± 3.9 (p = 0.003): **better** | — |" in text
    assert "| **adalink** | 6e-03 (highest swept) | 3 | 82.00 ± 2.00 | — | -9.0 ± 3.9 (p = 0.003): **worse** |" in text
    assert (
        "| lora | 3e-04 (provisional) | 1 | 83.00 | +1.0 (one seed: no spread) | -8.0 (one seed: no spread) |" in text
    )
    assert "Against full tuning: worse (1): adalink; one seed: no spread (1): lora." in text
    assert "| minilm | tweets | **adalink** | 70.00 at 6e-04 | 75.00 at 2e-03 | **78.00 at 6e-03** |" in text
    assert "| minilm | tweets | lora | **80.00 at 3e-04** | — | — |" in text
    # AdaLink's best validation rate is the top of its sweep (full tuning's is inside it; lora's sweep is unfinished)
    assert "1 of 2 finished sweeps chose their highest rate: **adalink** (minilm)." in text
    assert "| **adalink** | 6e-03 (highest swept) | 1 | 60.00 |" in text  # bbc re-uses tweets' rate and its doubt
    assert "| **adalink** | 78.00 at 6e-03 | 80.00 at 2e-02 | 85.00 | higher is better: +2.0 at 2e-02 |" in text
    assert text.count("| 3 | 82.00 ± 2.00 |") == 1  # the probe is not one of the seeds of the score table


def test_pareto_plots_frontiers_survey_and_notes(report):
    text, root = report["text"], report["root"]
    for name in ("parameters", "memory", "train_speed"):
        png = root / "results" / "plots" / f"pareto_standard_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.relative_to(root)})" in text
    assert "| parameters | minilm, tweets | **adalink**, lora, full |" in text
    assert "| memory | minilm, tweets | **adalink**, full |" in text
    assert "**Training memory (full tuning = 100)**" in text
    assert "| lora | 107.7 | 69.1 | 29.2 | 27.6 |" in text  # 700 MB / 650 MB beside T5's 14.3 / 20.7 GB
    assert "0 of 1 methods train in less memory than full tuning here" in text
    # the hand-written reading stays in its own file: the report links to it and does not copy it
    link = "**Reading the `standard` tables**: hand-written, in [results/notes/standard.md](results/notes/standard.md)"
    assert link in text and "hand-written\n" not in text and "### Reading the standard table" not in text
    assert text.index(link) < text.index("### Every run", text.index("## Headline"))


def test_quick_alone_is_a_smoke_test(tmp_path):
    out = fakes.write(tmp_path / "results", _quick())
    text = write_report(out, tmp_path / "BENCHMARKS.md").read_text()
    assert "## Smoke test: profile `quick`" in text and "## Headline" not in text
    assert "The comparison is the `standard` profile, not run yet." in text
    assert "| minilm | **adalink** | 70.00 |" in text
