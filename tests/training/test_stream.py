from adalink.data import Example
from adalink.training.stream import MixedTaskStream


def _stream(batch=8, seed=0):
    sets = [[Example(f"a{i}", 0) for i in range(10)], [Example(f"b{i}", 1) for i in range(5)]]
    return MixedTaskStream(sets, seed=seed, global_batch_size=batch)


def test_batches_are_a_pure_function_of_seed_and_step():
    assert _stream().batch(7) == _stream().batch(7)
    assert _stream().batch(7) != _stream(seed=1).batch(7)


def test_every_example_once_per_epoch_and_tasks_are_mixed():
    stream = _stream(batch=5)
    epoch = [item for step in range(3) for item in stream.batch(step)]
    assert sorted(i.example.text for i in epoch) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(5)])
    assert {i.task for i in stream.batch(0) + stream.batch(1)} == {0, 1}


def test_process_shards_cover_the_global_batch():
    stream = _stream(batch=8)
    shards = [stream.batch(3, rank=r, world_size=2) for r in range(2)]
    assert sorted(x.example.text for s in shards for x in s) == sorted(x.example.text for x in stream.batch(3))


def _skewed(mixing, batch=16, seed=0, small=40, big=400):
    sets = [[Example(f"a{i}", 0) for i in range(big)], [Example(f"b{i}", 1) for i in range(small)]]
    return MixedTaskStream(sets, seed=seed, global_batch_size=batch, mixing=mixing)


def _tasks_drawn(stream, steps):
    return [item.task for step in range(steps) for item in stream.batch(step)]


def test_equal_and_sqrt_mixing_draw_tasks_at_their_rates():
    steps = 400  # 6,400 positions: crosses a block of drawn tasks
    equal = _tasks_drawn(_skewed("equal"), steps)
    sqrt = _tasks_drawn(_skewed("sqrt"), steps)
    proportional = _tasks_drawn(_skewed("proportional"), steps)
    assert abs(equal.count(1) / len(equal) - 0.5) < 0.03
    expected_sqrt = 40**0.5 / (40**0.5 + 400**0.5)  # 0.24
    assert abs(sqrt.count(1) / len(sqrt) - expected_sqrt) < 0.03
    assert abs(proportional.count(1) / len(proportional) - 40 / 440) < 0.01


def test_a_resampled_task_sees_each_example_once_per_epoch_across_blocks():
    stream = _skewed("equal", small=1000, big=1000)
    drawn = [item.example.text for step in range(500) for item in stream.batch(step) if item.task == 1]
    assert len(drawn) > 3000  # over three epochs of task 1, the first 4,096 positions and beyond
    for epoch in range(3):
        assert sorted(drawn[epoch * 1000 : (epoch + 1) * 1000]) == sorted(f"b{i}" for i in range(1000))
    assert drawn[:1000] != drawn[1000:2000]  # each epoch is its own permutation


def test_resampled_batches_are_a_pure_function_of_seed_and_step_and_shard_over_processes():
    late = 300  # in the second block: a fresh stream must rebuild the counts before it
    assert _skewed("sqrt").batch(late) == _skewed("sqrt").batch(late)
    assert _skewed("sqrt").batch(late) != _skewed("sqrt", seed=1).batch(late)
    stream = _skewed("equal")
    shards = [stream.batch(late, rank=r, world_size=4) for r in range(4)]
    assert sorted(x.example.text for s in shards for x in s) == sorted(x.example.text for x in stream.batch(late))


def test_unknown_mixing_and_an_empty_task_are_refused():
    import pytest

    with pytest.raises(ValueError, match="mixing 'temperature' is unknown"):
        _skewed("temperature")
    with pytest.raises(ValueError, match="task\\(s\\) \\[1\\] have none"):
        MixedTaskStream([[Example("a", 0)], []], seed=0, global_batch_size=2, mixing="equal")


def test_one_task_streams_the_same_whatever_the_mixing():
    sets = [[Example(f"a{i}", 0) for i in range(10)]]
    streams = [MixedTaskStream(sets, seed=3, global_batch_size=4, mixing=m) for m in ("proportional", "equal")]
    assert [streams[0].batch(s) for s in range(5)] == [streams[1].batch(s) for s in range(5)]
