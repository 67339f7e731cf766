"""``adalink serve``: load a base model once with every ``--adapter`` and serve all their tasks over HTTP."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING

from ..errors import AdalinkError, UsageError

if TYPE_CHECKING:
    from .adapter_stack import AdapterStack

__all__ = ["HELP", "add_arguments", "parse_adapters", "run"]

HELP = "serve the tasks of trained adapters over HTTP, mixed-task requests batched into one forward pass"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models.precision import DTYPES, QUANTIZATIONS
    from ..options import add_dataclass_options
    from .app import ServeSettings

    parser.add_argument(
        "--adapter",
        action="append",
        required=True,
        metavar="[NAME=]DIR",
        help="an `adalink train` output directory (repeat for more); its tasks become servable names",
    )
    parser.add_argument("--model", default=None, help="the base model (default: the one the adapters were trained on)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to finish requests on shutdown")
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=75.0,
        help="seconds an idle connection stays open; keep it above clients' and load balancers' idle timeouts",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--ignore-fingerprint", action="store_true", help="load adapters onto a different base")
    parser.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default=None,
        help="--engine adalink: dtype of the shared base's weights (default: the one the adapters trained on; "
        "adapters and heads stay float32)",
    )
    parser.add_argument(
        "--quantize",
        choices=list(QUANTIZATIONS),
        default=None,
        help="--engine adalink: quantize the base's linear layers, torchao int8 or bitsandbytes nf4 / int8-bnb "
        "(default: as the adapters trained)",
    )
    parser.add_argument(
        "--engine",
        choices=["adalink", "vllm"],
        default="adalink",
        help="adalink: this server (every format); vllm: export each task's adapter and start vLLM's OpenAI server "
        "on them, one model name per task (text-to-text runs on a decoder; see docs/vllm.md)",
    )
    parser.add_argument(
        "--fold",
        action="store_true",
        help="--engine vllm: fold each task into a plain checkpoint and serve it in a vLLM engine of its own, all "
        "behind this one endpoint (model = task): exact on every architecture vLLM runs, base speed, one engine's "
        "memory per task (see docs/vllm.md for when to prefer it)",
    )
    parser.add_argument(
        "--vllm-kv-cache-gib",
        type=float,
        default=None,
        help="--fold: KV cache of each engine in GiB (default: $VLLM_CPU_KVCACHE_SPACE, else 1); tasks x (this + "
        "the weights) must fit in the free memory",
    )
    parser.add_argument(
        "--vllm-python", default=None, help="--engine vllm: the Python that has vLLM (default: $ADALINK_VLLM_PYTHON)"
    )
    add_dataclass_options(parser, ServeSettings)


def parse_adapters(values: list[str]) -> dict[str, str]:
    """``DIR`` or ``NAME=DIR`` arguments -> directories, named where a name was given."""
    named: dict[str, str] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or os.path.isdir(value):  # a directory whose name holds "=" is still a directory
            name, directory = os.path.basename(os.path.normpath(value)), value
        if name in named:
            raise UsageError(f"--adapter: two adapters are named {name!r}; name one NAME=DIR.")
        named[name] = directory
    return named


def run(args: argparse.Namespace) -> int:
    if args.engine != "vllm" and (args.fold or args.vllm_kv_cache_gib is not None):
        print("adalink serve: error: --fold and --vllm-kv-cache-gib apply to --engine vllm only.", file=sys.stderr)
        return 2
    if args.vllm_kv_cache_gib is not None and not args.fold:  # the LoRA engine's cache: VLLM_CPU_KVCACHE_SPACE
        print("adalink serve: error: --vllm-kv-cache-gib applies to --fold (one engine per task).", file=sys.stderr)
        return 2
    if args.engine == "vllm":
        if args.dtype is not None or args.quantize is not None:
            print("adalink serve: error: --dtype and --quantize apply to --engine adalink only.", file=sys.stderr)
            return 2
        return _run_vllm(args)
    import torch

    from .adapter_stack import AdapterStack
    from .app import DrainingServer, ServeSettings, create_app

    settings = ServeSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings)})
    if settings.admin_token is None:  # from the environment: a token on the command line shows in `ps`
        settings.admin_token = os.environ.get("ADALINK_ADMIN_TOKEN") or None
    try:
        settings.validate()
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        adapters = parse_adapters(args.adapter)
        stack = AdapterStack.from_runs(
            adapters,
            model=args.model,
            device=args.device,
            ignore_fingerprint=args.ignore_fingerprint,
            dtype=args.dtype,
            quantize=args.quantize,
        )
    except AdalinkError as err:  # a refused setting, adapter or base; anything else keeps its traceback
        print(f"adalink serve: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    print(
        f"adalink serve: {stack.model_name} ({stack.format_name}, {_loading_text(stack)}) on {stack.device}, adapters "
        f"{', '.join(f'{a.name} -> {[t.name for t in a.tasks]}' for a in stack.adapters.values())}; "
        f"http://{args.host}:{args.port}",
        flush=True,
    )
    if settings.allow_unauthenticated_admin:
        print(
            "adalink serve: WARNING: --allow-unauthenticated-admin: anyone who can reach "
            f"{args.host}:{args.port} can add and remove adapters. Use --admin-token on any shared network.",
            file=sys.stderr,
            flush=True,
        )
    server = DrainingServer(
        create_app(stack, settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        timeout_graceful_shutdown=args.drain_timeout,
        timeout_keep_alive=args.keep_alive,
    )
    server.run()
    return 0


def _loading_text(stack: AdapterStack) -> str:
    loading = stack.loading
    return loading.dtype + ("" if loading.quantize == "none" else f", {loading.quantize}")


def _run_vllm(args: argparse.Namespace) -> int:
    """``--engine vllm``: export the runs, start vLLM's server, probe every adapter, then serve until it exits
    (``--fold``: :func:`adalink.serve.vllm_fold.serve_folded`, one engine per folded task).

    SIGTERM and SIGINT stop the server with its engine and worker processes, and the exported adapters (a
    temporary directory) are removed however it ends.
    """

    from .vllm_engine import check_vllm, export_for_vllm, launch_vllm, wait_for_vllm
    from .vllm_runtime import EngineProcesses, probe_adapters, run_engines

    if args.fold:
        from .vllm_fold import serve_folded

        try:
            adapters = parse_adapters(args.adapter)
        except AdalinkError as err:
            print(f"adalink serve: error: {err}", file=sys.stderr)
            return 2
        return serve_folded(
            adapters,
            host=args.host,
            port=args.port,
            vllm_python=args.vllm_python,
            kv_cache_gib=args.vllm_kv_cache_gib,
            log_level=args.log_level,
            access_log=not args.no_access_log,
            max_body_bytes=args.max_body_bytes,
        )
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::', '') else args.host}:{args.port}"

    def serve(owned: EngineProcesses) -> int:
        check_vllm(args.vllm_python)
        deployment = export_for_vllm(parse_adapters(args.adapter), owned.directory)
        process = launch_vllm(deployment, host=args.host, port=args.port, vllm_python=args.vllm_python)
        owned.processes["vllm"] = process
        wait_for_vllm(url, process)
        probe_adapters(url, deployment)
        print(f"adalink serve: vLLM ready at {url}: {', '.join(t.name for t in deployment.tasks)}", flush=True)
        return process.wait()

    return run_engines("adalink-vllm-", serve, engines_name="vLLM")
