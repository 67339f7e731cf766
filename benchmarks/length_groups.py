"""Serving a mixed-length batch: one forward pass padded to the longest example vs `adalink serve`'s length groups.

A classification server batches whatever arrives together: here 31 tweets and one BBC article (tasks of one
AdaLink stack, MiniLM, up to 512 tokens). Padded as one batch, every tweet costs as many tokens as the article;
``adalink.serve.padding.length_groups`` splits the batch into sub-batches of similar length (one forward pass each).
Both contenders give the same outputs (checked); the ratio is throughput, higher = better.

    python benchmarks/length_groups.py [--tweets 31 --articles 1 --rounds 7 --iters 3] [--json] [--json-out FILE]
"""

from __future__ import annotations

import torch
from _common import alternate, base_parser, emit, minilm_path, ratio, setup_threads


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=31)
    parser.add_argument("--articles", type=int, default=1)
    args = parser.parse_args()
    setup_threads(args.threads)
    from transformers import AutoModel, AutoTokenizer

    from adalink import AdaLinkConfig, get_peft_model
    from adalink.data import load_text_task
    from adalink.serve.padding import length_groups

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = get_peft_model(AutoModel.from_pretrained(minilm_path()), AdaLinkConfig(rank=8, tasks=["t", "b"])).eval()
    texts = [e.text for e in load_text_task("tweets").test[: args.tweets]]
    texts += [e.text for e in load_text_task("bbc").test[: args.articles]]
    task_ids = torch.tensor([0] * args.tweets + [1] * args.articles)
    rows = [tokenizer(text, truncation=True, max_length=512) for text in texts]
    lengths = [len(row["input_ids"]) for row in rows]
    groups = length_groups(lengths)

    def run(indices: list[int]) -> torch.Tensor:
        batch = tokenizer.pad([rows[i] for i in indices], padding=True, return_tensors="pt")
        return model(**batch, task=task_ids[indices]).last_hidden_state[:, 0]

    contenders = {
        "one_padded_batch": lambda: run(list(range(len(rows)))),
        "length_groups": lambda: [run(g) for g in groups],
    }
    with torch.inference_mode():
        together = run(list(range(len(rows))))
        grouped = torch.empty_like(together)
        for group in groups:
            grouped[group] = run(group)
        check = float((together - grouped).abs().max())
        times = alternate(contenders, args.rounds, args.iters)
    emit(
        {
            "script": "length_groups",
            "lengths": {"min": min(lengths), "max": max(lengths), "total": sum(lengths)},
            "padded_tokens": {
                "one_padded_batch": len(rows) * max(lengths),
                "length_groups": sum(len(g) * max(lengths[i] for i in g) for g in groups),
            },
            "groups": [len(g) for g in groups],
            "outputs_max_abs_diff": check,
            "rounds": args.rounds,
            "iters": args.iters,
            "rows": [
                {"contender": name, "speed_vs_one_padded_batch": ratio(times, name, "one_padded_batch")}
                for name in times
            ],
        },
        args,
    )


if __name__ == "__main__":
    main()
