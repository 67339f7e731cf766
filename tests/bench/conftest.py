import importlib

import pytest

FAKE_TEST_EXAMPLES = 10_000  # every fake run is scored on this many test examples (a score is k / 10,000)


@pytest.fixture(scope="module")
def fake_test_sets():
    """The fake runs' test sets: each task scores ``FAKE_TEST_EXAMPLES`` examples (the packaged splits are not read,
    so any fake score with up to 4 decimals is a whole number of examples)."""
    with pytest.MonkeyPatch.context() as patch:
        aggregate = importlib.import_module("adalink.bench.aggregate")  # the package exports a function of that name
        patch.setattr(aggregate, "scored_examples", lambda task, max_eval, question_types=None: FAKE_TEST_EXAMPLES)
        yield FAKE_TEST_EXAMPLES
