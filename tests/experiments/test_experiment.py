"""``TrainRun``: its ``TrainArgs`` options and the equivalent ``adalink train`` command."""

import json

from adalink.experiments import Scale, build
from adalink.training.args import TrainArgs


def test_overrides_become_method_config_and_the_command_reproduces_the_run():
    spec = build("table3", Scale()).conditions[1].specs[0]
    options = spec.train_options()
    # AdaLink runs keep the recipe the committed runs were made with (kaiming init at 2e-3), whatever the defaults
    assert json.loads(options["method_config"]) == {"init": "kaiming_uniform", "unified": True}
    assert options["lr"] == 2e-3
    command = spec.command(seed=2)
    assert '--method-config \'{"init": "kaiming_uniform", "unified": true}\'' in command
    assert "--seed 2" in command and "--lr 0.002" in command
    args = TrainArgs(**options, seed=2)
    args.validate()
    assert args.tuning.method_options() == {"init": "kaiming_uniform", "unified": True}
