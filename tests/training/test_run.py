"""``TrainArgs``: the easy-VQA question-type filter of task loading, and ``--method-config``."""

import json

import pytest
import torch

from adalink import AdaLinkConfig, PromptTuningConfig
from adalink.training.formats import ClassificationFormat, TaskInfo
from adalink.training.methods import attach_method, method_names
from adalink.training.run import TrainArgs, build_optimizer, head_parameter_ids, load_tasks, train
from tiny_models import build, save_tiny_checkpoint, write_sentiment_csv


def test_question_types_filter_easyvqa_splits():
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    (data,) = load_tasks(TrainArgs(task="easyvqa", question_types="yesno-shape, shape"))
    for split in (data.train, data.validation, data.test):
        assert split and {e.question_type for e in split} == {"yesno-shape", "shape"}
    (everything,) = load_tasks(TrainArgs(task="easyvqa"))
    assert len(everything.test) > len(data.test)


def test_question_types_refused_for_text_tasks_and_unknown_types():
    with pytest.raises(ValueError, match="--question-types"):
        load_tasks(TrainArgs(task="tweets", question_types="yesno-shape"))
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    with pytest.raises(ValueError, match="question types"):
        load_tasks(TrainArgs(task="easyvqa", question_types="colour"))


def test_method_config_reaches_the_config():
    args = TrainArgs(method="prompt_tuning", method_config='{"num_virtual_tokens": 5, "residual": true}')
    args.validate()
    attached = attach_method(
        "prompt_tuning", build("bert"), rank=8, dropout=0.1, tasks=["t"], heads=[], options=args.method_options()
    )
    config = attached.model.peft_config
    assert isinstance(config, PromptTuningConfig) and config.num_virtual_tokens == 5 and config.residual
    unified = TrainArgs(method="adalink", method_config='{"unified": true}').method_options()
    attached = attach_method("adalink", build("bert"), rank=4, dropout=0.1, tasks=["t"], heads=[], options=unified)
    assert isinstance(attached.model.peft_config, AdaLinkConfig) and attached.model.peft_config.unified
    assert TrainArgs().method_options() == {}


@pytest.mark.parametrize(
    ("method", "text", "match"),
    [
        ("adalink", "{unified: true}", "not valid JSON"),
        ("adalink", "[1, 2]", "JSON object"),
        ("full", '{"unified": true}', "--method full"),
        ("adalink", '{"not_a_field": 1}', r"not_a_field.*unified"),
        ("adalink", '{"rank": 4}', r"\['rank'\].*--rank"),
    ],
)
def test_method_config_errors_name_the_problem(method, text, match):
    with pytest.raises(ValueError, match=match):
        TrainArgs(method=method, method_config=text).validate()


def test_head_lr_puts_the_head_in_its_own_group():
    body, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
    params = [*body.parameters(), *head.parameters()]
    head_ids = {id(p) for p in head.parameters()}
    together = build_optimizer(TrainArgs(method="adalink", lr=1e-3), params, head_ids)
    assert [g["lr"] for g in together.param_groups] == [1e-3]
    apart = build_optimizer(TrainArgs(method="adalink", lr=1e-3, head_lr=1e-2), params, head_ids)
    assert [(g["lr"], len(g["params"])) for g in apart.param_groups] == [(1e-3, 2), (1e-2, 2)]
    with pytest.raises(ValueError, match="--head-lr"):
        TrainArgs(head_lr=0).validate()


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


def test_tqdm_disable_silences_the_bars_that_are_on_by_default():
    import os
    import subprocess
    import sys

    code = (
        "from adalink.training.progress import progress_bar as p; print(p(range(2)).disable, p(enabled=False).disable)"
    )
    env = {**os.environ, "TQDM_DISABLE": "1"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split() == [
        "True",
        "True",
    ]
    env.pop("TQDM_DISABLE")
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()
    assert shown == ["False", "True"]


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_the_new_head_at_head_lr(method):
    """The optimiser ``adalink train`` builds puts exactly the new classifier in the --head-lr group, full tuning
    included (its plain model's ``base_model`` is the backbone, which once hid the head: it trained at 5e-5)."""
    fmt = ClassificationFormat([TaskInfo("t", ("a", "b", "c"))])
    base = build("bert")
    attached = attach_method(method, base, rank=4, dropout=0.1, tasks=["t"], heads=fmt.head_modules(base))
    trainable = [p for p in attached.model.parameters() if p.requires_grad]
    head_ids = head_parameter_ids(attached.model, fmt)
    assert head_ids == {id(p) for p in base.classifier.parameters()}
    optimizer = build_optimizer(TrainArgs(method=method, lr=1e-3, head_lr=1e-2), trainable, head_ids)
    (head_group,) = [g for g in optimizer.param_groups if g["lr"] == 1e-2]
    assert {id(p) for p in head_group["params"]} == head_ids
    (body_group,) = [g for g in optimizer.param_groups if g["lr"] == 1e-3]
    assert body_group["params"] and not {id(p) for p in body_group["params"]} & head_ids


@pytest.mark.parametrize("method", ["full", "adalink"])
def test_metrics_count_the_head_apart_for_full_tuning_too(method, tmp_path):
    model = save_tiny_checkpoint(tmp_path / "tiny-bert", "bert")
    data = write_sentiment_csv(tmp_path / "s.csv", 40)
    args = TrainArgs(
        model=model, train_file=data, method=method, max_steps=2, batch_size=4, head_lr=1e-2, output_dir=str(tmp_path)
    )
    metrics = train(args)
    hidden = 32  # tiny BERT's width; the head is Linear(32, 2)
    assert metrics["head_params"] == hidden * 2 + 2
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["head_params"] == metrics["head_params"]
    assert saved["trainable_params"] + saved["head_params"] == sum(p.numel() for p in _trainable(tmp_path, method))


def _trainable(run_dir, method):
    from adalink.training.artifacts import load_run

    loaded = load_run(run_dir)
    if method == "full":
        return list(loaded.model.parameters())
    return [*loaded.model.adapter_modules.parameters(), *loaded.model.get_base_model().classifier.parameters()]
