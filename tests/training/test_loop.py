"""``train``'s refusals before any step; the loop itself runs end to end in tests/test_cli.py (train, resume after
a kill in test_resume.py, two processes in test_distributed.py, divergence in test_cli.py)."""

import pytest

from adalink.training.args import TrainArgs
from adalink.training.loop import train


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    args = TrainArgs(batch_size=6, grad_accum=4, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"--batch-size 6 must split evenly over 1 process\(es\) x --grad-accum 4"):
        train(args)


def test_invalid_arguments_are_refused_before_anything_is_loaded(tmp_path):
    with pytest.raises(ValueError, match="--max-steps 0 is invalid"):
        train(TrainArgs(max_steps=0, output_dir=str(tmp_path)))
