"""The HTTP API of ``adalink serve`` (FastAPI): one frozen base model, many task adapters, mixed-task batches.

- ``POST /v1/classify``: ``{"task": ..., "inputs": [...]}`` -> a label and its task's label probabilities per input.
- ``POST /v1/completions`` and ``POST /v1/chat/completions``: OpenAI's, streamed on request (:mod:`.completions`);
  ``model`` names the task (as multi-adapter servers do).
- ``GET /v1/models`` (the tasks), ``GET /health``, ``GET /metrics`` (Prometheus).
- ``GET/POST /v1/adapters`` and ``DELETE /v1/adapters/{name}``: change the served adapters at run time; removal
  refuses new requests for the adapter's tasks, answers those already queued, then detaches it. Off unless the
  operator turns it on, and confined to ``--adapter-root`` (:mod:`.admin`).

Every error is a JSON body in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}`` (``param`` names
the request field at fault, or is null), with a 4xx status for bad requests; nothing a client sends can stop the
server.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .adapter_stack import AdapterStack, ServedTask
from .admin import install_adapter_routes
from .batcher import DynamicBatcher
from .completions import install_completion_routes
from .generation import Sampling
from .http import ApiError, LimitAndObserve, install_error_handlers
from .intake import public_model_name, served_task, submit, texts_of
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .settings import ServeSettings

__all__ = ["DrainingServer", "ServeSettings", "create_app"]


# ---------------------------------------------------------------------------------------------------- requests
class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    task: str = Field(description="a served task (GET /v1/models)")
    inputs: str | list[str] = Field(description="one text or a list of texts")


# --------------------------------------------------------------------------------------------------------- app
def create_app(stack: AdapterStack, settings: ServeSettings | None = None) -> FastAPI:
    """The ASGI app serving ``stack``; batching starts with the app's lifespan and drains when it ends."""
    settings = settings or ServeSettings()
    settings.validate()
    metrics = ServerMetrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adalink-model")

    def run_batch(key: Hashable, payloads: list[Any]) -> list[Any]:
        if key[0] == "classify":
            return stack.classify(payloads)
        requests = [(task, ids, budget) for task, ids, budget, _ in payloads]
        return stack.complete(requests, Sampling(*key[1:4]), [feed for *_, feed in payloads])

    batcher = DynamicBatcher(
        run_batch,
        executor,
        window_s=settings.batch_window_ms / 1000,
        max_batch_size=settings.max_batch_size,
        max_queue=settings.max_queue,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        metrics.tasks.set(len(stack.tasks))
        try:
            yield
        finally:
            await batcher.close()
            executor.shutdown(wait=True)

    app = FastAPI(title="adalink serve", version="1", lifespan=lifespan)
    app.state.stack, app.state.batcher, app.state.metrics = stack, batcher, metrics
    app.add_middleware(LimitAndObserve, limit=settings.max_body_bytes, metrics=metrics)
    install_error_handlers(app)

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        task = served_task(stack, body.task, "task")
        if stack.generative and not stack.tasks[task].answer_tokens:  # an sft run: no labels
            message = f"Task {task!r} has no labels to choose from: POST /v1/completions or /v1/chat/completions."
            raise ApiError(400, message, param="task")
        texts = texts_of(body.inputs, "inputs", settings)
        results = await submit(batcher, ("classify",), task, [(task, text) for text in texts], "task")
        data = [
            {"index": i, "label": r.label, "probabilities": r.probabilities}
            | ({"generated": r.generated} if r.generated is not None else {})
            for i, r in enumerate(results)
        ]
        return {"object": "list", "task": task, "data": data}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(stack, task) for task in stack.tasks.values()]}

    @app.get("/health")
    async def health() -> JSONResponse:
        status = "draining" if batcher.closing else "ok"
        body = {"status": status, "tasks": len(stack.tasks), "queue": batcher.depth, "format": stack.format_name}
        return JSONResponse(body, status_code=503 if batcher.closing else 200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(batcher.depth)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    install_completion_routes(app, stack, batcher, settings)
    install_adapter_routes(app, stack, batcher, settings)
    return app


def _model_card(stack: AdapterStack, task: ServedTask) -> dict[str, Any]:
    return {
        "id": task.name,
        "object": "model",
        "owned_by": "adalink",
        "adapter": task.adapter,
        "format": stack.format_name,
        "labels": list(task.labels),
        "base_model": public_model_name(stack.model_name),  # not the path of a local checkpoint
    }


class DrainingServer(uvicorn.Server):
    """uvicorn that starts draining the batcher as soon as shutdown begins (SIGTERM, Ctrl-C).

    uvicorn stops accepting connections, waits for the requests in flight, and only then ends the app's lifespan;
    telling the batcher first lets the queued examples run at once instead of waiting out the batch window.
    """

    def __init__(self, app: FastAPI, **options: Any) -> None:
        # uvicorn's 5 s keep-alive equals httpx's idle expiry: a reused connection could be closed under the request
        options.setdefault("timeout_keep_alive", 75)
        super().__init__(uvicorn.Config(app, **options))
        self._batcher: DynamicBatcher = app.state.batcher

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._batcher.stop_accepting()
        await super().shutdown(sockets=sockets)
