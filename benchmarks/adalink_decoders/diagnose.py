"""One diagnosis run of issue 26 step 1: `adalink train` in-process, instrumented, written as one JSON file.

    python benchmarks/adalink_decoders/diagnose.py NAME -- <adalink train options>

Runs exactly what ``adalink train <options>`` runs (same parser, same ``train``), and records per optimiser step:
the training loss, the learning rate and, for AdaLink, ``‖ΔE‖/‖E‖`` over a fixed probe of real token embeddings
(the embedding rows of the first 2,048 token ids of the task's training prompts, with ``ΔE = E·W_down·W_up``, dropout
off) plus the norms of ``W_down`` / ``W_up``. The result goes to
``benchmarks/results/adalink-decoders/diagnosis/NAME.json`` with the full command, the resolved options, the commit,
the seed, the run's ``metrics.json`` (final score, losses, parameter counts) and the wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
# $RESULTS_DIR: where the run's JSON goes (the study's runs: benchmarks/results/adalink-decoders/study)
RESULTS = Path(os.environ.get("RESULTS_DIR") or ROOT / "benchmarks" / "results" / "adalink-decoders" / "diagnosis")


def commit_stamp() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True).stdout
    return head + ("+dirty-src" if dirty.strip() else "")


def _banks(model: torch.nn.Module) -> list:
    from adalink.methods.adalink.bank import AdaLinkBank

    return [m for m in model.modules() if isinstance(m, AdaLinkBank)]


def _probe(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    """Rows of the (frozen) input embedding for real tokens: the embedding module's output, as AdaLink sees it."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= 2048:
            break
    emb = model.get_input_embeddings()
    with torch.no_grad():
        # call the embedding module with hooks off: its plain output (scaled where the model's embedding scales)
        return torch.nn.functional.embedding(torch.tensor(ids[:2048]), emb.weight) * getattr(emb, "embed_scale", 1.0)


def main() -> None:
    name = sys.argv[1]
    assert sys.argv[2] == "--", "usage: diagnose.py NAME -- <adalink train options>"
    train_argv = sys.argv[3:]
    from adalink import cli
    from adalink.training import loop
    from adalink.training.config_file import resolve_args

    namespace = cli._parser().parse_args(["train", *train_argv])
    args = resolve_args(namespace)
    record: dict = {
        "name": name,
        "command": "adalink train " + " ".join(train_argv),
        "argv": sys.argv,
        "args": asdict(args),
        "commit": commit_stamp(),
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "steps": [],
    }
    state: dict = {}
    original_report = loop._report_step
    original_build = loop._build

    def build(args_, datasets):
        run = original_build(args_, datasets)
        model = run.model
        state["banks"] = _banks(model)
        if state["banks"]:
            tok = run.setup.tokenizer if hasattr(run.setup, "tokenizer") else None
            texts = _texts(datasets)
            if tok is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(run.setup.model_path)
            state["probe"] = _probe(model, tok, texts)
            record["probe_tokens"] = int(state["probe"].shape[0])
            record["probe_rms"] = float(state["probe"].pow(2).mean().sqrt())
            record["embedding_table_rms"] = float(model.get_input_embeddings().weight.detach().pow(2).mean().sqrt())
            bank = state["banks"][0]
            record["w_down_init_rms"] = float(bank.down.detach().pow(2).mean().sqrt())
        return run

    def report(accelerator, run, totals, progress):
        entry = {
            "step": totals.step,
            "loss": totals.history[-1],
            "lr": float(run.scheduler.get_last_lr()[0]),
            "seconds": round(totals.seconds, 2),
        }
        if state.get("banks"):
            bank = state["banks"][0]
            with torch.no_grad():
                probe = state["probe"]
                delta = probe @ bank.down[0].detach() @ bank.up[0].detach()
                entry["rel_delta_e"] = float(delta.norm() / probe.norm())
                entry["w_up_rms"] = float(bank.up.detach().pow(2).mean().sqrt())
                entry["w_down_rms"] = float(bank.down.detach().pow(2).mean().sqrt())
        record["steps"].append(entry)
        return original_report(accelerator, run, totals, progress)

    loop._report_step = report
    loop._build = build
    began = time.perf_counter()
    metrics = loop.train(args)
    record["wall_seconds"] = round(time.perf_counter() - began, 1)
    record["metrics"] = metrics
    record["args"] = asdict(args)  # as resolved by the run: the method's own rate where --lr was not given
    out = args.resolved_output_dir()
    record["adapter_bytes"] = sum(f.stat().st_size for f in out.glob("adapter_model*.safetensors"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {RESULTS / f'{name}.json'}: score {metrics['score']:.4f}, wall {record['wall_seconds']} s")


def _texts(datasets) -> list[str]:
    out: list[str] = []
    for d in datasets:
        train = d.train
        for i in range(min(len(train), 200)):
            item = train[i]
            if isinstance(item, dict):
                out.append(str(item.get("prompt") or item.get("text") or next(iter(item.values()))))
            else:
                out.append(str(getattr(item, "prompt", None) or getattr(item, "text", None) or item))
    return out


if __name__ == "__main__":
    main()
