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
