"""Changing the served adapters at run time: ``GET``/``POST /v1/adapters`` and ``DELETE /v1/adapters/{name}``.

Secure by default: both changes answer 403 unless the operator started the server with ``--admin-token`` (then
they need ``Authorization: Bearer TOKEN``, compared in constant time) or with ``--allow-unauthenticated-admin``.
``POST`` loads only run directories under ``--adapter-root``: a path that resolves outside it (``..``, an absolute
path elsewhere, a symlink out of it, or run files that are symlinks out of it) gets one answer whatever exists
there, so the API cannot be used to probe the server's file system.
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
from ..training.outputs import RUN_FILE
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

    def authorised(request: Request) -> None:
        if not settings.admin_enabled:
            raise ApiError(403, _OFF, "permission_error")
        if expected is not None:
            given = request.headers.get("authorization", "").encode("latin-1")  # headers are decoded as latin-1
            if not hmac.compare_digest(given, expected):
                raise ApiError(401, "Changing adapters needs 'Authorization: Bearer <admin token>'.")

    def listing() -> dict[str, Any]:
        adapters = [
            {"name": a.name, "path": str(a.directory), "tasks": [t.name for t in a.tasks], "method": a.config.method}
            for a in stack.adapters.values()
        ]
        return {"object": "list", "data": adapters}

    @app.get("/v1/adapters")
    async def adapters() -> dict[str, Any]:
        return listing()

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
                raise ApiError(409, str(err), param="name") from None
            except (OSError, ValueError) as err:  # unreadable, corrupt or incompatible run, another base model
                raise ApiError(400, str(err), param="path") from None
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
