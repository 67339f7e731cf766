"""A PeftModel from get_peft_model trains under a plain transformers.Trainer (no adalink harness involved)."""

import torch
from transformers import Trainer, TrainingArguments

from adalink import AdaLinkConfig, get_peft_model
from tiny_models import build


class _Batches(torch.utils.data.Dataset):
    def __init__(self, size: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 90, (size, 12), generator=generator)
        self.labels = (self.ids[:, 0] > 47).long()  # learnable from the first token
        self.tasks = torch.arange(size) % 2

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i], "task": self.tasks[i]}


def test_plain_trainer_trains_only_adalink_with_per_example_tasks(tmp_path):
    base = build("bert")
    model = get_peft_model(base, AdaLinkConfig(rank=4, tasks=["a", "b"], dropout=0.0, modules_to_save=["classifier"]))
    frozen = {n: p.detach().clone() for n, p in base.named_parameters() if not n.startswith("classifier")}
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        max_steps=30,
        learning_rate=5e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=5,
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Batches())
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0], losses
    assert result.global_step == 30
    assert all(torch.equal(p, frozen[n]) for n, p in base.named_parameters() if n in frozen)
    assert model.adalink["text"].up.abs().sum() > 0
