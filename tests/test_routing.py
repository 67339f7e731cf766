"""Router: the disabled switch, like the routing, belongs to the thread (context) that set it."""

import threading

import torch

from adalink import AdaLinkConfig, get_peft_model
from adalink.routing import Router
from tiny_models import build, perturb_adalink, text_batch

TIMEOUT = 30  # seconds; a broken interleaving fails instead of hanging


def _run(*targets) -> list:
    """Run each target in its own thread; returns their results, re-raising the first error."""
    results, errors = [None] * len(targets), []

    def wrap(i, target):
        try:
            results[i] = target()
        except BaseException as error:  # handed back to the test
            errors.append(error)

    threads = [threading.Thread(target=wrap, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    if errors:
        raise errors[0]
    return results


def test_disable_in_one_thread_leaves_another_enabled():
    router = Router(["a"])
    inside, checked = threading.Event(), threading.Event()

    def disabler():
        with router.disable():
            inside.set()
            assert checked.wait(TIMEOUT)
            return router.disabled

    def reader():
        assert inside.wait(TIMEOUT)
        seen = router.disabled
        checked.set()
        return seen

    assert _run(disabler, reader) == [True, False]
    assert router.disabled is False


def test_disable_nests_and_restores():
    router = Router(["a"])
    with router.disable():
        with router.disable():
            assert router.disabled
        assert router.disabled
    assert not router.disabled


def test_a_server_thread_inside_disable_adapter_does_not_change_another_threads_output():
    model = get_peft_model(build("gpt2"), AdaLinkConfig(rank=4)).eval()
    perturb_adalink(model)
    batch = text_batch(batch=2)
    adapted = model(**batch).logits
    with model.disable_adapter():
        base = model(**batch).logits
    assert not torch.allclose(adapted, base)
    # The base thread holds disable_adapter() open while the adapted thread runs its whole forward pass.
    inside, done = threading.Event(), threading.Event()

    def base_thread():
        with model.disable_adapter():
            inside.set()
            assert done.wait(TIMEOUT)
            return model(**batch).logits

    def adapted_thread():
        assert inside.wait(TIMEOUT)
        try:
            return model(**batch).logits
        finally:
            done.set()

    got_base, got_adapted = _run(base_thread, adapted_thread)
    torch.testing.assert_close(got_adapted, adapted, atol=0, rtol=0)
    torch.testing.assert_close(got_base, base, atol=0, rtol=0)


def test_a_tensor_of_one_task_takes_the_plain_path_and_a_mixed_one_is_kept_per_example():
    router = Router(["a", "b", "c"])
    assert router.resolve(torch.tensor([2, 2, 2]), batch_size=3) == 2  # no per-example copies of the weights
    mixed = router.resolve(torch.tensor([2, 0, 2]), batch_size=3)
    assert isinstance(mixed, torch.Tensor) and mixed.tolist() == [2, 0, 2]


def test_a_one_task_tensor_gives_the_same_outputs_as_its_name():
    model = get_peft_model(build("bert"), AdaLinkConfig(rank=4, tasks=["a", "b"])).eval()
    perturb_adalink(model)
    batch = text_batch(batch=3)
    with torch.no_grad():
        by_ids = model(**batch, task=torch.ones(3, dtype=torch.long)).logits
        torch.testing.assert_close(by_ids, model(**batch, task="b").logits, atol=0, rtol=0)
