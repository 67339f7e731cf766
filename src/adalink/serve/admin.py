"""Changing the served adapters at run time: ``GET``/``POST /v1/adapters`` and ``DELETE /v1/adapters/{name}``.

Secure by default: both changes answer 403 unless the operator started the server with ``--admin-token`` (then
they need ``Authorization: Bearer TOKEN``, compared in constant time) or with ``--allow-unauthenticated-admin``.
``POST`` loads only run directories under ``--adapter-root``: a path that resolves outside it (``..``, an absolute
path elsewhere, a symlink out of it, or run files that are symlinks out of it) gets one answer whatever exists
there, so the API cannot be used to probe the server's file system.

``GET /v1/adapters`` answers anyone, but shows where the adapters lie on the server's disk only to a request with the
admin token: paths say how the server is laid out (users, mounts, checkpoints). Messages about a run under
``--adapter-root`` name it relative to that root, as the request did.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from ..io import CONFIG_NAME, WEIGHTS_NAME
from ..runs.reading import RUN_FILE
from .adapter_stack import AdapterStack
from .batcher import DynamicBatcher
from .compatibility import AdapterConflictError, read_adapter_run
from .http import ApiError
from .settings import ServeSettings

__all__ = ["AddAdapterRequest", "install_adapter_routes", "resolve_under_root"]

_OFF = (
    "Run-time adapter changes are off on this server: start it with --admin-token TOKEN (or, on a trusted network "
    "only, --allow-unauthenticated-admin)."
)
_OUTSIDE = "path must name a run directory under the server's --adapter-root."


class AddAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field(min_length=1, max_length=4096, description="a run directory under the server's --adapter-root")
    name: str | None = Field(None, min_length=1, max_length=200, description="default: the directory's name")


def resolve_under_root(path: str, root: Path) -> Path | None:
    """The real path of run directory ``path`` (relative paths are taken from ``root``, which must be a real path),
    or None when it, or one of the run files read from it, resolves outside ``root``."""
    try:
        directory = Path(os.path.realpath(root / path))  # an absolute `path` replaces root here
        targets = [directory] + [Path(os.path.realpath(directory / n)) for n in (RUN_FILE, CONFIG_NAME, WEIGHTS_NAME)]
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        return None
    return directory if all(t == root or root in t.parents for t in targets) else None


def install_adapter_routes(app: FastAPI, stack: AdapterStack, batcher: DynamicBatcher, settings: ServeSettings) -> None:
    lock = asyncio.Lock()
    root = Path(os.path.realpath(settings.adapter_root)) if settings.adapter_root else None
    expected = f"Bearer {settings.admin_token}".encode() if settings.admin_token else None

    def has_token(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode("latin-1")  # headers are decoded as latin-1
        return expected is not None and hmac.compare_digest(given, expected)

    def authorised(request: Request) -> None:
        if not settings.admin_enabled:
            raise ApiError(403, _OFF, "permission_error")
        if expected is not None and not has_token(request):
            raise ApiError(401, "Changing adapters needs 'Authorization: Bearer <admin token>'.")

    def relative(message: str) -> str:
        """``message`` with the adapter root's own path left out (runs under it are named as requests name them)."""
        return message.replace(f"{root}{os.sep}", "").replace(str(root), ".") if root is not None else message

    @app.get("/v1/adapters")
    async def adapters(request: Request) -> dict[str, Any]:
        admin = has_token(request)
        listed = [
            {"name": a.name, "tasks": [t.name for t in a.tasks], "method": a.config.method, "format": a.run["format"]}
            | ({"path": str(a.directory)} if admin else {})
            for a in stack.adapters.values()
        ]
        return {"object": "list", "data": listed}

    @app.post("/v1/adapters", status_code=201, dependencies=[Depends(authorised)])
    async def add_adapter(body: AddAdapterRequest) -> dict[str, Any]:
        if root is None:
            message = "POST /v1/adapters is off: start the server with --adapter-root DIR to load runs from under DIR."
            raise ApiError(403, message, "permission_error")
        directory = resolve_under_root(body.path, root)
        if directory is None:
            raise ApiError(403, _OUTSIDE, "permission_error", param="path")
        async with lock:
            try:
                adapter = await asyncio.to_thread(read_adapter_run, directory, body.name)
                tasks = await batcher.in_model_thread(stack.add, adapter)
            except AdapterConflictError as err:
                raise ApiError(409, relative(str(err)), param="name") from None
            except (OSError, ValueError) as err:  # unreadable, corrupt or incompatible run, another base model
                raise ApiError(400, relative(str(err)), param="path") from None
        app.state.metrics.tasks.set(len(stack.tasks))
        return {"name": adapter.name, "tasks": tasks}

    @app.delete("/v1/adapters/{name}", dependencies=[Depends(authorised)])
    async def remove_adapter(name: str) -> dict[str, Any]:
        async with lock:
            if name not in stack.adapters:
                raise ApiError(404, f"No adapter named {name!r}; served: {sorted(stack.adapters)}.", param="name")
            tasks = [t.name for t in stack.adapters[name].tasks]
            batcher.retire(tasks)  # new requests for these tasks get 404; queued ones are still answered
            try:
                await batcher.drained(tasks)
                await batcher.in_model_thread(stack.remove, name)
            finally:
                batcher.unretire(tasks)
        app.state.metrics.tasks.set(len(stack.tasks))
        return {"name": name, "tasks": tasks}
