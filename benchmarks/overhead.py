"""AdaLink's inference overhead: attached (hooks) and folded vs the frozen base model, at 1x, 2x and 4x depth.

AdaLink adapts only the input embeddings (Wang et al. §3.2), so its extra work is one (B, T, d)x(d, r)x(r, d)
product per call whatever the depth: its relative cost must shrink as the model deepens. Folded, it is the base
model with a different embedding table: indistinguishable. Models: the packaged MiniLM (6 layers, d = 384) and
random-init copies of its config with 12 and 24 layers. Targets: attached >= 0.99x, folded ~ 1.00x.

    python benchmarks/overhead.py [--batch 32 --length 64 --rounds 7 --iters 3] [--json] [--json-out FILE]
"""

from __future__ import annotations

import copy

import torch
from _common import alternate, base_parser, emit, minilm_path, profile_tables, ratio, setup_threads, text_batch


def _models(depth_factors: list[int]):
    from transformers import AutoConfig, AutoModel

    path = minilm_path()
    for factor in depth_factors:
        if factor == 1:
            model = AutoModel.from_pretrained(path)
        else:
            config = AutoConfig.from_pretrained(path)
            config.num_hidden_layers *= factor
            torch.manual_seed(0)
            model = AutoModel.from_config(config)
        yield f"minilm x{factor} ({model.config.num_hidden_layers} layers)", model.eval()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--depths", default="1,2,4", help="depth multiples of MiniLM")
    parser.add_argument("--rank", type=int, default=4, help="AdaLink rank")
    args = parser.parse_args()
    setup_threads(args.threads)
    from transformers import AutoTokenizer

    from adalink import AdaLinkConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batch = text_batch(tokenizer, args.batch, args.length)
    rows = []
    for name, base in _models([int(d) for d in args.depths.split(",")]):

        def adapted(model):
            peft_model = get_peft_model(copy.deepcopy(model), AdaLinkConfig(rank=args.rank)).eval()
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():  # trained-looking weights (a zero W_up would do the same work anyway)
                for p in peft_model.adapter_modules.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
            return peft_model

        attached = adapted(base)
        folded = adapted(base).merge_and_unload().eval()
        with torch.inference_mode():
            same = (attached(**batch).last_hidden_state - folded(**batch).last_hidden_state).abs().max().item()

            def call(model):
                return lambda: model(**batch)

            contenders = {"base": call(base), "attached": call(attached), "folded": call(folded)}
            times = alternate(contenders, args.rounds, args.iters)
            if args.profile:
                profile_tables(contenders, f"{args.profile}.{len(rows)}")
        tokens = int(batch["attention_mask"].sum())
        base_ms = 1000 * sorted(times["base"])[len(times["base"]) // 2]
        attached_ms = 1000 * sorted(times["attached"])[len(times["attached"]) // 2]
        rows.append(
            {
                "model": name,
                "base_tok_s": tokens / (base_ms / 1000),
                "attached_vs_base": ratio(times, "attached", "base"),
                "folded_vs_base": ratio(times, "folded", "base"),
                "extra_ms_attached": attached_ms - base_ms,
                "folded_max_abs_diff": same,
            }
        )
    worst = min(r["attached_vs_base"] for r in rows)
    worst_folded = min(r["folded_vs_base"] for r in rows)
    emit(
        {
            "script": "overhead",
            "batch": args.batch,
            "length": args.length,
            "rounds": args.rounds,
            "iters": args.iters,
            "rows": rows,
            "targets": [
                {"target": "attached >= 0.99x base (worst depth)", "value": worst, "met": worst >= 0.99},
                {"target": "folded ~ 1.00x base (worst depth)", "value": worst_folded, "met": worst_folded >= 0.99},
            ],
            "notes": [
                "Ratios are throughput ratios (base time / contender time) measured in the same round, median over "
                "rounds; extra_ms_attached is the median extra time per call, which should not grow with depth."
            ],
        },
        args,
    )


if __name__ == "__main__":
    main()
