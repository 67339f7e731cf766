"""TRL's SFTTrainer and DPOTrainer and transformers' Trainer train AdaLink through peft_config= (tiny models)."""

from __future__ import annotations

import peft
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

import adalink
from adalink.integrations.peft_checkpoints import peft_to_adalink
from adalink.integrations.peft_config import AdaLinkPeftConfig
from integrations._peft_helpers import peft_banks
from tiny_models import build, save_tiny_checkpoint

trl = pytest.importorskip("trl", reason="pip install 'adalink[trl]'")

# A chat template whose assistant turns are marked for TRL's assistant_only_loss.
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }} [SEP]"
    "{% endgeneration %}{% else %}{{ m['content'] }} {% endif %}{% endfor %}"
)
PAIRS = [("the movie was", "good"), ("the food was", "bad"), ("a very", "happy day"), ("the service was", "poor")] * 4
COMMON = {
    "bf16": False,
    "report_to": [],
    "save_strategy": "no",
    "use_cpu": True,
    "disable_tqdm": True,
    "logging_steps": 1,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    directory = save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-llama"), "llama")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = "[SEP]"
    tokenizer.save_pretrained(directory)
    return directory


def _sft(checkpoint: str, tmp_path, dataset: Dataset, **config) -> trl.SFTTrainer:
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        **COMMON,
        max_length=32,
        **config,
    )
    torch.manual_seed(0)
    return trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(checkpoint),
        args=args,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(checkpoint),
        peft_config=AdaLinkPeftConfig(rank=4, task_type="CAUSAL_LM"),
    )


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_sft_trains_saves_and_reloads_equal_to_adalinks_wrapper(checkpoint, tmp_path):
    dataset = Dataset.from_list([{"prompt": p, "completion": " " + c} for p, c in PAIRS])
    trainer = _sft(checkpoint, tmp_path, dataset)
    frozen = {n: p.detach().clone() for n, p in trainer.model.get_base_model().named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 3
    assert all(torch.equal(p, frozen[n]) for n, p in trainer.model.get_base_model().named_parameters())
    assert peft_banks(trainer.model)[0].up.abs().sum() > 0
    trainer.save_model(str(tmp_path / "adapter"))
    reloaded = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(checkpoint), tmp_path / "adapter")
    peft_to_adalink({"default": tmp_path / "adapter"}, tmp_path / "adalink")
    ours = adalink.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(checkpoint), tmp_path / "adalink")
    ids = torch.randint(5, 40, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_logits(reloaded, ids), _logits(ours, ids), rtol=0, atol=0)
    torch.testing.assert_close(_logits(reloaded, ids), _logits(trainer.model, ids), rtol=0, atol=0)


def test_sft_chat_messages_with_assistant_only_loss_and_packing(checkpoint, tmp_path):
    rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": c}]} for p, c in PAIRS]
    trainer = _sft(checkpoint, tmp_path, Dataset.from_list(rows), assistant_only_loss=True, packing=True)
    example = trainer.train_dataset[0]
    assert len(example["seq_lengths"]) > 1  # several conversations packed into one row
    answered = [label != -100 for label in example["labels"]]
    assert 0 < sum(answered) < len(answered) / 2  # the loss covers the assistant turns only
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(loss == loss for loss in losses)


def test_dpo_on_a_tiny_preference_set(checkpoint, tmp_path):
    rows = [{"prompt": p, "chosen": " " + c, "rejected": " " + PAIRS[(i + 1) % 4][1]} for i, (p, c) in enumerate(PAIRS)]
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=5,
        per_device_train_batch_size=16,
        learning_rate=5e-2,
        **COMMON,
        max_length=32,
    )
    torch.manual_seed(0)
    trainer = trl.DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(checkpoint),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(checkpoint),
        peft_config=AdaLinkPeftConfig(rank=4, task_type="CAUSAL_LM"),
    )
    trainer.train()
    margins = [entry["rewards/margins"] for entry in trainer.state.log_history if "rewards/margins" in entry]
    assert len(margins) == 5 and margins[0] == 0.0  # the reference (adapter disabled) equals the policy at start
    assert margins[-1] > 0  # the same 16 pairs each step: the policy learnt to prefer the chosen answers
    assert peft_banks(trainer.model)[0].up.abs().sum() > 0


class _Classes(torch.utils.data.Dataset):
    def __init__(self, size: int = 64) -> None:
        self.ids = torch.randint(5, 90, (size, 12), generator=torch.Generator().manual_seed(0))
        self.labels = (self.ids[:, 0] > 47).long()  # learnable from the first token

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def test_transformers_trainer_on_classification(tmp_path):
    model = peft.get_peft_model(build("bert"), AdaLinkPeftConfig(rank=4, dropout=0.0, task_type="SEQ_CLS"))
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=20, learning_rate=5e-2, **COMMON
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Classes())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0], losses
    model.save_pretrained(tmp_path / "adapter")
    reloaded = peft.PeftModel.from_pretrained(build("bert"), tmp_path / "adapter")
    ids = _Classes().ids[:4]
    torch.testing.assert_close(_logits(reloaded, ids), _logits(model, ids), rtol=0, atol=0)
