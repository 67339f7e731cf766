"""The ``adalink`` command line: ``train``, ``eval``, ``predict``, ``merge`` and the subsystems' commands.

Options of ``train`` are generated from the groups of :class:`adalink.training.args.TrainArgs` (one typed field, one
flag) and parsed by jsonargparse; with ``--config run.yaml`` they come from a file first and the flags given override it
(:mod:`adalink.training.config_file`).
``adalink train`` with no options runs the demo: AdaLink on the packaged MiniLM and packaged tweets.
Each other subsystem (``methods``, ``serve``, ``bench``, ``experiment``, ``export``) is a module with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``, listed in ``_SUBCOMMANDS``.
An :class:`adalink.AdalinkError` (a refusal: a bad option, a missing file, a run that diverged) is printed as
``adalink <command>: error: <message>`` with exit status 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import sys
from collections.abc import Sequence

from .errors import AdalinkError
from .logs import quiet_known_noise

__all__ = ["main"]

# subcommand -> the optional extra its imports need
_EXTRAS = {"serve": "serve", "bench": "bench", "experiment": "bench"}
# subcommand -> module providing HELP, add_arguments(parser) and run(args) -> int
_SUBCOMMANDS: dict[str, str] = {
    "bench": "adalink.bench.cli",
    "methods": "adalink.commands.methods",
    "serve": "adalink.serve.cli",
    "experiment": "adalink.experiments.cli",
    "export": "adalink.commands.export",
}


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``adalink``; of the commands whose options import torch or an extra, only ``command``'s options
    are built (all of them when it is ``None``: ``adalink --help``), so that a mistyped name is refused in a fraction
    of a second."""
    parser = argparse.ArgumentParser(prog="adalink", description="Non-intrusive parameter-efficient fine-tuning.")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show what other packages log on every run (their optional kernels, transformers' load report of "
        "the new heads adalink initialises itself); before the command, e.g. `adalink --verbose train`",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # its options are parsed by jsonargparse (adalink.training.config_file); `adalink train --help` lists them
    commands.add_parser("train", help="train a method on a model and task(s); no options = MiniLM demo", add_help=False)

    evaluate = commands.add_parser("eval", help="evaluate a trained run directory")
    evaluate.add_argument("--adapter", required=True, help="output directory of `adalink train`")
    evaluate.add_argument("--split", default="test", choices=["validation", "test"])
    evaluate.add_argument("--max-eval", type=int, default=None, help="first N examples per task")
    evaluate.add_argument("--model", default=None, help="load onto this base instead of the one the run used")
    evaluate.add_argument("--ignore-fingerprint", action="store_true", help="load onto a different base on purpose")
    evaluate.add_argument(
        "--base-only", action="store_true", help="score the base model with the adapter turned off (zero-shot)"
    )
    evaluate.add_argument(
        "--predictions",
        default=None,
        metavar="FILE",
        help="also write one JSON line per scored example to FILE (task, index, score, reference, prediction)",
    )

    predict = commands.add_parser("predict", help="predict labels for lines of text or JSONL")
    predict.add_argument("--adapter", required=True, help="output directory of `adalink train`")
    predict.add_argument(
        "--input",
        default="-",
        help="plain text lines, or JSON Lines: {text, task} for classification and text-to-text runs, {prompt, task} "
        "or {messages, task} for sft runs (task optional with one task); - = stdin",
    )
    predict.add_argument(
        "--output",
        default="-",
        help="JSON Lines, one per input: task, the input, and label with probabilities by label name (classification) "
        "or the generated text; - = stdout",
    )
    predict.add_argument("--task", default=None, help="task of lines that name none (default: the run's only task)")
    predict.add_argument("--batch-size", type=int, default=32)

    merge = commands.add_parser("merge", help="fold the adapter into a plain transformers checkpoint")
    merge.add_argument("--adapter", required=True, help="output directory of `adalink train`")
    merge.add_argument("--out", required=True, help="directory of the plain checkpoint")
    merge.add_argument("--task", default=None, help="the task to fold (needed when the run has several)")
    merge.add_argument(
        "--dtype",
        choices=_dtypes() if command in (None, "merge") else None,
        default=None,
        help="dtype of the saved checkpoint (default: the base checkpoint's own); the fold itself is float32",
    )

    for name, module_name in _SUBCOMMANDS.items():
        if command not in (None, name):  # its options are not needed to run another command
            commands.add_parser(name, add_help=False)
            continue
        try:
            module = importlib.import_module(module_name)
            options = argparse.ArgumentParser(add_help=False)
            module.add_arguments(options)  # may import the extra's packages
        except ImportError as err:  # an optional extra is not installed: train/eval/... must still work
            hint = f"needs {err.name or err}: pip install 'adalink[{_EXTRAS.get(name, name)}]'"
            missing = commands.add_parser(name, help=f"(not installed: {hint})")
            missing.set_defaults(unavailable=f"adalink {name} {hint}")
            continue
        commands.add_parser(name, help=module.HELP, description=module.HELP, parents=[options])
    return parser


def _dtypes() -> list[str]:
    from .models.precision import DTYPES  # imports torch

    return list(DTYPES)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = list(itertools.takewhile(lambda token: token.startswith("-"), argv))  # those before the command
    if "-v" not in options and "--verbose" not in options:
        quiet_known_noise()  # before anything imports the packages that log it
    command = argv[len(options)] if len(argv) > len(options) else None
    parser = _parser(command if command in (*_SUBCOMMANDS, "train", "eval", "predict", "merge") else None)
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "unavailable", None):
        print(f"adalink {args.command}: error: {args.unavailable}", file=sys.stderr)
        return 2
    if args.command == "train":
        args.train_argv = argv[len(options) + 1 :]  # everything after `train`
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return _run(args)
    except AdalinkError as err:  # a refusal with its reason; anything else is a bug and keeps its traceback
        print(f"adalink {args.command}: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in _SUBCOMMANDS:
        return importlib.import_module(_SUBCOMMANDS[args.command]).run(args)
    if args.command == "train":
        from .training.name_checks import check_names

        check_names(args.train_argv)  # --method and --task as given, in a fraction of a second: before torch imports
        from .training.config_file import parse_train_args

        options = parse_train_args(args.train_argv)
        options.validate()  # every option that needs no model or data, before the harness and accelerate import
        from .training.loop import train

        train(options)
        return 0
    from .training import artifacts
    from .training.early_checks import check_run_options

    tasks = [args.task] if args.command in ("predict", "merge") and args.task else []
    source = args.input if args.command == "predict" else None
    check_run_options(args.adapter, tasks=tasks, model=getattr(args, "model", None), source=source)
    if args.command == "eval":
        artifacts.evaluate_run(
            args.adapter,
            split=args.split,
            max_eval=args.max_eval,
            model=args.model,
            ignore_fingerprint=args.ignore_fingerprint,
            base_only=args.base_only,
            predictions=args.predictions,
        )
    elif args.command == "predict":
        artifacts.predict_run(args.adapter, args.input, args.output, default_task=args.task, batch_size=args.batch_size)
    else:
        artifacts.merge_run(args.adapter, args.out, task=args.task, dtype=args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
