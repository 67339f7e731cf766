"""``TrainRun``: its ``TrainArgs`` options and the equivalent ``adalink train`` command."""

import json

from adalink.experiments import Scale, build
from adalink.training.args import TrainArgs


def test_overrides_become_method_config_and_the_command_reproduces_the_run():
    spec = build("table3", Scale()).conditions[1].specs[0]
    options = spec.train_options()
    assert json.loads(options["method_config"]) == {"unified": True}
    command = spec.command(seed=2)
    assert "--method-config '{\"unified\": true}'" in command and "--seed 2" in command
    args = TrainArgs(**options, seed=2)
    args.validate()
    assert args.method_options() == {"unified": True}
