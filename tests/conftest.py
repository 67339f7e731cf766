import pytest

from tiny_models import TEXT_MODELS

pytest_plugins = ["ci_strict_skips", "pytester"]


@pytest.fixture(params=sorted(TEXT_MODELS))
def text_model_name(request) -> str:
    return request.param


def pytest_configure(config) -> None:
    # slow cells (a subprocess each, e.g. a SIGKILLed `adalink train`); CI runs them too: -m "not slow" skips them
    config.addinivalue_line("markers", "slow: slow test (subprocesses); run in CI, `-m 'not slow'` skips it locally")
