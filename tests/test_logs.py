"""``log_level``: raises loggers inside the context only, and restores them even when the body raises."""

import logging

import pytest

from adalink.logs import log_level


def test_raises_inside_the_context_and_restores_after_an_error():
    first, second = logging.getLogger("adalink.test.first"), logging.getLogger("adalink.test.second")
    first.setLevel(logging.INFO)
    with pytest.raises(RuntimeError), log_level([first.name, second.name], logging.ERROR):
        assert first.level == second.level == logging.ERROR
        raise RuntimeError
    assert (first.level, second.level) == (logging.INFO, logging.NOTSET)


def test_notset_leaves_the_levels_as_they_are():
    logger = logging.getLogger("adalink.test.third")
    logger.setLevel(logging.WARNING)
    with log_level([logger.name], logging.NOTSET):
        assert logger.level == logging.WARNING
