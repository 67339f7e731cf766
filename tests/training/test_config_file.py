"""``adalink train --config``: a YAML file of ``TrainArgs`` fields, checked per type, overridden by the flags given;
each run's ``config.yaml`` runs it again to the same adapter, byte for byte."""

import argparse
import json
from dataclasses import replace

import pytest

from adalink.cli import main
from adalink.options import add_dataclass_options
from adalink.training.args import TrainArgs
from adalink.training.config_file import read_config, resolve_args, write_config
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, TrainArgs)
    return parser.parse_args(argv)


def _file(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_values_take_their_fields_types(tmp_path):
    text = (
        "max_steps: 40\nlr: 1e-3\ndropout: 0\nresume: true\nhead_lr: ~\nmax_eval:\ntask: bbc\nmixed_precision: 'no'\n"
    )
    options = read_config(_file(tmp_path, text))
    assert options == {
        "max_steps": 40,
        "lr": 0.001,  # YAML 1.1 reads 1e-3 as a string; a float field takes it as the number it is
        "dropout": 0.0,
        "resume": True,
        "head_lr": None,
        "max_eval": None,
        "task": "bbc",
        "mixed_precision": "no",
    }
    assert type(options["dropout"]) is float
    assert read_config(_file(tmp_path, "")) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_steps: abc", "run.yaml: max_steps: expected an integer, found 'abc' (str)"),
        ("max_steps: 3.0", "run.yaml: max_steps: expected an integer, found 3.0 (float)"),
        ("max_steps: true", "run.yaml: max_steps: expected an integer, found True (bool)"),
        ("max_eval: ten", "run.yaml: max_eval: expected an integer or null, found 'ten' (str)"),
        ("lr: fast", "run.yaml: lr: expected a number or null, found 'fast' (str)"),
        ("resume: 1", "run.yaml: resume: expected true or false, found 1 (int)"),
        ("task: ~", "run.yaml: task: expected a string, found None (NoneType)"),
        ("mixed_precision: no", "found False (bool) (YAML reads an unquoted yes/no/on/off as a bool: quote it)"),
        ("method_config: {unified: true}", "method_config: expected a string or null, found {'unified': True} (dict)"),
        ("max_step: 3", "run.yaml: max_step: not an option of adalink train; did you mean max_steps?"),
        ("config: other.yaml", "run.yaml: config: not an option of adalink train"),
        ("- max_steps: 3", "run.yaml: expected a mapping of options"),
        ("max_steps: [3", "run.yaml: not valid YAML"),
        ("a: !!python/object/apply:os.system ['true']", "run.yaml: not valid YAML"),  # safe_load builds no objects
    ],
)
def test_bad_files_are_refused_naming_the_key_the_value_and_what_was_expected(tmp_path, text, message):
    with pytest.raises(ValueError) as info:
        read_config(_file(tmp_path, text))
    assert message in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--config .*nope\.yaml: no such file"):
        read_config(tmp_path / "nope.yaml")


def test_flags_given_override_the_file_even_at_their_default_values(tmp_path):
    path = _file(tmp_path, "max_steps: 5\nrank: 2\nresume: true\nlr: 0.5\n")
    namespace = _parse(["--config", str(path), "--max-steps", "300", "--seed", "3"])
    args = resolve_args(namespace)
    assert (args.max_steps, args.rank, args.resume, args.lr, args.seed) == (300, 2, True, 0.5, 3)
    assert args.config == str(path) and args.batch_size == TrainArgs().batch_size
    assert resolve_args(_parse(["--rank", "4"])) == TrainArgs(rank=4)


def test_config_yaml_holds_every_option_and_reads_back_equal(tmp_path):
    tricky = TrainArgs(
        task="on",  # strings YAML would read as other types unless quoted
        mixed_precision="no",
        text_column="null",
        label_column="1e-3",
        method_config='{"unified": true}',
        lr=1e-30,
        warmup_ratio=0.1,
        max_eval=None,
        config="somewhere.yaml",
    )
    write_config(tmp_path / "config.yaml", tricky)
    assert TrainArgs(**read_config(tmp_path / "config.yaml")) == replace(tricky, config=None)
    assert "resolved from somewhere.yaml" in (tmp_path / "config.yaml").read_text()


def test_a_runs_config_yaml_runs_it_again_to_the_same_bytes(tmp_path):
    model = save_tiny_checkpoint(tmp_path / "tiny-bert", "bert")
    data = write_sentiment_csv(tmp_path / "s.csv", 80)
    first, again = tmp_path / "first", tmp_path / "again"
    flags = ["--model", model, "--train-file", data, "--rank", "2", "--batch-size", "8", "--max-eval", "8"]
    config = _file(tmp_path, "max_steps: 6\neval_every: 3\nseed: 4\nlr: 1e-2\n")
    assert main(["train", "--config", str(config), *flags, "--output-dir", str(first)]) == 0
    assert main(["train", "--config", str(first / "config.yaml"), "--output-dir", str(again)]) == 0
    for name in ("adapter_model.safetensors", "last/adapter_model.safetensors"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    timing = {"train_seconds", "train_tokens_per_second"}
    metrics = [
        {k: v for k, v in json.loads((d / "metrics.json").read_text()).items() if k not in timing}
        for d in (first, again)
    ]
    assert metrics[0] == metrics[1] and metrics[0]["steps"] == 6 and len(metrics[0]["eval_history"]) == 2
    resolved = [read_config(d / "config.yaml") for d in (first, again)]
    assert {**resolved[0], "output_dir": None} == {**resolved[1], "output_dir": None}
