"""Which methods chose a learning rate at the edge of their sweep (the report's doubt about under-tuning), and what
probes beyond the edge say."""

from adalink.bench.aggregate import Cell
from adalink.bench.edges import edges_text, sweep_edges
from bench import _fakes as fakes


def _cell(method: str, lr: float, sweep: dict[float, float | None], task: str = "tweets") -> Cell:
    return Cell("standard", "minilm", task, method, lr, runs=[], sweep=sweep)


def test_highest_and_lowest_rates_are_edges_inside_is_not():
    cells = [
        _cell("adalink", 6e-3, {6e-4: 0.70, 2e-3: 0.75, 6e-3: 0.78}),
        _cell("lora_all", 3e-4, {3e-4: 0.88, 1e-3: 0.86, 3e-3: 0.68}),
        _cell("full", 5e-5, {1.5e-5: 0.85, 5e-5: 0.88, 1.5e-4: 0.86}),
        _cell("adalink", 6e-3, {}, task="bbc"),  # re-uses the rate: no sweep of its own
    ]
    assert sweep_edges(cells) == {("minilm", "adalink"): "highest", ("minilm", "lora_all"): "lowest"}


def test_unfinished_or_failed_sweeps_are_not_judged():
    cells = [
        _cell("lora", 3e-4, {3e-4: 0.80}),  # one rate so far
        _cell("dora", 1e-3, {3e-4: 0.80, 1e-3: 0.86, 3e-3: None}),  # its top rate failed: 1x is not an edge choice
    ]
    assert sweep_edges(cells) == {}


def test_a_probe_beyond_the_edge_says_whether_the_edge_holds():
    cells = [
        _cell("adalink", 6e-3, {6e-4: 0.70, 2e-3: 0.75, 6e-3: 0.78}),
        _cell("bitfit", 3e-3, {3e-4: 0.70, 1e-3: 0.75, 3e-3: 0.79}),
    ]
    probes = [
        fakes.run("adalink", "tweets", 2e-2, 0, 0.77, validation=0.77),  # worse than its edge rate
        fakes.run("bitfit", "bbc", 1e-2, 0, 0.9, validation=0.9),  # another task than the sweep's: not compared
        fakes.run("adalink", "tweets", 6e-3, 0, 0.78, validation=0.78),  # the edge run itself, copied: not a probe
        fakes.run("bitfit", "tweets", 1e-2, 0, 0.8),  # no validation score (a one-rate run): not compared
    ]
    text = edges_text(sweep_edges(cells), cells, probes)
    assert "2 of 2 finished sweeps chose their highest rate" in text
    assert "| **adalink** | 78.00 at 6e-03 | 77.00 at 2e-02 | 77.00 | the edge holds |" in text
    assert "| bitfit |" not in text


def test_a_probe_below_a_lowest_edge_says_lower_is_better():
    cells = [_cell("lora", 3e-4, {3e-4: 0.70, 1e-3: 0.68, 3e-3: 0.68})]
    probes = [fakes.run("lora", "tweets", 1e-4, 0, 0.75, validation=0.74)]
    text = edges_text(sweep_edges(cells), cells, probes)
    assert "1 of 1 finished sweeps chose their lowest rate" in text
    assert "| lora | 70.00 at 3e-04 | 74.00 at 1e-04 | 75.00 | lower is better: +4.0 at 1e-04 |" in text
    assert "--lrs <edge>,<rate>" in text
