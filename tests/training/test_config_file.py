"""``adalink train``'s options through jsonargparse: every flag, ``--config run.yaml`` checked per type and overridden
by the flags given, refusals that name the option; each run's ``config.yaml`` runs it again to the same adapter, byte
for byte, and the flat ``config.yaml`` of earlier versions still reads."""

import json

import pytest

from adalink.cli import main
from adalink.errors import AdalinkError, UsageError
from adalink.options import option_specs
from adalink.training.args import GROUPS, TrainArgs
from adalink.training.config_file import parse_train_args, read_config, write_config
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

# config.yaml as adalink wrote it before the options were grouped (flat, in the old field order)
OLD_CONFIG = """\
# The options of this run (adalink 0.1.0), resolved from x.yaml and the command line.
# `adalink train --config config.yaml` runs it again; options given on the command line override these.
model: tiny
task: bbc
method: adalink
rank: 4
dropout: null
lr: 0.001
head_lr: null
max_steps: 40
batch_size: 16
grad_accum: 1
max_length: 64
seed: 0
task_mixing: proportional
optimizer: adamw
schedule: linear
warmup_ratio: 0.1
max_grad_norm: 1.0
format: auto
output_dir: null
save_every: 100
keep_checkpoints: 2
resume: true
max_eval: null
train_file: null
eval_file: null
text_column: text
label_column: label
task_name: null
mixed_precision: 'no'
method_config: '{"unified": true}'
question_types: null
eval_every: 0
early_stopping_patience: 0
report_to: none
logging_dir: null
prompt_column: prompt
response_column: response
max_new_tokens: 64
dtype: float32
quantize: none
gradient_checkpointing: false
"""


def _file(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def _other_value(spec):
    """A value of the option's type that is not its default."""
    if spec.kind is bool:
        return not spec.default
    if spec.kind is int:
        return (spec.default or 0) + 3
    if spec.kind is float:
        return (spec.default or 0.0) + 0.25
    return f"{spec.default or 'x'}-other"


def _all_specs():
    return [spec for cls, _ in GROUPS.values() for spec in option_specs(cls) if spec.name != "config"]


def test_every_flag_round_trips_through_the_command_line_and_config_yaml(tmp_path):
    values = {spec.name: _other_value(spec) for spec in _all_specs()}
    argv = []
    for spec in _all_specs():
        argv += [spec.flag] if spec.kind is bool else [spec.flag, str(values[spec.name])]
    args = parse_train_args(argv)
    assert args == TrainArgs(**values)
    assert args.options() == {**values, "config": None}
    assert len(values) == 41  # every option of adalink train but --config
    write_config(tmp_path / "config.yaml", args)
    assert read_config(tmp_path / "config.yaml") == TrainArgs(**values, config=str(tmp_path / "config.yaml"))


def test_every_group_is_a_section_of_help_and_of_config_yaml(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for _, title in GROUPS.values():
        assert f"{title}:" in shown
    assert "--max-steps MAX_STEPS optimiser steps" in shown and "--resume" in shown
    write_config(tmp_path / "config.yaml", TrainArgs())
    assert [line for line in (tmp_path / "config.yaml").read_text().splitlines() if line.startswith("# ")][2:] == [
        "# model",
        "# data",
        "# method",
        "# optimisation",
        "# run",
    ]


def test_values_take_their_fields_types(tmp_path):
    text = (
        "max_steps: 40\nlr: 1e-3\ndropout: 0\nresume: true\nhead_lr: ~\nmax_eval:\ntask: bbc\nmixed_precision: 'no'\n"
    )
    path = _file(tmp_path, text)
    args = read_config(path)
    expected = TrainArgs(max_steps=40, lr=0.001, dropout=0.0, resume=True, task="bbc", config=str(path))
    assert args == expected  # 1e-3 is a number (YAML 1.1 would read a string); 0 is a float for a float field
    assert type(args.tuning.dropout) is float
    assert read_config(_file(tmp_path, "")) == TrainArgs(config=str(tmp_path / "run.yaml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_steps: abc", "run.yaml: max_steps: expected an integer, found abc."),
        ("max_steps: 3.0", "run.yaml: max_steps: expected an integer, found 3.0."),
        ("max_steps: true", "run.yaml: max_steps: expected an integer, found True."),
        ("max_eval: ten", "run.yaml: max_eval: expected an integer or null, found ten."),
        ("lr: fast", "run.yaml: lr: expected a number or null, found fast."),
        ("resume: 1", "run.yaml: resume: expected true or false, found 1."),
        ("task: ~", "run.yaml: task: expected a string, found null."),
        ("mixed_precision: no", "found False (YAML reads an unquoted yes/no/on/off as a bool: quote it)"),
        ("method_config: {unified: true}", "method_config: expected a string or null, found {'unified': True}."),
        ("max_step: 3", "run.yaml: max_step: not an option of adalink train; did you mean max_steps?"),
        ("learning_rate: 3", "run.yaml: learning_rate: not an option of adalink train; the keys are the options'"),
        ("- max_steps: 3", "run.yaml: expected a mapping of options"),
        ("max_steps: [3", "run.yaml: not valid YAML"),
        ("a: !!python/object/apply:os.system ['true']", "run.yaml: not valid YAML"),  # safe: builds no objects
    ],
)
def test_bad_files_are_refused_naming_the_key_the_value_and_what_was_expected(tmp_path, text, message):
    with pytest.raises(UsageError) as info:
        read_config(_file(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-steps", "abc"], "--max-steps: expected an integer, found abc."),
        (["--lr", "fast"], "--lr: expected a number or null, found fast."),
        (["--resume", "maybe"], "--resume: expected true or false, found maybe."),
        (["--max-stepz", "3"], "unrecognized arguments: --max-stepz 3; did you mean --max-steps?"),
        (["--max-steps"], "argument --max-steps: expected one argument"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv, message):
    with pytest.raises(UsageError) as info:
        parse_train_args(argv)
    assert str(info.value) == message


def test_a_bad_flag_is_one_line_and_status_2(capsys):
    assert main(["train", "--max-steps", "abc"]) == 2
    assert capsys.readouterr().err == "adalink train: error: --max-steps: expected an integer, found abc.\n"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--config .*nope\.yaml: no such file") as info:
        read_config(tmp_path / "nope.yaml")
    assert isinstance(info.value, AdalinkError)


def test_flags_given_override_the_file_wherever_it_stands_even_at_their_default_values(tmp_path):
    path = _file(tmp_path, "max_steps: 5\nrank: 2\nresume: true\nlr: 0.5\n")
    for argv in (
        ["--config", str(path), "--max-steps", "300", "--seed", "3"],
        ["--max-steps", "300", "--config", str(path), "--seed", "3"],
        ["--max-steps", "300", "--seed", "3", f"--config={path}"],
    ):
        args = parse_train_args(argv)
        assert (args.optim.max_steps, args.tuning.rank, args.run.resume, args.optim.lr, args.run.seed) == (
            300,
            2,
            True,
            0.5,
            3,
        )
        assert args.run.config == str(path) and args.optim.batch_size == TrainArgs().optim.batch_size
    assert parse_train_args(["--config", str(path), "--resume", "false"]).run.resume is False
    assert parse_train_args(["--rank", "4"]) == TrainArgs(rank=4)


def test_a_file_may_build_on_another(tmp_path):
    (tmp_path / "base.yaml").write_text("max_steps: 5\nlr: 0.5\n")
    path = _file(tmp_path, f"config: {tmp_path / 'base.yaml'}\nmax_steps: 9\n")
    args = read_config(path)
    assert (args.optim.max_steps, args.optim.lr) == (9, 0.5)


def test_an_old_flat_config_yaml_still_reads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG)
    args = read_config(path)
    expected = TrainArgs(
        model="tiny", task="bbc", rank=4, lr=1e-3, max_steps=40, resume=True, method_config='{"unified": true}'
    )
    assert args == TrainArgs(**{**expected.options(), "config": str(path)})
    assert args.tuning.method_options() == {"unified": True}


def test_config_yaml_holds_every_option_and_reads_back_equal(tmp_path):
    tricky = TrainArgs(
        task="on",  # strings YAML would read as other types unless quoted
        mixed_precision="no",
        text_column="null",
        label_column="1e-3",
        prompt_column="true",
        response_column="12",
        method_config='{"unified": true}',
        lr=1e-30,
        warmup_ratio=0.1,
        max_eval=None,
        config="somewhere.yaml",
    )
    write_config(tmp_path / "config.yaml", tricky)
    back = read_config(tmp_path / "config.yaml")
    assert back == TrainArgs(**{**tricky.options(), "config": str(tmp_path / "config.yaml")})
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
    timing = {"train_seconds", "train_tokens_per_second", "train_peak_rss_bytes", "train_peak_gpu_bytes"}  # measured
    metrics = [
        {k: v for k, v in json.loads((d / "metrics.json").read_text()).items() if k not in timing}
        for d in (first, again)
    ]
    assert metrics[0] == metrics[1] and metrics[0]["steps"] == 6 and len(metrics[0]["eval_history"]) == 2
    resolved = [read_config(d / "config.yaml").options() for d in (first, again)]
    assert {**resolved[0], "output_dir": None, "config": None} == {**resolved[1], "output_dir": None, "config": None}
    run_args = json.loads((first / "run.json").read_text())["args"]  # flat, as runs have always written it
    assert run_args == {**resolved[0], "config": str(config)} and TrainArgs(**run_args).optim.max_steps == 6
