"""``TrainArgs``: its groups and flat options, validation with errors that name the flag, ``--method-config``, the
resume key."""

from dataclasses import fields

import pytest

from adalink import AdaLinkConfig, PromptTuningConfig, get_peft_model
from adalink.models.options import ModelOptions
from adalink.models.precision import BaseLoading
from adalink.tasks.options import TaskOptions
from adalink.training.args import GROUPS, MethodOptions, OptimOptions, RunOptions, TrainArgs
from adalink.training.methods import resolve_method_config
from tiny_models import build


def test_method_config_reaches_the_config():
    args = TrainArgs(method="prompt_tuning", method_config='{"num_virtual_tokens": 5, "residual": true}')
    args.validate()
    options = args.tuning.method_options()
    config = resolve_method_config("prompt_tuning", rank=None, dropout=0.1, tasks=["t"], heads=[], options=options)
    assert isinstance(config, PromptTuningConfig) and config.num_virtual_tokens == 5 and config.residual
    assert get_peft_model(build("bert"), config).peft_config is config
    unified = TrainArgs(method="adalink", method_config='{"unified": true}').tuning.method_options()
    config = resolve_method_config("adalink", rank=4, dropout=0.1, tasks=["t"], heads=[], options=unified)
    assert isinstance(config, AdaLinkConfig) and config.unified
    assert TrainArgs().tuning.method_options() == {}


@pytest.mark.parametrize(
    ("method", "text", "match"),
    [
        ("adalink", "{unified: true}", "not valid JSON"),
        ("adalink", "[1, 2]", "JSON object"),
        ("full", '{"unified": true}', r"\['unified'\] are not fields FullConfig lets you set here; expected .* \[\]"),
        ("prompt_tuning", None, "--rank does not apply to --method prompt_tuning: it has no size field; its knobs"),
        ("loraa", None, "--method 'loraa' is unknown: .*Did you mean 'lora'"),
        ("adalink", '{"not_a_field": 1}', r"not_a_field.*unified"),
        ("adalink", '{"rank": 4}', r"\['rank'\].*--rank"),
    ],
)
def test_method_config_errors_name_the_problem(method, text, match):
    rank = 8 if text is None and method == "prompt_tuning" else None  # refused before any model loads
    with pytest.raises(ValueError, match=match):
        TrainArgs(method=method, method_config=text, rank=rank).validate()


def test_task_mixing_is_validated_and_kept_out_of_old_resume_keys():
    with pytest.raises(
        ValueError, match=r"--task-mixing 'balanced' is invalid: expected proportional or sqrt or equal"
    ):
        TrainArgs(task="tweets,bbc", task_mixing="balanced").validate()
    TrainArgs(task="tweets,bbc", task_mixing="equal").validate()
    assert "task_mixing" not in TrainArgs().resume_key()  # checkpoints written before the option still resume
    assert TrainArgs(task_mixing="sqrt").resume_key()["task_mixing"] == "sqrt"
    with pytest.raises(ValueError, match="--max-length 0 is invalid"):
        TrainArgs(max_length=0).validate()


def test_a_task_name_needs_a_training_file():
    with pytest.raises(ValueError, match=r"--task-name 'x' is invalid: .*packaged tasks keep their own names"):
        TrainArgs(task_name="x").validate()
    with pytest.raises(ValueError, match=r"--task-name ' ' is invalid: expected a non-empty name"):
        TrainArgs(task_name=" ", train_file="data.csv").validate()


def test_evaluation_options_are_validated():
    with pytest.raises(ValueError, match="--eval-every -1 is invalid"):
        TrainArgs(eval_every=-1).validate()
    with pytest.raises(ValueError, match="--early-stopping-patience -2 is invalid"):
        TrainArgs(eval_every=5, early_stopping_patience=-2).validate()
    with pytest.raises(ValueError, match="needs --eval-every"):
        TrainArgs(early_stopping_patience=3).validate()
    TrainArgs(eval_every=5, early_stopping_patience=3, report_to="tensorboard,mlflow").validate()


def test_the_resume_key_holds_what_changes_the_result_and_not_how_the_run_is_watched():
    plain = TrainArgs().resume_key()
    assert not {"config", "report_to", "logging_dir", "eval_every", "early_stopping_patience", "max_eval"} & set(plain)
    watched = TrainArgs(config="run.yaml", report_to="all", logging_dir="logs").resume_key()
    assert watched == plain  # checkpoints of runs from before these options still resume
    selected = TrainArgs(eval_every=50, early_stopping_patience=3, max_eval=100).resume_key()
    assert (selected["eval_every"], selected["early_stopping_patience"], selected["max_eval"]) == (50, 3, 100)


def test_the_options_are_grouped_and_still_taken_flat():
    args = TrainArgs(model="tiny", task="bbc", method="lora", lr=1e-3, dtype="bfloat16", seed=3)
    assert args.base == ModelOptions(model="tiny", dtype="bfloat16")
    assert args.data == TaskOptions(task="bbc")
    assert args.tuning == MethodOptions(method="lora")
    assert args.optim == OptimOptions(lr=1e-3)
    assert args.run == RunOptions(seed=3)
    assert args.base.loading == BaseLoading(dtype="bfloat16")
    assert TrainArgs(optim=OptimOptions(lr=1e-3), max_steps=5).optim == OptimOptions(lr=1e-3, max_steps=5)
    assert TrainArgs(**args.options()) == args  # run.json's flat "args" builds the same options
    assert list(TrainArgs().options()) == [f.name for cls, _ in GROUPS.values() for f in fields(cls)]
    with pytest.raises(TypeError, match=r"\['max_step'\] are not options of adalink train; did you mean 'max_steps'"):
        TrainArgs(max_step=3)


def test_the_resume_key_is_the_flat_one_checkpoints_have_always_held():
    """Written by the ungrouped TrainArgs: a checkpoint saved before the options were grouped still resumes."""
    assert TrainArgs().resume_key() == {
        "model": "minilm",
        "task": "tweets",
        "method": "adalink",
        "rank": None,
        "dropout": None,
        "lr": None,
        "head_lr": None,
        "max_steps": 300,
        "batch_size": 16,
        "grad_accum": 1,
        "max_length": 64,
        "seed": 0,
        "optimizer": "adamw",
        "schedule": "linear",
        "warmup_ratio": 0.1,
        "max_grad_norm": 1.0,
        "format": "auto",
        "train_file": None,
        "eval_file": None,
        "text_column": "text",
        "label_column": "label",
        "mixed_precision": "no",
        "method_config": None,
        "question_types": None,
    }
