"""adalink runs served on vLLM answer exactly what ``adalink predict`` answers (project issue 13, part 4).

1. Train (skipped when the run directory is already there, or give your own with ``--run``): one multi-task run
   ``adalink train --model smollm2-135m --task tweets,bbc --format text2text`` (one AdaLink per task) and a second
   run ``--task tweets3 --rank 4`` (another run, another rank, on the same server).
2. ``adalink predict`` on each run, for ``--per-task`` test texts of each of its tasks.
3. Export every task as a peft embedding LoRA and start vLLM's OpenAI-compatible server on them
   (:func:`adalink.serve.vllm_engine.launch_vllm`, with ``--vllm-python``).
4. Send every request at once through the ``openai`` client (this script re-runs itself with ``--client`` under the
   vLLM Python, where ``openai`` is installed), tasks mixed, and the same prompts again for the base model alone
   (``--base-requests``), so that batches mix LoRA and no-LoRA requests. Prompts go as token ids built by
   ``TextToTextFormat.prompt_ids``, the run's own code, so tokenisation cannot differ; greedy, ``max_tokens`` = the
   run's answer budget.
5. Compare token ids, not strings: each task request's token ids (vLLM's, a final end-of-sequence token dropped, as
   adalink keeps them) with those of adalink's own engine (``AdapterStack.complete``, what ``adalink serve`` runs:
   every task request in one mixed greedy batch), and each base request's with transformers' greedy ``generate`` on
   the base model (cut at the end-of-sequence token the same way); the finish reasons too. And the logprob vLLM
   reports for each token it chose (``logprobs=1``) against the reference model's logprob of that same token, given
   the prompt and vLLM's tokens before it (one forward pass, float32, log-softmax in float64): every one within
   ``--tolerance``. Prints N of N equal per group, the largest logprob difference, in how many task requests the
   adapters change the base model's tokens, and whether the adalink tokens decode to ``adalink predict``'s
   ``generated`` text (a check of the reference, not of vLLM); exits 1 on any difference.

    python benchmarks/vllm_serving.py --vllm-python ~/vllm-venv/bin/python --work-dir /tmp/vllm-serving
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_RUNS = {  # run name -> `adalink train` arguments (the model, format and budget are added)
    "tweets-bbc": ["--task", "tweets,bbc", "--rank", "8"],
    "tweets3": ["--task", "tweets3", "--rank", "4"],
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.client:
        return _client(args.client, args.url, args.out)
    started = time.monotonic()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    runs = {Path(r).name: Path(r) for r in args.run} or _train(work, args)
    cases = []
    for name, run in runs.items():
        cases += _task_cases(name, run, work, args.per_task)
    print(f"adalink predict: {len(cases)} answers from {len(runs)} runs", flush=True)
    from adalink.serve.vllm_engine import export_for_vllm

    deployment = export_for_vllm(runs, work / "export")
    cases += _base_cases(deployment, cases, args.base_requests)
    answers = _serve_and_ask(deployment, cases, work, args)
    references, eos = _references(runs, deployment, cases, answers)
    (work / "references.json").write_text(json.dumps({"cases": cases, "vllm": answers, "references": references}))
    ok = _report(cases, answers, references, eos, args.tolerance, deployment.base_model)
    print(f"total time {time.monotonic() - started:.0f} s; load average {os.getloadavg()}")
    return 0 if ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", default=os.environ.get("ADALINK_VLLM_PYTHON"), help="Python with vLLM")
    parser.add_argument("--work-dir", default="vllm-serving", help="runs, predictions, exports and logs go here")
    parser.add_argument("--run", action="append", default=[], help="an existing text-to-text run (repeatable)")
    parser.add_argument("--model", default="smollm2-135m", help="base model of the default runs")
    parser.add_argument("--max-steps", type=int, default=30, help="training steps of the default runs")
    parser.add_argument("--per-task", type=int, default=16, help="test texts per task")
    parser.add_argument("--base-requests", type=int, default=0, help="requests for the base model (0: every prompt)")
    parser.add_argument("--port", type=int, default=0, help="vLLM's port (0: a free one)")
    parser.add_argument(
        "--vllm-arg", action="append", default=[], help="extra vLLM argument (repeatable; e.g. --vllm-arg=--max-loras)"
    )
    parser.add_argument("--kv-cache-gib", default="2", help="VLLM_CPU_KVCACHE_SPACE when it is not set")
    parser.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest logprob difference to the reference called equal"
    )
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)  # internal: run as the openai client
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return parser


def _adalink(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "adalink", *args], check=True)


def _train(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    runs = {}
    for name, extra in DEFAULT_RUNS.items():
        out = work / "runs" / name
        if not (out / "run.json").is_file():
            budget = ["--max-steps", str(args.max_steps), "--max-length", "64", "--batch-size", "8", "--max-eval", "8"]
            _adalink("train", "--model", args.model, "--format", "text2text", *extra, *budget, "--output-dir", str(out))
        runs[name] = out
    return runs


def _texts(task: str, count: int) -> list[str]:
    from adalink.data import load_text_task

    return [example.text for example in load_text_task(task).test[:count]]


def _task_cases(name: str, run: Path, work: Path, per_task: int) -> list[dict[str, Any]]:
    """Requests for every task of ``run``, their prompt token ids and ``adalink predict``'s answers."""
    from adalink.runs.loading import setup_model
    from adalink.runs.reading import read_run
    from adalink.tasks.formats import TaskInfo, TextToTextFormat

    info = read_run(run)
    tasks = [TaskInfo(t["name"], tuple(t["label_names"])) for t in info["tasks"]]
    requests = [{"task": t.name, "text": text} for t in tasks for text in _texts(t.name, per_task)]
    source, predicted = work / f"{name}-requests.jsonl", work / f"{name}-predicted.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in requests))
    if not predicted.is_file() or len(predicted.read_text().splitlines()) != len(requests):
        _adalink("predict", "--adapter", str(run), "--input", str(source), "--output", str(predicted))
    answers = [json.loads(line) for line in predicted.read_text().splitlines()]
    setup = setup_model(info["model"], info["format"], tasks)  # the run's format and tokenizer, as predict builds them
    fmt, tokenizer = setup.fmt, setup.tokenizer
    assert isinstance(fmt, TextToTextFormat)
    names = [t.name for t in tasks]
    return [
        {
            "kind": "task",
            "run": name,
            "model": request["task"],
            "prompt": fmt.prompt_ids(tokenizer, names.index(request["task"]), request["text"], info["max_length"]),
            "max_tokens": fmt.max_new_tokens(tokenizer),
            "predicted": answer["generated"],
            "label": answer["label"],
        }
        for request, answer in zip(requests, answers, strict=True)
    ]


def _base_cases(deployment, cases: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` task prompts (0: all) again, for the base model alone (its reference: transformers, see
    :func:`_references`)."""
    count = count or len(cases)
    chosen = cases[:: max(1, len(cases) // count)][:count]
    return [{**case, "kind": "base", "run": "-", "model": deployment.base_name, "predicted": None} for case in chosen]


def _references(runs: dict[str, Path], deployment, cases, answers) -> tuple[list[dict[str, Any]], set[int]]:
    """Per case, the reference's greedy token ids and finish reason, and its logprobs of the tokens vLLM chose.

    Task requests: adalink's own engine (``AdapterStack.complete``, every task request in one mixed batch) and its
    model routed to the request's task. Base requests: transformers' ``generate`` and forward on the base model.
    Also the end-of-sequence ids that end a row (adalink's rule, :func:`adalink.serve.generation.kept_tokens`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adalink.serve import AdapterStack
    from adalink.serve.generation import eos_ids, kept_tokens

    stack = AdapterStack.from_runs({name: str(run) for name, run in runs.items()}, device="cpu")
    base = AutoModelForCausalLM.from_pretrained(deployment.base_model, dtype=torch.float32).eval()
    eos = eos_ids(base.generation_config.eos_token_id) | {
        AutoTokenizer.from_pretrained(deployment.base_model).eos_token_id
    }
    tasks = [i for i, case in enumerate(cases) if case["kind"] == "task"]
    own = stack.complete([(cases[i]["model"], cases[i]["prompt"], cases[i]["max_tokens"]) for i in tasks])
    greedy = dict(zip(tasks, own, strict=True))
    order = list(stack.tasks)
    references = []
    for i, (case, answer) in enumerate(zip(cases, answers, strict=True)):
        if case["kind"] == "task":
            routed = torch.tensor([order.index(case["model"])])
            completion = greedy[i]
            forward = lambda ids, routed=routed: stack.model(input_ids=ids, task=routed).logits  # noqa: E731
        else:
            with torch.no_grad():
                row = base.generate(torch.tensor([case["prompt"]]), max_new_tokens=case["max_tokens"], do_sample=False)
            completion = kept_tokens(row[0, len(case["prompt"]) :].tolist(), case["max_tokens"], eos)
            forward = lambda ids: base(input_ids=ids).logits  # noqa: E731
        references.append(
            {
                "token_ids": completion.token_ids,
                "finish_reason": completion.finish_reason,
                "logprobs": _chosen_logprobs(forward, case["prompt"], answer["token_ids"]),
            }
        )
    return references, eos


def _chosen_logprobs(forward, prompt: list[int], tokens: list[int]) -> list[float]:
    """The logprob of each of ``tokens`` given the prompt and the tokens before it: one forward pass, teacher-forced."""
    import torch

    if not tokens:
        return []
    with torch.inference_mode():
        logits = forward(torch.tensor([prompt + tokens]))[0, len(prompt) - 1 : -1].double()
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(tokens)[:, None])[:, 0].tolist()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_and_ask(deployment, cases: list[dict[str, Any]], work: Path, args) -> list[dict[str, Any]]:
    from adalink.serve.vllm_engine import launch_vllm, vllm_command, wait_for_vllm
    from adalink.serve.vllm_runtime import stop_process_group

    port = args.port or _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)}
    command = vllm_command(deployment, port=port, vllm_python=args.vllm_python, extra_args=args.vllm_arg)
    print("vLLM:", " ".join(command), flush=True)
    print(f"  (env VLLM_CPU_KVCACHE_SPACE={env['VLLM_CPU_KVCACHE_SPACE']}; log {work / 'vllm.log'})", flush=True)
    requests, responses = work / "client-requests.json", work / "client-responses.json"
    requests.write_text(json.dumps([{k: c[k] for k in ("model", "prompt", "max_tokens")} for c in cases]))
    with open(work / "vllm.log", "w") as log:
        started = time.monotonic()
        server = launch_vllm(
            deployment,
            port=port,
            vllm_python=args.vllm_python,
            extra_args=args.vllm_arg,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            served = wait_for_vllm(f"http://127.0.0.1:{port}", server, timeout=1800)
            print(f"vLLM ready in {time.monotonic() - started:.0f} s, serving {served}", flush=True)
            python = args.vllm_python or sys.executable
            client = [python, __file__, "--client", str(requests), "--url", f"http://127.0.0.1:{port}"]
            subprocess.run([*client, "--out", str(responses)], check=True)
        finally:
            stop_process_group(server)
    return json.loads(responses.read_text())


def _client(requests_file: str, url: str, out: str) -> int:
    """Runs under the vLLM Python: every request at once through the openai client, greedy."""
    from openai import AsyncOpenAI

    requests = json.loads(Path(requests_file).read_text())
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        response = await client.completions.create(
            model=request["model"],
            prompt=request["prompt"],
            max_tokens=request["max_tokens"],
            temperature=0,
            logprobs=1,
            extra_body={"return_token_ids": True},
        )
        choice = response.choices[0]
        return {
            "text": choice.text,
            "token_ids": (choice.model_extra or {}).get("token_ids"),
            "logprobs": choice.logprobs.token_logprobs,
            "finish_reason": choice.finish_reason,
        }

    async def ask_all() -> list[dict[str, Any]]:
        return await asyncio.gather(*(ask(r) for r in requests))

    started = time.monotonic()
    answers = asyncio.run(ask_all())
    print(f"openai client: {len(answers)} completions in {time.monotonic() - started:.1f} s", flush=True)
    Path(out).write_text(json.dumps(answers))
    return 0


def _compare(answer: dict[str, Any], reference: dict[str, Any], eos: set[int]) -> tuple[bool, float]:
    """Whether vLLM's token ids (a final end-of-sequence token dropped, as adalink keeps a row) and finish reason
    are the reference's, and the largest difference between their logprobs of vLLM's tokens."""
    ids = answer["token_ids"]
    ids = ids[:-1] if answer["finish_reason"] == "stop" and ids and ids[-1] in eos else ids
    same = ids == reference["token_ids"] and answer["finish_reason"] == reference["finish_reason"]
    gaps = [abs(a - b) for a, b in zip(answer["logprobs"], reference["logprobs"], strict=True)]
    return same, max(gaps, default=0.0)


def _report(cases, answers, references, eos: set[int], tolerance: float, base_model: str) -> bool:
    """Token ids (and finish reasons) equal, and every chosen token's logprob within ``tolerance``, per request."""
    from adalink.runs.loading import load_tokenizer

    groups: dict[str, list[bool]] = {}
    equal = within = 0
    largest = 0.0
    for case, answer, reference in zip(cases, answers, references, strict=True):
        same, gap = _compare(answer, reference, eos)
        largest = max(largest, gap)
        equal += same
        within += gap <= tolerance
        groups.setdefault(f"{case['kind']} {case['model']}", []).append(same)
        if not same or gap > tolerance:
            print(f"  DIFFERENT {case['model']}: vLLM {answer} vs {reference}")
    for group, same in groups.items():
        print(f"  {group:<24} token ids equal in {sum(same)} of {len(same)}")
    base = {tuple(c["prompt"]): r["token_ids"] for c, r in zip(cases, references, strict=True) if c["kind"] == "base"}
    tasks = [(c, r) for c, r in zip(cases, references, strict=True) if c["kind"] == "task"]
    changed = sum(r["token_ids"] != base[tuple(c["prompt"])] for c, r in tasks if tuple(c["prompt"]) in base)
    compared = sum(tuple(c["prompt"]) in base for c, _ in tasks)
    print(f"the adapters change the base model's tokens in {changed} of {compared} task requests")
    tokenizer = load_tokenizer(base_model)  # what `adalink predict` decodes with (the runs share this base)
    decoded = sum(tokenizer.decode(r["token_ids"], skip_special_tokens=True) == c["predicted"] for c, r in tasks)
    print(f"adalink's engine's tokens decode to `adalink predict`'s text in {decoded} of {len(tasks)} task requests")
    print(
        f"vLLM vs adalink's engine (task requests) and vs transformers (base requests): token ids equal in "
        f"{equal} of {len(cases)}; every chosen token's logprob within {tolerance:g} in {within} of {len(cases)} "
        f"(max logprob difference {largest:.1e})"
    )
    return equal == within == len(cases)


if __name__ == "__main__":
    sys.exit(main())
