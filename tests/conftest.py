import os

import pytest

from tiny_models import TEXT_MODELS

pytest_plugins = ["ci_strict_skips", "pytester"]


@pytest.fixture(params=sorted(TEXT_MODELS))
def text_model_name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (far faster than on several when the cores are shared); module scope, so
    that module-scoped training runs use it too. Request it with ``pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config) -> None:
    # slow cells (a subprocess each, e.g. a SIGKILLed `adalink train`); CI runs them too: -m "not slow" skips them
    config.addinivalue_line("markers", "slow: slow test (subprocesses); run in CI, `-m 'not slow'` skips it locally")
    _share_the_cores_between_workers()


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (``-n``), give each worker its share of the cores: torch's default of one thread per core in
    every worker oversubscribes them (two workers on two cores spent twice the CPU time of a serial run). Subprocesses
    that tests start inherit the share through ``OMP_NUM_THREADS`` unless it is set already."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    import torch

    threads = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
