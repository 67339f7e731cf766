"""The directory cache: its root, races between builders, atomic replacement (crashes: see test_smollm2.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from adalink.models.cache import default_cache_dir, is_complete, materialise, replace_directory

TARGET_NAME = "built"


class Builder:
    """Fills a directory like a converter would (``config.json`` and a note of who wrote it); counts its calls."""

    def __init__(self, tag: str = "fake"):
        self.calls = 0
        self.tag = tag

    def __call__(self, out_dir: Path) -> None:
        self.calls += 1
        (out_dir / "config.json").write_text("{}")
        (out_dir / "written_by.txt").write_text(self.tag)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "pkg" / "weights.bin"
    path.parent.mkdir()
    path.write_bytes(b"fake weights")
    return path


def _siblings(cache: Path) -> list[str]:
    return sorted(path.name for path in (cache / "models").iterdir())


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ADALINK_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("ADALINK_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "adalink"


def test_loser_of_a_race_keeps_the_winners_directory(tmp_path, source):
    target = tmp_path / "cache" / "models" / TARGET_NAME
    winner = Builder("winner")

    def slow_loser(out_dir):  # another process finishes while this one is still building
        materialise(target, winner, source=source, announce="building (winner)")
        Builder("loser")(out_dir)

    assert materialise(target, slow_loser, source=source, announce="building (loser)") == target
    assert (target / "written_by.txt").read_text() == "winner"
    assert _siblings(tmp_path / "cache") == [TARGET_NAME]


def test_concurrent_builds(tmp_path, source):
    target = tmp_path / "cache" / "models" / TARGET_NAME
    barrier = threading.Barrier(2)
    results: list[Path] = []
    errors: list[BaseException] = []

    def build(out_dir):
        Builder(threading.current_thread().name)(out_dir)
        barrier.wait(timeout=30)  # both have built before either publishes

    def run():
        try:
            results.append(materialise(target, build, source=source, announce="building"))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, name=f"worker{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [target, target]
    assert is_complete(target, source)
    assert (target / "written_by.txt").read_text() in {"worker0", "worker1"}
    assert _siblings(tmp_path / "cache") == [TARGET_NAME]


def test_replace_directory_swaps_the_whole_directory_or_nothing(tmp_path):
    target = tmp_path / "cache" / "models" / TARGET_NAME
    assert replace_directory(target, Builder("first")) == target
    (target / "only-in-first.txt").write_text("old")
    replace_directory(target, Builder("second"))
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "written_by.txt"]
    assert (target / "written_by.txt").read_text() == "second"
    assert not is_complete(target)  # no marker: a replaced directory is not a cache entry

    def broken(out_dir):
        Builder("third")(out_dir)
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        replace_directory(target, broken)
    assert (target / "written_by.txt").read_text() == "second"
    assert _siblings(tmp_path / "cache") == [TARGET_NAME]  # no temporary or set-aside directory left
