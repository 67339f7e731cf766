"""``Selection``: which steps are scored, which weights are the best, when patience runs out, and that its state
survives a checkpoint (JSON) unchanged."""

import json

import torch

from adalink.training.selection import Selection


def _weights(value: float):
    return lambda: {"w": torch.tensor([value])}


def test_every_nth_step_and_the_last_are_scored():
    selection = Selection(every=4, patience=0, max_steps=10)
    assert [s for s in range(1, 11) if selection.due(s)] == [4, 8, 10]
    assert not any(Selection(every=0, patience=0, max_steps=10).due(s) for s in range(1, 11))


def test_the_best_mean_score_is_kept_and_a_tie_keeps_the_earlier_step():
    selection = Selection(every=1, patience=0, max_steps=10)
    assert selection.record(1, {"a": 0.5, "b": 0.7}, _weights(1))
    assert selection.record(2, {"a": 0.8, "b": 0.6}, _weights(2))  # mean 0.7 > 0.6
    assert not selection.record(3, {"a": 0.6, "b": 0.8}, _weights(3))  # mean 0.7 again: not better
    assert selection.best_step == 2 and selection.best_score == 0.7 and selection.best_weights["w"].item() == 2
    assert selection.evals_since_best == 1 and not selection.stopped
    assert [h["step"] for h in selection.history] == [1, 2, 3] and selection.history[0]["per_task"]["b"] == 0.7


def test_patience_stops_the_run_but_never_at_its_last_step():
    selection = Selection(every=1, patience=2, max_steps=5)
    selection.record(1, {"a": 0.5}, _weights(1))
    selection.record(2, {"a": 0.6}, _weights(2))
    selection.record(3, {"a": 0.6}, _weights(3))
    assert not selection.stopped
    selection.record(4, {"a": 0.1}, _weights(4))
    assert selection.stopped_at == 4 and selection.summary()["stopped_early"]
    last = Selection(every=1, patience=1, max_steps=2)
    last.record(1, {"a": 0.5}, _weights(1))
    last.record(2, {"a": 0.4}, _weights(2))
    assert not last.stopped  # the run ended anyway: it did not stop early


def test_the_state_survives_a_round_trip_through_json():
    selection = Selection(every=1, patience=3, max_steps=9)
    for step, score in enumerate([0.25, 0.75, 0.5], start=1):
        selection.record(step, {"a": score, "b": 1 / 3}, _weights(step))
    state = json.loads(json.dumps(selection.checkpoint_state()))
    restored = Selection(every=1, patience=3, max_steps=9)
    restored.restore(state, selection.best_weights)
    assert restored == selection
