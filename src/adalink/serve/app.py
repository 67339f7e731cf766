"""The HTTP API of ``adalink serve`` (FastAPI): one frozen base model, many task adapters, mixed-task batches.

- ``POST /v1/classify``: ``{"task": ..., "inputs": [...]}`` -> a label and its task's label probabilities per input.
- ``POST /v1/completions``: OpenAI-style; ``model`` names the task (as multi-adapter servers do).
- ``GET /v1/models`` (the tasks), ``GET /health``, ``GET /metrics`` (Prometheus).
- ``GET/POST /v1/adapters`` and ``DELETE /v1/adapters/{name}``: change the served adapters at run time; removal
  refuses new requests for the adapter's tasks, answers those already queued, then detaches it. Off unless the
  operator turns it on, and confined to ``--adapter-root`` (:mod:`.admin`).

Every error is a JSON body in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}`` (``param`` names
the request field at fault, or is null), with a 4xx status for bad requests; nothing a client sends can stop the
server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .adapter_stack import AdapterStack, Sampling
from .admin import install_adapter_routes
from .batcher import DynamicBatcher, Overloaded, ShuttingDown, TaskRetiring
from .http import ApiError, LimitAndObserve, install_error_handlers
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .settings import ServeSettings

__all__ = ["DrainingServer", "ServeSettings", "create_app"]


# ---------------------------------------------------------------------------------------------------- requests
class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    task: str = Field(description="a served task (GET /v1/models)")
    inputs: str | list[str] = Field(description="one text or a list of texts")


class CompletionRequest(BaseModel):
    # OpenAI clients send fields this server has no use for: unknown fields are ignored, known ones checked.
    model_config = ConfigDict(extra="ignore", strict=True)

    model: str = Field(description="the task whose adapter continues the prompt")
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    stop: str | list[str] | None = None
    n: int = 1
    best_of: int | None = None
    stream: bool = False
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def unsupported(self) -> str | None:
        """The first field set to something this server cannot do."""
        defaults = {"n": 1, "stream": False, "echo": False, "logprobs": None, "suffix": None}
        defaults |= {"presence_penalty": 0.0, "frequency_penalty": 0.0}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                return name
        return "best_of" if self.best_of not in (None, 1) else None


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
        return stack.complete(payloads, Sampling(*key[1:]))

    batcher = DynamicBatcher(
        run_batch,
        executor,
        window_s=settings.batch_window_ms / 1000,
        max_batch_size=settings.max_batch_size,
        max_queue=settings.max_queue,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
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

    def texts_of(value: str | list[str], param: str) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ApiError(400, f"{param} is empty: give at least one text.", param=param)
        if len(texts) > settings.max_items:
            message = f"{param} has {len(texts)} items; at most {settings.max_items} per request."
            raise ApiError(400, message, param=param)
        for i, text in enumerate(texts):
            where = param if isinstance(value, str) else f"{param}[{i}]"
            if not text.strip():
                raise ApiError(400, f"{where} is empty.", param=where)
            if len(text) > settings.max_input_chars:
                raise ApiError(
                    400, f"{where} has {len(text)} characters; at most {settings.max_input_chars}.", param=where
                )
        return texts

    def served(task: str, param: str) -> str:
        if task not in stack.tasks:
            raise ApiError(404, f"Unknown task {task!r}; served tasks: {list(stack.tasks)}.", param=param)
        return task

    async def submit(key: Hashable, task: str, payloads: list[Any], param: str) -> list[Any]:
        try:
            return await batcher.submit(key, task, payloads)
        except TaskRetiring as err:
            raise ApiError(404, str(err), param=param) from None
        except (Overloaded, ShuttingDown) as err:
            raise ApiError(503, str(err), "overloaded_error") from None

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        task = served(body.task, "task")
        texts = texts_of(body.inputs, "inputs")
        results = await submit(("classify",), task, [(task, text) for text in texts], "task")
        data = [
            {"index": i, "label": r.label, "probabilities": r.probabilities}
            | ({"generated": r.generated} if r.generated is not None else {})
            for i, r in enumerate(results)
        ]
        return {"object": "list", "task": task, "data": data}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> dict[str, Any]:
        task = served(body.model, "model")
        if stack.format_name != "text2text":
            raise ApiError(400, f"Task {task!r} has a classification head: POST /v1/classify.", param="model")
        unsupported = body.unsupported()
        if unsupported:
            raise ApiError(400, f"{unsupported}={getattr(body, unsupported)!r} is not supported.", param=unsupported)
        if body.max_tokens > settings.max_new_tokens:
            raise ApiError(400, f"max_tokens is at most {settings.max_new_tokens}.", param="max_tokens")
        stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
        if len(stops) > 4 or not all(stops):
            raise ApiError(400, "stop takes up to 4 non-empty strings.", param="stop")
        prompts = [stack.encode(text) for text in texts_of(body.prompt, "prompt")]
        context = stack.context_length
        longest = max(len(ids) for ids in prompts)
        if context is not None and longest + body.max_tokens > context:
            raise ApiError(
                400,
                f"This model's context is {context} tokens; the prompt has {longest} and max_tokens asks "
                f"{body.max_tokens} more.",
                param="prompt",
            )
        key = ("complete", body.temperature, body.top_p)
        results = await submit(key, task, [(task, ids, body.max_tokens) for ids in prompts], "model")
        choices, generated = [], 0
        for i, result in enumerate(results):
            text, reason = _cut_at_stop(stack.decode(result.token_ids), stops, result.finish_reason)
            generated += len(result.token_ids)
            choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": reason})
        used = sum(len(ids) for ids in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": task,
            "choices": choices,
            "usage": {"prompt_tokens": used, "completion_tokens": generated, "total_tokens": used + generated},
        }

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

    install_adapter_routes(app, stack, batcher, settings)
    return app


def _model_card(stack: AdapterStack, task) -> dict[str, Any]:
    return {
        "id": task.name,
        "object": "model",
        "owned_by": "adalink",
        "adapter": task.adapter,
        "format": stack.format_name,
        "labels": list(task.labels),
        "base_model": stack.model_name,
    }


def _cut_at_stop(text: str, stops: list[str], reason: str) -> tuple[str, str]:
    """Cut ``text`` before the first stop string, as OpenAI does (the stop string is not returned)."""
    cuts = [text.find(stop) for stop in stops if stop in text]
    return (text[: min(cuts)], "stop") if cuts else (text, reason)


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

    async def shutdown(self, sockets=None) -> None:
        self._batcher.stop_accepting()
        await super().shutdown(sockets=sockets)
