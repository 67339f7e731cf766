"""One OpenAI-style endpoint in front of several vLLM servers: the request's ``model`` picks the server.

``adalink serve --engine vllm --fold`` (:mod:`.vllm_fold`) starts one vLLM server per task, each serving that task's
folded checkpoint under the task's name on a loopback port of its own. :func:`create_proxy_app` is what clients talk
to: ``POST /v1/completions`` and ``/v1/chat/completions`` are forwarded as they came (body and status unchanged, a
stream passed through chunk by chunk as the engine sends it) to the server of the ``model`` named in the body;
``GET /v1/models`` lists the tasks; ``GET /health`` asks every engine. A ``model`` no engine serves is answered 404
with the served names, in the OpenAI error format of :mod:`.http`, without reaching any engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from .http import LimitAndObserve, error_response, install_error_handlers
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics

__all__ = ["FORWARDED_PATHS", "create_proxy_app"]

FORWARDED_PATHS = ("/v1/completions", "/v1/chat/completions")  # the OpenAI endpoints routed by the body's model
_PASSED_HEADERS = ("content-type", "cache-control")  # of the engine's answer; length and encoding are the proxy's


def create_proxy_app(
    engines: Mapping[str, str], *, timeout: float = 600.0, max_body_bytes: int = 1 << 20, owned_by: str = "adalink"
) -> FastAPI:
    """The ASGI app that routes each request to ``engines[body["model"]]``.

    Args:
        engines: served model name (a task) -> base URL of the server that serves it (``http://127.0.0.1:PORT``).
        timeout: seconds an engine may take to start answering, and between two chunks of a stream.
        max_body_bytes: larger request bodies are refused (413) before they are forwarded.
        owned_by: ``owned_by`` of the model cards in ``GET /v1/models``.
    """
    routes = dict(engines)
    metrics = ServerMetrics()
    holder: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # no connection limit: each engine queues and batches its own requests; no proxy from the environment
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            holder["client"] = client
            metrics.tasks.set(len(routes))
            yield

    app = FastAPI(title="adalink serve (vLLM, one engine per task)", version="1", lifespan=lifespan)
    app.state.engines, app.state.metrics = routes, metrics
    app.add_middleware(LimitAndObserve, limit=max_body_bytes, metrics=metrics)
    install_error_handlers(app)

    async def forward(request: Request) -> Response:
        raw = await request.body()
        model, refusal = _requested_model(raw, routes)
        if refusal is not None:
            return refusal
        client = holder["client"]
        upstream = client.build_request(
            "POST", routes[model] + request.url.path, content=raw, headers={"content-type": "application/json"}
        )
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError as err:
            message = f"The engine of {model!r} did not answer ({type(err).__name__}); it may be starting or stopped."
            return error_response(502, message)
        metrics.examples.labels(model).inc()
        headers = {k: v for k, v in answer.headers.items() if k.lower() in _PASSED_HEADERS}
        return StreamingResponse(
            _relay(answer), status_code=answer.status_code, headers=headers, background=BackgroundTask(answer.aclose)
        )

    for path in FORWARDED_PATHS:
        app.add_api_route(path, forward, methods=["POST"], include_in_schema=False)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        cards = [{"id": name, "object": "model", "owned_by": owned_by} for name in routes]
        return {"object": "list", "data": cards}

    @app.get("/health")
    async def health() -> JSONResponse:
        client = holder["client"]
        answers = await asyncio.gather(*(_healthy(client, url) for url in routes.values()))
        down = [name for name, ok in zip(routes, answers, strict=True) if not ok]
        body = {"status": "degraded" if down else "ok", "tasks": len(routes), "engines_down": down}
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _requested_model(raw: bytes, routes: Mapping[str, str]) -> tuple[str, JSONResponse | None]:
    """(the ``model`` of the body, None), or ("", the error answer) when the body does not name a served one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return "", error_response(400, f"The body is not valid JSON: {err}.")
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str):
        served = ", ".join(routes)
        return "", error_response(400, f"model: give the task to ask as a string (one of: {served}).", param="model")
    if model not in routes:
        message = (
            f"The model {model!r} is not served here: each task is a model, and the tasks are {list(routes)} "
            "(GET /v1/models)."
        )
        return "", error_response(404, message, param="model")
    return model, None


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The engine's answer as it arrives (a server-sent event stream chunk by chunk; decompressed if it was not)."""
    async for chunk in answer.aiter_bytes():
        yield chunk


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/health", timeout=10)).status_code == 200
    except httpx.HTTPError:
        return False
