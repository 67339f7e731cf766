"""Why prefix tuning at 3e-3 and above answers the majority class (BENCHMARKS.md, standard profile's note).

Prefix tuning (MLP re-parametrisation, the default) on the packaged MiniLM, trained with AdamW on tweets at batch 16
(the head at 1e-2, as in the bench), at each rate given: every 20 steps, the training loss and the spread across 256
validation tweets of what the classification head reads (the mean over features of their standard deviation). A
spread of 0 means every tweet gets the same features: the head can only learn the class prior.

    python benchmarks/prefix_collapse.py 3e-3 1e-4 [--steps 60]
"""

from __future__ import annotations

import argparse

import torch
from _common import SRC  # noqa: F401  (puts src/ on the path)

from adalink.data.text_tasks import load_text_task
from adalink.methods.prefix_tuning import PrefixTuningConfig
from adalink.peft_model import get_peft_model
from adalink.runs.loading import setup_model
from adalink.tasks.formats import TaskInfo
from adalink.training.args import OptimOptions
from adalink.training.optimizer import build_optimizer, head_parameter_ids


def spreads(rate: float, steps: int, every: int = 20) -> list[tuple[int, float, float]]:
    """(step, training loss, head-input spread) every ``every`` steps of training at ``rate``."""
    task = load_text_task("tweets")
    setup = setup_model("minilm", "classification", [TaskInfo("tweets", task.label_names)])

    def encode(examples):
        texts = [e.text for e in examples]
        return setup.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")

    torch.manual_seed(0)
    base = setup.build_base(seed=0)
    head_name = setup.fmt.head_modules(base)[0]
    model = get_peft_model(base, PrefixTuningConfig(tasks=["tweets"], modules_to_save=[head_name]))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = OptimOptions(lr=rate, head_lr=1e-2)  # the optimiser `adalink train` builds
    optimizer = build_optimizer(optim, trainable, head_parameter_ids(model, setup.fmt), lr=rate)
    seen: list[torch.Tensor] = []
    base.get_submodule(head_name).register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    validation = encode(task.validation[:256])
    rows = []
    for step in range(1, steps + 1):
        batch = task.train[(step - 1) * 16 : step * 16]
        model.train()
        logits = model(**encode(batch)).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([e.label for e in batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            with torch.no_grad():
                model.eval()(**validation)
            rows.append((step, loss.item(), seen[-1].std(0).mean().item()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rates", nargs="+", type=float, help="prefix learning rates")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for rate in args.rates:
        for step, loss, spread in spreads(rate, args.steps):
            print(f"lr {rate:g} step {step}: loss {loss:.3f}; head-input spread across tweets {spread:.4f}", flush=True)


if __name__ == "__main__":
    main()
