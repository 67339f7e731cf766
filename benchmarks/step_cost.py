"""One method's training step on MiniLM (batch 16 x 64 tokens, one thread, AdamW) with the batch routed by a
task-id tensor, as ``adalink train`` routes it: seconds per step (mean of 4 after one warm-up step) and the step's
peak resident memory above the memory before the first timed step, as one JSON line.

Used to measure a code change side by side: run it alternately against two checkouts, e.g. the routing fix of
bd0683d (one-task tensors took the per-example gather path before it)::

    for m in mam prefix_tuning unipelt parallel adalink; do for r in 1 2; do
      PYTHONPATH=<checkout at 5f7cb3c>/src python benchmarks/step_cost.py $m before
      PYTHONPATH=<checkout at bd0683d>/src python benchmarks/step_cost.py $m after
    done; done >> results/perf/routing_fix_ab.jsonl
"""

from __future__ import annotations

import json
import sys
import time

import torch
from _common import minilm_path, text_batch
from train_cost import build

from adalink import PeftModel
from adalink.process_memory import peak_rss_bytes, release_free_memory, reset_peak_rss, rss_bytes


def main() -> None:
    method, label = sys.argv[1], sys.argv[2]
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    model, _ = build(method)
    batch = text_batch(AutoTokenizer.from_pretrained(minilm_path()), 16, 64)
    labels = torch.arange(16) % 2
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    routed = {"task": torch.zeros(16, dtype=torch.long)} if isinstance(model, PeftModel) else {}

    def step() -> None:
        model(**batch, labels=labels, **routed).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    release_free_memory()
    reset_peak_rss()
    before = rss_bytes()
    began = time.perf_counter()
    for _ in range(4):
        step()
    seconds = (time.perf_counter() - began) / 4
    peak = (peak_rss_bytes() - before) / 2**20
    print(json.dumps({"method": method, "code": label, "s_per_step": seconds, "step_peak_mib": peak}))


if __name__ == "__main__":
    main()
