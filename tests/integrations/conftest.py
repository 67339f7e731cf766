import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every integration test on one torch thread (tests/conftest.py)."""


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """peft looks for a base model's config on the Hub when it saves; these tests never go online."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
