"""Text-to-text prompts: a long text is cut, never the frame and its ``Answer:`` cue (training, eval and serving);
the loss reads the logits of the batch's own tokens whatever a method prepends to the sequence."""

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from adalink import PromptTuningConfig, get_peft_model
from adalink.data import Example
from adalink.tasks.examples import TaskExample
from adalink.tasks.formats import TaskInfo, TextToTextFormat, pad_rows
from tiny_models import WORDS, save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("fmt") / "tiny", "llama")


@pytest.fixture(scope="module")
def tokenizer(checkpoint):
    return AutoTokenizer.from_pretrained(checkpoint)


FMT = TextToTextFormat([TaskInfo("topic", ("sport", "tech"))], encoder_decoder=False)
LONG = " ".join(WORDS * 20)


def _text(tokenizer, ids) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "")


def test_a_long_text_is_cut_and_the_frame_kept(tokenizer):
    frame = len(tokenizer(FMT.prompt(0, ""))["input_ids"])
    for budget in (frame + 2, frame + 10, frame + 30):
        ids = FMT.prompt_ids(tokenizer, 0, LONG, budget)
        assert budget - 3 <= len(ids) <= budget
        text = _text(tokenizer, ids)
        assert text.startswith("topic") and text.endswith("answer")  # (the tiny vocabulary has no ":")
        assert ids[0] == tokenizer(FMT.prompt(0, "x"))["input_ids"][0]  # special tokens where the tokenizer puts them
    plain = tokenizer(FMT.prompt(0, LONG), truncation=True, max_length=frame + 10)["input_ids"]
    assert not _text(tokenizer, plain).endswith("answer")  # what plain truncation did
    tight = FMT.prompt_ids(tokenizer, 0, LONG, frame - 4)  # not even the frame fits: its end (the cue) stays
    assert len(tight) == frame - 4 and _text(tokenizer, tight).endswith("answer")


def test_a_short_prompt_is_tokenized_as_a_whole(tokenizer):
    short = " ".join(WORDS[:3])
    assert FMT.prompt_ids(tokenizer, 0, short, 64) == tokenizer(FMT.prompt(0, short))["input_ids"]


def test_training_targets_follow_the_answer_cue_and_generation_ends_with_it(tokenizer):
    items = [TaskExample(0, Example(LONG, 1)), TaskExample(0, Example(WORDS[0], 0))]
    batch = FMT.collate(items, tokenizer, 48)
    assert batch["input_ids"].shape[1] <= 48
    for row, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        first_target = int((labels != -100).nonzero()[0])
        assert _text(tokenizer, row[:first_target]).endswith("answer")
    generation = FMT.generation_batch(items, tokenizer, 48)
    assert generation["input_ids"].shape[1] <= 48
    for row, mask in zip(generation["input_ids"], generation["attention_mask"], strict=True):
        assert _text(tokenizer, row[mask.bool()]).endswith("answer") and mask[-1] == 1  # left padded


def test_left_padded():
    batch = pad_rows([[5, 6, 7], [8]], 0, left=True)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [0, 0, 1]]))


def test_a_budget_below_one_token_is_refused(tokenizer):
    with pytest.raises(ValueError, match="max_tokens=0"):
        FMT.prompt_ids(tokenizer, 0, LONG, 0)


def test_the_decoder_loss_reads_the_last_positions_when_a_method_prepends_some(tokenizer):
    items = [TaskExample(0, Example(WORDS[0], 1)), TaskExample(0, Example(" ".join(WORDS[:6]), 0))]
    batch = FMT.collate(items, tokenizer, 48)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(*batch["input_ids"].shape, len(tokenizer), generator=generator)  # (B, L, V)
    prepended = torch.cat([torch.randn(2, 5, len(tokenizer)), logits], dim=1)  # (B, 5 + L, V): 5 soft tokens first

    def answering(values):
        return lambda inputs, task_ids: SimpleNamespace(logits=values)

    expected = FMT.loss(answering(logits), batch)
    assert FMT.loss(answering(prepended), batch) == expected
    with pytest.raises(ValueError, match="fewer than the batch's"):
        FMT.loss(answering(logits[:, 1:]), batch)


def test_prompt_tuning_on_a_decoder_trains_through_the_text_to_text_loss(checkpoint, tokenizer):
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(checkpoint), PromptTuningConfig(num_virtual_tokens=4))
    batch = FMT.collate([TaskExample(0, Example(w, i % 2)) for i, w in enumerate(WORDS[:4])], tokenizer, 32)
    loss = FMT.loss(lambda inputs, task_ids: model(**inputs), batch)  # failed: logits (B, 4 + L) vs labels (B, L)
    loss.backward()
    assert torch.isfinite(loss) and model.prompt_tuning["bank"].prompt.grad.abs().sum() > 0
    with model.disable_adapter():  # the same tokens read without the prompt: the loss of the plain model
        plain = FMT.loss(lambda inputs, task_ids: model(**inputs), batch)
    assert plain != loss
