"""vllm_proxy: one endpoint, ``model`` = task picks the engine. Two stand-in engines (small FastAPI apps) take vLLM's
place; no vLLM is needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from adalink.serve.vllm_proxy import create_proxy_app
from serve_support import free_port


def _engine(name: str) -> FastAPI:
    """An engine serving ``name``: it answers who it is and what it got; ``stream`` sends 3 events 0.3 s apart."""
    app = FastAPI()

    @app.post("/v1/completions")
    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        body = await request.json()
        if not body.get("stream"):
            return {"served_by": name, "path": request.url.path, "body": body}

        async def events():
            for i in range(3):
                yield f"data: {json.dumps({'served_by': name, 'i': i})}\n\n"
                await asyncio.sleep(0.3)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/health")
    async def health():
        return {}

    return app


@contextlib.contextmanager
def _serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    down = free_port()  # nothing listens there: an engine that stopped
    with _serving(_engine("sentiment")) as one, _serving(_engine("topic")) as two:
        engines = {"sentiment": one, "topic": two, "stopped": f"http://127.0.0.1:{down}"}
        with _serving(create_proxy_app(engines, timeout=30)) as url:
            yield url


def test_the_model_of_the_body_picks_the_engine_and_the_body_arrives_unchanged(proxy):
    for path in ("/v1/completions", "/v1/chat/completions"):
        for task in ("topic", "sentiment", "topic"):
            body = {"model": task, "prompt": [5, 6, 7], "max_tokens": 3, "temperature": 0, "logprobs": 2}
            answer = httpx.post(proxy + path, json=body, timeout=30)
            assert answer.status_code == 200
            assert answer.json() == {"served_by": task, "path": path, "body": body}


def test_an_unknown_model_is_refused_with_the_served_tasks(proxy):
    answer = httpx.post(proxy + "/v1/completions", json={"model": "sentimnet", "prompt": "x"}, timeout=30)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["param"] == "model" and error["type"] == "not_found_error"
    assert "'sentimnet' is not served here" in error["message"]
    assert "['sentiment', 'topic', 'stopped']" in error["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not valid JSON"), (b'{"prompt": "x"}', "model: give the task"), (b'{"model": 3}', "model:")],
)
def test_a_body_without_a_model_name_is_refused(proxy, content, message):
    answer = httpx.post(proxy + "/v1/completions", content=content, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["error"]["message"]


def test_a_stream_passes_through_as_the_engine_sends_it(proxy):
    body = {"model": "topic", "prompt": "x", "stream": True}
    arrivals, text = [], ""
    with httpx.stream("POST", proxy + "/v1/completions", json=body, timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for chunk in answer.iter_text():
            arrivals.append(time.monotonic())
            text += chunk
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert [json.loads(e)["i"] for e in events[:-1]] == [0, 1, 2] and events[-1] == "[DONE]"
    assert arrivals[-1] - arrivals[0] > 0.5  # 3 events 0.3 s apart arrived apart, not all at the end


def test_an_engine_that_does_not_answer_is_a_502_and_the_health_names_it(proxy):
    answer = httpx.post(proxy + "/v1/completions", json={"model": "stopped", "prompt": "x"}, timeout=30)
    assert answer.status_code == 502 and "'stopped' did not answer" in answer.json()["error"]["message"]
    health = httpx.get(proxy + "/health", timeout=30)
    assert health.status_code == 503 and health.json()["engines_down"] == ["stopped"]


def test_models_lists_every_task(proxy):
    models = httpx.get(proxy + "/v1/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["sentiment", "topic", "stopped"]


def test_a_body_over_the_limit_is_refused_before_it_is_forwarded():
    with _serving(create_proxy_app({"t": "http://127.0.0.1:9"}, max_body_bytes=100)) as url:
        answer = httpx.post(url + "/v1/completions", json={"model": "t", "prompt": "x" * 200}, timeout=30)
    assert answer.status_code == 413
