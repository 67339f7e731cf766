import pytest

from tiny_models import TEXT_MODELS

pytest_plugins = ["ci_strict_skips", "pytester"]


@pytest.fixture(params=sorted(TEXT_MODELS))
def text_model_name(request) -> str:
    return request.param
