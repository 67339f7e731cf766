"""For tests/serve: runs made by the real `adalink train` on tiny local models, and uvicorn in a thread.

The training is only a few steps, so each run's AdaLink is then given large task-specific weights: a request routed
to the wrong task's adapter gives a visibly different answer.
"""

from __future__ import annotations

import contextlib
import csv
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from adalink.cli import main
from adalink.io import read_adapter, write_adapter
from tiny_models import WORDS, save_tiny_checkpoint, write_sentiment_csv

TOPICS = ("food", "movie", "service")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, so that concurrent test processes (pytest-xdist workers) never share one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_topic_csv(path: Path, rows: int = 120, seed: int = 1) -> str:
    rng = random.Random(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            topic = TOPICS[i % 3]
            writer.writerow([" ".join([*rng.sample(WORDS[:10], 2), topic, str(i)]), topic])
    return str(path)


def rewrite_adapter(directory: Path, document: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Save edited adapter tensors (and config document) as a valid adapter directory."""
    metadata = {k: v for k, v in document.items() if k not in ("format", "format_version", "weights_sha256")}
    write_adapter(directory, tensors, metadata)


def perturb(directory: Path, seed: int, scale: float = 0.5) -> None:
    """Give a run's adapter large random task weights (W_up is ~0 after a few steps) and its head visible ones."""
    document, tensors = read_adapter(directory)
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in tensors.items():  # the adapter, and the classification head (near its init after 2 steps)
        if name.startswith("adalink.") or name == "modules_to_save.classifier.weight":
            tensors[name] = tensor + torch.randn(tensor.shape, generator=generator) * scale
    rewrite_adapter(directory, document, tensors)


def train_run(model: str, data: str, out: Path, *, rank: int, seed: int) -> Path:
    args = ["train", "--model", model, "--train-file", data, "--rank", str(rank), "--max-steps", "2"]
    args += ["--batch-size", "8", "--max-eval", "4", "--save-every", "100", "--seed", str(seed)]
    assert main([*args, "--output-dir", str(out)]) == 0
    perturb(out, seed)
    return out


def make_runs(root: Path, kind: str) -> dict[str, Path]:
    """A tiny checkpoint and two runs on it: `sentiment` (rank 4) and `topic` (rank 8, so it is zero-padded)."""
    model = save_tiny_checkpoint(root / f"tiny-{kind}", kind)
    sentiment = write_sentiment_csv(root / "sentiment.csv", rows=120)
    topic = write_topic_csv(root / "topic.csv")
    return {
        "model": Path(model),
        "sentiment": train_run(model, sentiment, root / "sentiment", rank=4, seed=1),
        "topic": train_run(model, topic, root / "topic", rank=8, seed=2),
    }


# ------------------------------------------------------------------------- a stand-in for vLLM (fake_vllm.py)
FAKE_VLLM = Path(__file__).parent / "serve" / "fake_vllm.py"


def fake_vllm_python(directory: Path) -> str:
    """An executable that runs fake_vllm.py with this Python, as ``--vllm-python`` runs vLLM's Python."""
    wrapper = directory / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_VLLM}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` and a new server can bind it (as servers do, through TIME_WAIT connections)."""
    with socket.socket() as client:
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def copy_with_chat_template(model: Path, out: Path) -> Path:
    """A copy of checkpoint ``model`` (same weights, so its runs' fingerprints match) whose tokenizer has a chat
    template, as an instruction-tuned model's has."""
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(model, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return out


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port; yields the base URL, drains and stops on exit."""
    from adalink.serve.app import DrainingServer

    server = DrainingServer(app, host="127.0.0.1", port=0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)
