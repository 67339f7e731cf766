"""A batch of 32 mixing 8 tasks: AdaLink's stacked per-task adapters vs the base model and vs peft's LoRA.

AdaLink routes a mixed batch with one gather of stacked per-task weights at the input (``W[task_ids]``, one
batched matmul); Hugging Face peft's LoRA mixed-adapter batch (``adapter_names=``) loops over the adapters and
runs each sub-batch separately in every adapted layer. Contenders on the same MiniLM weights and inputs:
the base model (one task, no adapter), AdaLink with one task for the whole batch, AdaLink mixed, peft LoRA
(q, v; r = 8) mixed and single, and adalink's own LoRA (stacked per task) mixed. Targets: AdaLink mixed >= 0.97x
the base model, >= 4x peft LoRA mixed.

    python benchmarks/mixed_batch.py [--batch 32 --tasks 8 --length 64] [--json] [--json-out FILE]
"""

from __future__ import annotations

import copy

import torch
from _common import alternate, base_parser, emit, minilm_path, profile_tables, ratio, setup_threads, text_batch


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Trained-looking, task-specific adapter weights (zero-initialised up-projections would hide nothing, but
    random ones make the outputs differ per task, which the correctness check below needs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--depth", type=int, default=1, help="depth multiple of MiniLM (random init above 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args()
    setup_threads(args.threads)
    from peft import LoraConfig
    from peft import get_peft_model as peft_get_peft_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from adalink import AdaLinkConfig, get_peft_model
    from adalink.methods.base import METHOD_CONFIGS

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if args.depth == 1:
        base = AutoModel.from_pretrained(path).eval()
    else:
        config = AutoConfig.from_pretrained(path)
        config.num_hidden_layers *= args.depth
        torch.manual_seed(0)
        base = AutoModel.from_config(config).eval()
    # on a GPU peft's per-adapter loop is a string of tiny kernel launches: where its mixed batch is slow
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base.to(device)
    batch = {k: v.to(device) for k, v in text_batch(tokenizer, args.batch, args.length).items()}
    names = [f"t{i}" for i in range(args.tasks)]
    task_ids = (torch.arange(args.batch) % args.tasks).to(device)  # (B,): every task in every batch
    adapter_names = [names[i] for i in task_ids.tolist()]

    adalink = get_peft_model(copy.deepcopy(base), AdaLinkConfig(rank=4, tasks=names)).eval()
    _randomise(adalink.adapter_modules, 1)
    peft_lora = peft_get_peft_model(
        copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]), adapter_name=names[0]
    )
    for name in names[1:]:
        peft_lora.add_adapter(name, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
    _randomise(torch.nn.ModuleList(m for n, m in peft_lora.named_modules() if n.endswith(("lora_A", "lora_B"))), 2)
    peft_lora.eval()
    contenders = {
        "base": lambda: base(**batch),
        "adalink_single": lambda: adalink(**batch, task=names[0]),
        "adalink_mixed": lambda: adalink(**batch, task=task_ids),
        "peft_lora_single": lambda: peft_lora(**batch),
        "peft_lora_mixed": lambda: peft_lora(**batch, adapter_names=adapter_names),
    }
    if "lora" in METHOD_CONFIGS and "tasks" in METHOD_CONFIGS["lora"].field_names():
        ours_lora = get_peft_model(copy.deepcopy(base), METHOD_CONFIGS["lora"](tasks=names)).eval()
        _randomise(ours_lora.adapter_modules, 3)
        contenders["adalink_lib_lora_mixed"] = lambda: ours_lora(**batch, task=task_ids)

    with torch.inference_mode():  # a mixed batch must equal each example run alone with its own task
        mixed = adalink(**batch, task=task_ids).last_hidden_state
        alone = torch.cat(
            [
                adalink(**{k: v[i : i + 1] for k, v in batch.items()}, task=adapter_names[i]).last_hidden_state
                for i in range(args.batch)
            ]
        )
        check = float((mixed - alone).abs().max())
        times = alternate(contenders, args.rounds, args.iters)
        if args.profile:
            profile_tables(contenders, args.profile)
    tokens = int(batch["attention_mask"].sum())
    rows = [
        {"contender": name, "tok_s": tokens / sorted(t)[len(t) // 2], "vs_base": ratio(times, name, "base")}
        for name, t in times.items()
    ]
    vs_base = ratio(times, "adalink_mixed", "base")
    vs_peft = ratio(times, "adalink_mixed", "peft_lora_mixed")
    summary = [
        {"comparison": "adalink mixed / base", "ratio": vs_base, "target": ">= 0.97", "met": vs_base >= 0.97},
        {
            "comparison": "adalink mixed / adalink single task",
            "ratio": ratio(times, "adalink_mixed", "adalink_single"),
            "target": "-",
            "met": "-",
        },
        {"comparison": "adalink mixed / peft LoRA mixed", "ratio": vs_peft, "target": ">= 4", "met": vs_peft >= 4},
    ]
    if "adalink_lib_lora_mixed" in times:
        summary.append(
            {
                "comparison": "adalink-lib LoRA mixed / peft LoRA mixed",
                "ratio": ratio(times, "adalink_lib_lora_mixed", "peft_lora_mixed"),
                "target": "-",
                "met": "-",
            }
        )
    emit(
        {
            "script": "mixed_batch",
            "batch": args.batch,
            "tasks": args.tasks,
            "length": args.length,
            "depth": base.config.num_hidden_layers,
            "device": str(device),
            "rounds": args.rounds,
            "iters": args.iters,
            "mixed_equals_one_by_one_max_abs_diff": check,
            "targets": summary,
            "rows": rows,
        },
        args,
    )


if __name__ == "__main__":
    main()
