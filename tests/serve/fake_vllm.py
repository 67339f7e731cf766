"""A stand-in for vLLM's OpenAI server, run as ``python fake_vllm.py -m vllm.entrypoints.openai.api_server ARGS``.

Like vLLM it starts child processes (an "engine" and a "worker" that ignores SIGTERM, so stopping must escalate),
serves ``/v1/models`` and ``/v1/completions`` (one greedy token with top logprobs; each task shifts the base's
logprobs, except the tasks named in ``FAKE_VLLM_IGNORED``, which answer the base's: a LoRA vLLM ignores), and writes
its own and its children's process ids to ``FAKE_VLLM_PIDS``. ``python fake_vllm.py -c CODE`` exits 0: vLLM is
"installed". Started without ``--lora-modules`` (``--fold``: one folded task per server), it serves its
``--served-model-name`` alone and writes its process ids to ``FAKE_VLLM_PIDS`` with ``-NAME`` before ``.json``.
``FAKE_VLLM_START_DELAY`` (seconds) delays answering, as vLLM's start-up does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.{}); time.sleep(600)"


def main() -> None:
    if sys.argv[1] == "-c":
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    parser.add_argument("--served-model-name")
    parser.add_argument("--lora-modules", nargs="+", default=[])  # none: a folded checkpoint (--fold)
    parser.add_argument("--kv-cache-memory-bytes", type=int)
    args, _ = parser.parse_known_args(sys.argv[3:])
    tasks = [module.split("=", 1)[0] for module in args.lora_modules]
    ignored = set(filter(None, os.environ.get("FAKE_VLLM_IGNORED", "").split(",")))
    children = [subprocess.Popen([sys.executable, "-c", CHILD.format(h)]) for h in ("SIG_DFL", "SIG_IGN")]
    if os.environ.get("FAKE_VLLM_PIDS"):  # ends in ".json"; one file per served name
        pids = os.environ["FAKE_VLLM_PIDS"]
        with open(pids if tasks else f"{pids[:-5]}-{args.served_model_name}.json", "w") as handle:
            json.dump([os.getpid(), *(c.pid for c in children)], handle)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send({"data": [{"id": name} for name in [args.served_model_name, *tasks]]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            shift = 0.0 if body["model"] == args.served_model_name or body["model"] in ignored else 0.5
            top = {"a": -0.2 - shift, "b": -1.9 + shift}
            answer = {"text": "a", "logprobs": {"top_logprobs": [top]}}
            self._send({"model": body["model"], "served_by": args.served_model_name, "choices": [answer]})

        def _send(self, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    time.sleep(float(os.environ.get("FAKE_VLLM_START_DELAY", "0")))  # a slow start, as vLLM's (minutes on a CPU)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
