"""StepPeak: the optimiser steps' peak, with what came before a restart left out."""

import sys

import pytest
import torch

from adalink.process_memory import StepPeak, peak_rss_bytes, reset_peak_rss, rss_bytes

MB = 2**20
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not reset_peak_rss(),
    reason="resetting the peak needs Linux /proc/self/clear_refs",
)


def _touch(megabytes: int) -> torch.Tensor:
    block = torch.empty(megabytes * MB, dtype=torch.uint8)
    block.fill_(1)  # resident, not only reserved
    return block


@linux_only
def test_a_peak_before_the_restart_is_left_out_and_one_during_a_step_counts():
    loading = _touch(300)  # a loader's transient copy: resident, then freed before the steps
    loading_peak = peak_rss_bytes()
    assert loading_peak >= rss_bytes() >= 300 * MB
    del loading
    peak = StepPeak()
    peak.restart()
    assert peak.rss_bytes is None  # no step yet
    weights = _touch(20)  # alive through the steps
    peak.after_update()
    assert peak.rss_bytes is not None and peak.rss_bytes < loading_peak - 250 * MB  # the loader's peak is out
    first = peak.rss_bytes
    step = _touch(120)  # one step's activations, freed before the step ends
    del step
    peak.after_update()
    assert peak.rss_bytes >= first + 110 * MB  # the step's transient is inside the peak
    del weights


@linux_only
def test_what_happens_between_steps_after_a_restart_is_left_out():
    peak = StepPeak()
    peak.restart()
    peak.after_update()
    before = peak.rss_bytes
    validation = _touch(200)  # a validation pass between two steps
    del validation
    peak.restart()
    peak.after_update()
    assert peak.rss_bytes < before + 100 * MB
