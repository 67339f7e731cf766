"""Options refused before anything loads: each message names the flag, what was expected, what was found, and the
closest known name."""

import json

import pytest

from adalink.errors import MissingFileError, UsageError
from adalink.training.args import TrainArgs
from adalink.training.early_checks import MIXED_PRECISIONS, check_model, check_run_options, check_train_options


def _check(args: TrainArgs) -> None:
    check_train_options(
        args.data,
        model=args.base.model,
        optimizer=args.optim.optimizer,
        schedule=args.optim.schedule,
        mixed_precision=args.run.mixed_precision,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "tweetz"}, r"--task 'tweetz' is invalid: expected .* found 'tweetz', .* Did you mean 'tweets'"),
        ({"task": "tweets,bbcc"}, r"found 'bbcc', not one of them\. Did you mean 'bbc'\?$"),
        ({"task": " , "}, r"--task ' , ' is invalid: expected a comma-separated list of packaged tasks \(tweets,"),
        ({"model": "smollm2"}, r"--model 'smollm2' is invalid: .* no directory .* Did you mean 'smollm2-135m'\?$"),
        ({"format": "sft2"}, r"--format 'sft2' is invalid: expected one of auto, .* Did you mean 'sft'\?$"),
        ({"optimizer": "adam"}, r"--optimizer 'adam' is invalid: expected one of adamw, adafactor\. Did you mean"),
        ({"schedule": "cosine"}, r"--schedule 'cosine' is invalid: expected one of linear, rsqrt\.$"),
        ({"mixed_precision": "bf61"}, r"--mixed-precision 'bf61' is invalid: .* Did you mean 'bf16'\?$"),
        ({"task": "headlines", "format": "classification"}, r"--task headlines is generative"),
    ],
)
def test_a_wrong_name_is_refused_with_the_closest_known_one(options, message):
    with pytest.raises(UsageError, match=message):
        TrainArgs(**options).validate()


def test_the_packaged_names_pass():
    for task in ("tweets", "tweets3,bbc", "headlines", "easyvqa"):
        _check(TrainArgs(task=task))
    for model in ("minilm", "SmolLM2-135M", "easyvqa-vlm"):
        check_model(model)


def test_a_missing_model_path_suggests_the_names_beside_it(tmp_path):
    (tmp_path / "tiny-bert").mkdir()
    check_model(str(tmp_path / "tiny-bert"))
    with pytest.raises(UsageError, match=rf"no directory {tmp_path / 'tiny-brt'} .* Did you mean 'tiny-bert'\?$"):
        check_model(str(tmp_path / "tiny-brt"))


def test_mixed_precision_modes_are_accelerates():
    precision = pytest.importorskip("accelerate.utils").PrecisionType
    assert set(MIXED_PRECISIONS) == set(precision.list())


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_columns_are_checked_from_the_first_row(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    rows = [{"txt": "good", "lab": "pos"}, {"txt": "bad", "lab": "neg"}]
    if suffix == ".csv":
        path.write_text("txt,lab\n" + "".join(f"{r['txt']},{r['lab']}\n" for r in rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UsageError, match=rf"--text-column 'text' is invalid: expected a column of --train-file {path}"):
        _check(TrainArgs(train_file=str(path)))
    with pytest.raises(UsageError, match=r"\(txt, lab\); found no column 'labl'\. Did you mean 'lab'\?$"):
        _check(TrainArgs(train_file=str(path), text_column="txt", label_column="labl"))
    _check(TrainArgs(train_file=str(path), text_column="txt", label_column="lab", task="not-read"))
    with pytest.raises(UsageError, match=r"--prompt-column 'prompt' is invalid: .*or a chat 'messages' column\)"):
        _check(TrainArgs(train_file=str(path), format="sft"))


def test_an_sft_file_with_chat_messages_needs_no_prompt_column(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    _check(TrainArgs(train_file=str(path), format="sft"))


def test_a_missing_data_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"--eval-file .*nope.csv: expected a data file, found nothing"):
        path = tmp_path / "data.csv"
        path.write_text("text,label\na,b\n")
        _check(TrainArgs(train_file=str(path), eval_file=str(tmp_path / "nope.csv")))


def test_run_options_are_checked_against_run_json(tmp_path):
    run = tmp_path / "tweets-run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"tasks": [{"name": "tweets", "label_names": ["a"]}]}))
    assert check_run_options(str(run), tasks=["tweets"], source="-")["tasks"][0]["name"] == "tweets"
    with pytest.raises(MissingFileError, match=r"--adapter .*tweets-rnu: expected .* Did you mean 'tweets-run'\?$"):
        check_run_options(str(tmp_path / "tweets-rnu"))
    with pytest.raises(UsageError, match=r"--task 'tweet' is invalid: .*\(tweets\)\. Did you mean 'tweets'\?$"):
        check_run_options(str(run), tasks=["tweet"])
    with pytest.raises(UsageError, match=r"--model 'minilmm' is invalid: .* Did you mean 'minilm'\?$"):
        check_run_options(str(run), model="minilmm")
    (tmp_path / "requests.jsonl").write_text("{}\n")
    with pytest.raises(MissingFileError, match=r"--input .*requets.jsonl: .* Did you mean 'requests.jsonl'\?$"):
        check_run_options(str(run), source=str(tmp_path / "requets.jsonl"))
