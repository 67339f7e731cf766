"""Fine-tune on your own prompts: each method at its own default rate, on a small prompt/response file, as a user would.

Writes ``train.jsonl`` (``--rows`` rows of ``{"prompt", "response"}``, the first of the packaged headlines task's
train split) and ``eval.jsonl`` (``--eval-rows`` of its validation split; ``adalink train`` splits an eval file 50/50
into validation and test), then for each method runs

    adalink train --model smollm2-135m --format sft --train-file train.jsonl --eval-file eval.jsonl \\
        --task-name own-prompts --method METHOD --max-steps STEPS --output-dir OUT/METHOD

at every other default (the method's own learning rate, batch 16 x 64 tokens), scores the base model once with
``adalink eval --base-only``, and writes ``OUT/results.json`` (per method: rate, steps, the mean loss of the first and
last 10 steps, test ROUGE-L, seconds, the first test answers; what the commands wrote to stderr), ``OUT/loss.png``
(the per-step losses) and ``OUT/table.md`` (the table docs/sft-own-prompts.md shows). Methods already in
``OUT/results.json`` at the same steps, model and rows are kept, not run again, so a second call with other
``--methods`` adds to the table.
docs/sft-own-prompts.md reports two calls of it (the second adds two methods to the first's results):

    python examples/sft_own_prompts.py --methods adalink,lora --max-steps 30 --out outputs/sft_own_prompts
    python examples/sft_own_prompts.py --methods prompt_tuning,ia3 --max-steps 30 --out outputs/sft_own_prompts
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from adalink.data.generation import load_generation_task

TASK_NAME = "own-prompts"
STDERR: list[str] = []  # what the adalink commands wrote to stderr


def write_rows(out: Path, rows: int, eval_rows: int) -> tuple[Path, Path]:
    """``train.jsonl`` and ``eval.jsonl``: prompt/response rows from the packaged headlines task."""
    data = load_generation_task("headlines")
    files = []
    for name, split, count in (("train", data.train, rows), ("eval", data.validation, eval_rows)):
        path = out / f"{name}.jsonl"
        lines = [json.dumps({"prompt": e.prompt, "response": e.response}) for e in split[:count]]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    return files[0], files[1]


def adalink(*args: str) -> subprocess.CompletedProcess:
    """``adalink ARGS`` in a fresh process, as a user runs it (progress bars off); stops the script with its stderr
    if it fails. Whatever else it writes to stderr is kept in ``STDERR`` (a working run writes nothing there)."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-m", "adalink.cli", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"adalink {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    STDERR.extend(f"adalink {args[0]}: {line}" for line in done.stderr.splitlines())
    return done


def train_one(method: str, files: tuple[Path, Path], out: Path, args: argparse.Namespace) -> dict:
    run = out / method
    start = time.perf_counter()
    adalink(
        *("train", "--model", args.model, "--format", "sft", "--task-name", TASK_NAME, "--method", method),
        *("--train-file", str(files[0]), "--eval-file", str(files[1]), "--max-steps", str(args.max_steps)),
        *("--output-dir", str(run), "--seed", str(args.seed)),
    )
    seconds = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    answers = run / "answers.jsonl"
    prompts = [json.loads(line) for line in files[1].read_text().splitlines()]
    requests = out / "requests.jsonl"
    requests.write_text("".join(json.dumps({"prompt": p["prompt"]}) + "\n" for p in prompts[: args.answers]))
    adalink("predict", "--adapter", str(run), "--input", str(requests), "--output", str(answers))
    return {
        "lr": json.loads((run / "run.json").read_text())["args"]["lr"],  # the method's default, as resolved
        "steps": metrics["steps"],
        "loss_first_10": metrics["initial_loss"],
        "loss_last_10": metrics["final_loss"],
        "losses": metrics["losses"],
        "rouge_l": metrics["per_task"][TASK_NAME],
        "trainable_params": metrics["trainable_params"],
        "seconds": round(seconds, 1),
        "answers": [
            {"expected": p["response"], "generated": json.loads(line)["generated"]}
            for p, line in zip(prompts, answers.read_text().splitlines(), strict=False)
        ],
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4))
    for method, row in results["methods"].items():
        axes.plot(range(1, len(row["losses"]) + 1), row["losses"], label=f"{method} (lr {row['lr']:g})")
    axes.set_xlabel("step")
    axes.set_ylabel("training loss (mean over the batch)")
    axes.set_ylim(bottom=0)
    axes.set_title(f"{results['rows']} own prompt/response rows, smollm2-135m, --format sft", fontsize=10)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown(results: dict) -> str:
    """The table docs/sft-own-prompts.md quotes: one row per method, then the base model."""
    lines = [
        "| method | default rate | steps | mean loss, first 10 steps | mean loss, last 10 | test ROUGE-L | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, row in results["methods"].items():
        lines.append(
            f"| {method} | {row['lr']:g} | {row['steps']} | {row['loss_first_10']:.3f} | {row['loss_last_10']:.3f} "
            f"| {row['rouge_l']:.4f} | {row['seconds']:.0f} |"
        )
    lines.append(f"| base model (no training) | | | | | {results['base_rouge_l']:.4f} | |")
    return "\n".join(lines) + "\n"


def _earlier(path: Path, setting: dict, steps: int) -> dict | None:
    """The results already in ``path`` for the same model and rows, keeping the methods trained for ``steps`` steps
    (a later call adds methods to them); None where there are none."""
    if not path.is_file():
        return None
    earlier = json.loads(path.read_text())
    if any(earlier.get(key) != value for key, value in setting.items()):
        return None
    earlier["methods"] = {m: row for m, row in earlier["methods"].items() if row["steps"] == steps}
    if "command" in earlier:  # written before several calls were recorded
        earlier["commands"] = [{"command": earlier.pop("command"), "threads": earlier.pop("threads", None)}]
    return earlier


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="adalink,lora", help="comma-separated methods, each at its defaults")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--rows", type=int, default=60, help="training rows")
    parser.add_argument("--eval-rows", type=int, default=20, help="eval rows: half validation, half test")
    parser.add_argument("--answers", type=int, default=3, help="test prompts whose answers are kept in the JSON")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/sft_own_prompts")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = write_rows(out, args.rows, args.eval_rows)
    command = "python examples/sft_own_prompts.py " + " ".join(argv if argv is not None else sys.argv[1:])
    setting = {"model": args.model, "rows": args.rows, "eval_rows": args.eval_rows}
    results = _earlier(out / "results.json", setting, args.max_steps) or {**setting, "commands": [], "methods": {}}
    results["commands"].append({"command": command, "threads": os.environ.get("OMP_NUM_THREADS")})
    for method in args.methods.split(","):
        if method in results["methods"]:
            print(f"{method}: kept from {out / 'results.json'}")
            continue
        row = results["methods"][method] = train_one(method, files, out, args)
        print(f"{method}: loss {row['loss_first_10']:.3f} -> {row['loss_last_10']:.3f}, ROUGE-L {row['rouge_l']:.4f}")
    if "base_rouge_l" not in results:
        base = adalink("eval", "--adapter", str(out / args.methods.split(",")[0]), "--base-only")
        results["base_rouge_l"] = json.loads(base.stdout)["per_task"][TASK_NAME]
    results["stderr"] = [*results.get("stderr", []), *STDERR]
    print(f"base model: ROUGE-L {results['base_rouge_l']:.4f}")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(markdown(results))
    plot(results, out / "loss.png")
    return results


if __name__ == "__main__":
    main()
