"""Task loading (the easy-VQA question-type filter) and the one loader of base models, formats and tokenizers."""

import pytest
import torch

from adalink.runs.loading import load_tasks
from adalink.tasks.options import TaskOptions


def test_question_types_filter_easyvqa_splits():
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    (data,) = load_tasks(TaskOptions(task="easyvqa", question_types="yesno-shape, shape"))
    for split in (data.train, data.validation, data.test):
        assert split and {e.question_type for e in split} == {"yesno-shape", "shape"}
    (everything,) = load_tasks(TaskOptions(task="easyvqa"))
    assert len(everything.test) > len(data.test)


def test_question_types_refused_for_text_tasks_and_unknown_types():
    with pytest.raises(ValueError, match="--question-types"):
        load_tasks(TaskOptions(task="tweets", question_types="yesno-shape"))
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    with pytest.raises(ValueError, match="question types"):
        load_tasks(TaskOptions(task="easyvqa", question_types="colour"))


def test_setup_model_unpacks_as_path_format_tokenizer_and_builds_the_base(tmp_path):
    from adalink.runs.loading import setup_model
    from adalink.tasks.formats import ClassificationFormat, TaskInfo, TextToTextFormat
    from tiny_models import save_tiny_checkpoint

    bert = save_tiny_checkpoint(tmp_path / "bert", "bert")
    setup = setup_model(bert, "auto", [TaskInfo("t", ("a", "b", "c"))])
    path, fmt, tokenizer = setup
    assert path == setup.path and isinstance(fmt, ClassificationFormat) and tokenizer.pad_token == "[PAD]"
    base = setup.build_base(seed=0)
    assert base.classifier.out_features == 3
    base.save_pretrained(tmp_path / "tuned")
    again = setup.build_base(seed=1, weights=tmp_path / "tuned")  # a full-tuning run's own model
    assert torch.equal(again.classifier.weight, base.classifier.weight)
    llama = setup_model(save_tiny_checkpoint(tmp_path / "llama", "llama"), "auto", [TaskInfo("t", ("a", "b"))])
    assert isinstance(llama.fmt, TextToTextFormat) and not llama.fmt.encoder_decoder


def test_load_tokenizer_gives_a_decoder_a_pad_token(tmp_path):
    from transformers import AutoTokenizer

    from adalink.runs.loading import load_tokenizer
    from tiny_models import save_tiny_checkpoint

    directory = save_tiny_checkpoint(tmp_path / "m", "bert")
    saved = AutoTokenizer.from_pretrained(directory)
    saved.pad_token, saved.eos_token = None, "[SEP]"
    saved.save_pretrained(directory)
    assert load_tokenizer(directory).pad_token == "[SEP]"


def test_a_tokenizer_with_ids_beyond_the_embedding_table_is_refused_before_training(tmp_path, capsys):
    """A tokenizer that gained an end-of-sequence token the model has no embedding row for: before the check,
    `adalink train` failed at the first batch with `IndexError: index out of range in self` inside torch."""
    from transformers import AutoConfig, AutoTokenizer

    from adalink.cli import main
    from adalink.runs.loading import setup_model
    from adalink.tasks.formats import TaskInfo
    from tiny_models import save_tiny_checkpoint, write_sentiment_csv

    directory = save_tiny_checkpoint(tmp_path / "llama", "llama")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    rows = AutoConfig.from_pretrained(directory).vocab_size
    tokenizer.add_tokens([f"<unused{i}>" for i in range(rows - len(tokenizer))])  # ids up to the last row: fine
    tokenizer.add_special_tokens({"eos_token": "</s>"})  # id `rows`: one past the last embedding row
    tokenizer.save_pretrained(directory)
    assert AutoTokenizer.from_pretrained(directory).convert_tokens_to_ids("</s>") == rows
    with pytest.raises(ValueError, match="have no embedding") as info:
        setup_model(directory, "auto", [TaskInfo("t", ("a", "b"))])
    message = str(info.value)
    assert f"id(s) {rows} '</s>' have" in message and f"has {rows + 1} tokens" in message, message
    assert f"only {rows} rows" in message
    assert "resize_token_embeddings" in message

    data = write_sentiment_csv(tmp_path / "s.csv", rows=16)
    args = ["train", "--model", directory, "--train-file", data, "--max-steps", "1", "--batch-size", "4"]
    assert main([*args, "--output-dir", str(tmp_path / "run")]) == 2
    assert "have no embedding" in capsys.readouterr().err


def test_an_embedding_table_larger_than_the_tokenizer_is_fine(tmp_path):
    from transformers import AutoModelForCausalLM

    from adalink.runs.loading import setup_model
    from adalink.tasks.formats import TaskInfo
    from tiny_models import save_tiny_checkpoint

    directory = save_tiny_checkpoint(tmp_path / "llama", "llama")
    model = AutoModelForCausalLM.from_pretrained(directory)
    model.resize_token_embeddings(model.config.vocab_size + 8)  # padded tables are common
    model.save_pretrained(directory)
    assert setup_model(directory, "auto", [TaskInfo("t", ("a", "b"))]).tokenizer is not None
