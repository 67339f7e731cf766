import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every run-export and loading test on one torch thread (tests/conftest.py)."""
