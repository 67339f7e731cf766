"""``adalink export``: a trained run's adapters as standard Hugging Face peft adapter directories."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import AdalinkError

__all__ = ["HELP", "add_arguments", "run"]

HELP = "write a run's adapter(s) in Hugging Face peft's own format (one directory per task)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, help="output directory of `adalink train`")
    parser.add_argument("--out", required=True, help="export root: the task 'default' here, any other task in OUT/TASK")
    parser.add_argument(
        "--task", action="extend", nargs="+", default=None, help="task(s) to export (repeatable; default: all)"
    )


def run(args: argparse.Namespace) -> int:
    from ..runs.export import export_run
    from ..training.early_checks import check_run_options

    try:
        run = check_run_options(args.adapter, tasks=args.task or ())  # before the run's base model loads
        directories = export_run(args.adapter, args.out, tasks=args.task)
    except AdalinkError as err:  # ExportError and the run's own errors; anything else keeps its traceback
        print(f"adalink export: error: {err}", file=sys.stderr)
        return 2
    for directory in directories:
        print(f"adalink export: wrote {directory}")
    note = _vllm_note(run)
    if note:
        print(f"adalink export: note: these adapters are exact in Hugging Face peft; for vLLM: {note}", file=sys.stderr)
    return 0


def _vllm_note(run: dict[str, Any]) -> str | None:
    """Where a generative run's base is a family vLLM does not serve an embedding LoRA for exactly, why and what
    works instead (an export to serve on vLLM would otherwise fail there, or silently answer as the base)."""
    if run.get("format") not in ("text2text", "sft"):
        return None
    from ..serve.vllm_families import family_refusal

    return family_refusal(os.path.realpath(run.get("model_path") or run["model"]))
