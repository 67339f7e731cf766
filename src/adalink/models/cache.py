"""A crash- and race-safe directory cache: build into a temporary sibling, mark it complete last, rename it into place.

adalink builds some directories once and reuses them: the converted SmolLM2 checkpoint
(:mod:`adalink.models.smollm2`) and the stage-1 VLM (:mod:`adalink.vision.pretrain`). :func:`materialise` makes such
a directory: ``build(out_dir)`` fills a temporary sibling ``.<name>.tmp-<host>-<pid>-<random>``, every file is
flushed to disk, a marker (:data:`MARKER_NAME`) listing each file with its size and recording the source file is
written last, and the sibling is renamed into place. A directory without a valid marker (a killed build, a changed
source file) is never used; a process that loses a race keeps the winner's directory and discards its own; temporary
directories of dead processes are removed by the next build.

:func:`replace_directory` is the same write without a marker, for directories that are rewritten as a whole
(``TinyVLM.save_pretrained``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RunFailedError
from ..io import file_sha256, fsync_path

__all__ = ["MARKER_NAME", "default_cache_dir", "is_complete", "materialise", "replace_directory"]

#: Written last into a finished directory; a directory without it (or with one that does not match) is not used.
MARKER_NAME = ".adalink-complete"
_MARKER_FORMAT = 1

# Temporary and set-aside directories older than this are removed even when their owner cannot be checked.
_STALE_AFTER_S = 24 * 3600


def default_cache_dir() -> Path:
    """Return where adalink keeps the directories it builds once (converted checkpoints, the stage-1 VLM).

    Returns:
        ``$ADALINK_CACHE`` if that is set and not empty, else ``~/.cache/adalink``.
    """
    configured = os.environ.get("ADALINK_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "adalink"


def is_complete(target: Path, source: Path | None = None) -> bool:
    """Whether ``target`` is a finished build from ``source`` (from any source if ``source`` is None).

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
        return recorded["mtime_ns"] == stat.st_mtime_ns or recorded["sha256"] == file_sha256(source)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def materialise(
    target: Path, build: Callable[[Path], None], *, source: Path, announce: str, what: str = "the directory"
) -> Path:
    """Make ``target`` a finished build from ``source``, building it into a temporary sibling that is renamed in.

    Args:
        target: The final directory; returned at once if it is already complete for ``source``.
        build: ``build(out_dir)`` fills the empty directory ``out_dir`` (which must end up holding ``config.json``).
        source: The file built from, recorded in the marker: a changed source means building anew.
        announce: Printed to stderr before building (e.g. what is built and how long it takes).
        what: Names the directory in the error raised when it cannot be moved into place.

    Returns:
        ``target``, complete (built here or by a concurrent process).
    """
    if is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    _log(announce)
    temp = _temporary_sibling(target)
    try:
        build(temp)
        _finish(temp, source)
        return _rename_into_place(temp, target, source, what=what)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def replace_directory(target: Path, build: Callable[[Path], None]) -> Path:
    """Atomically (re)write ``target``: ``build(out_dir)`` fills a temporary sibling, which is flushed and renamed in.

    An existing ``target`` is moved aside first and deleted afterwards, so a crash leaves the old directory, the new
    one or (between the two renames) none, never a mixture. No marker is written.

    Returns:
        ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    temp = _temporary_sibling(target)
    try:
        build(temp)
        for path in sorted(temp.rglob("*")):
            if path.is_file():
                fsync_path(path)
        fsync_path(temp)
        aside = _aside(target) if target.exists() else None
        if aside is not None:
            os.rename(target, aside)
        os.rename(temp, target)
        fsync_path(target.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return target
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------------
# Temporary siblings, the marker and the rename


def _log(message: str) -> None:
    print(f"adalink: {message}", file=sys.stderr, flush=True)


def _host_tag() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _temporary_sibling(target: Path) -> Path:
    """A new empty directory beside ``target`` whose name tells which host and process own it."""
    temp = target.parent / f".{target.name}.tmp-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    temp.mkdir()  # not tempfile.mkdtemp: its 0700 mode would make a shared cache unreadable to others
    return temp


def _aside(target: Path) -> Path:
    """Where an outdated ``target`` is moved before it is deleted (garbage for :func:`_remove_leftovers`)."""
    return target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"


def _source_record(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(source)}


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
            fsync_path(path)
            files[path.relative_to(directory).as_posix()] = path.stat().st_size
    marker = {"format": _MARKER_FORMAT, "source": _source_record(source), "files": files}
    from transformers import __version__ as transformers_version

    marker["transformers"] = transformers_version
    marker_path = directory / MARKER_NAME
    with open(marker_path, "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_path(directory)


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
    """Remove temporary directories of dead builds and set-aside stale targets (never the target itself)."""
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
            fsync_path(target.parent)
            return target
        except OSError:
            if is_complete(target, source):  # a concurrent build won: keep its directory, drop ours
                _log(f"another process finished {target} first; using it")
                return target
            if not target.exists():
                continue
            aside = _aside(target)
            try:  # an unfinished or outdated target: move it out of the way, then retry the rename
                os.rename(target, aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
    raise RunFailedError(f"Could not move {what} into {target}.")
