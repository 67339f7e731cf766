"""Random JSON bodies (and raw bytes) on every endpoint of `adalink serve`: never a 5xx, every error in OpenAI's
shape, and the server answers a valid request exactly as before afterwards."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from adalink.serve import AdapterStack
from adalink.serve.app import ServeSettings, create_app
from fuzz.strategies import JSON, near, st

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402  (after the skip: needs the serve extra)

given, settings = hypothesis.given, hypothesis.settings

EXAMPLES = 150
CLASSIFY = {"task": "topic", "inputs": ["good food", "awful service"]}
COMPLETE = {"model": "topic", "prompt": "good food", "max_tokens": 2, "temperature": 0}
CHAT = {"model": "topic", "messages": [{"role": "user", "content": "good food"}], "max_tokens": 2, "temperature": 0}
CHAT_EXTRA = ["n", "stop", "stream", "stream_options", "seed", "max_completion_tokens", "tools", "response_format"]
ADD = {"path": "runs/topic", "name": "topic2"}
BODIES = {
    "/v1/classify": near(CLASSIFY, ["labels", "model"]),
    "/v1/completions": near(COMPLETE, ["n", "stop", "top_p", "stream", "logprobs", "best_of"]),
    "/v1/chat/completions": near(CHAT, CHAT_EXTRA),
    "/v1/adapters": near(ADD),
}


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}, body
        error = body["error"]
        assert error["code"] == response.status_code and isinstance(error["message"], str) and error["message"]
        assert error["param"] is None or isinstance(error["param"], str)


@pytest.fixture(scope="module")
def classification(classification_runs, tmp_path_factory):
    stack = AdapterStack.from_runs([classification_runs["sentiment"], classification_runs["topic"]])
    empty_root = tmp_path_factory.mktemp("empty-root")  # adapter changes on, but there is nothing to load
    options = {"admin_token": "s3cret", "adapter_root": str(empty_root), "max_body_bytes": 8192}
    with TestClient(create_app(stack, ServeSettings(batch_window_ms=0, **options))) as client:
        expected = client.post("/v1/classify", json=CLASSIFY).json()
        yield client, expected


def _request(draw, client):
    path = draw(st.sampled_from([*BODIES, "/v1/adapters/{name}", "/v1/models", "/health", "/metrics"]))
    headers = {"authorization": "Bearer s3cret"} if draw(st.booleans()) else {}
    if path == "/v1/adapters/{name}":
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in ("sentiment", "topic")))
        return client.delete(f"/v1/adapters/{quote(name, safe='')}", headers=headers)
    if path not in BODIES:
        query = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
        return client.request(draw(st.sampled_from(["GET", "POST", "DELETE"])), path, params=query)
    kind = draw(st.sampled_from(["near", "json", "bytes"]))
    if kind == "bytes":
        content = draw(st.binary(max_size=200))
        return client.post(path, content=content, headers={**headers, "content-type": "application/json"})
    document = draw(BODIES[path] if kind == "near" else JSON)
    content = json.dumps(document).encode()  # NaN and Infinity as Python writes them (no strict JSON)
    return client.post(path, content=content, headers={**headers, "content-type": "application/json"})


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_random_requests_never_get_a_5xx_and_the_server_keeps_answering(classification, data):
    client, expected = classification
    _check(_request(data.draw, client))
    assert client.post("/v1/classify", json=CLASSIFY).json() == expected


@pytest.fixture(scope="module")
def text2text(text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["sentiment"], text2text_runs["topic"]])
    with TestClient(create_app(stack, ServeSettings(batch_window_ms=0, max_new_tokens=4, max_items=4))) as client:
        expected = client.post("/v1/completions", json=COMPLETE).json()["choices"]
        yield client, expected


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(document=near(COMPLETE, ["n", "stop", "top_p", "stream", "echo", "suffix"]) | JSON)
def test_random_completions_on_a_text_to_text_server(text2text, document):
    client, expected = text2text
    content = json.dumps(document).encode()
    _check(client.post("/v1/completions", content=content, headers={"content-type": "application/json"}))
    assert client.post("/v1/completions", json=COMPLETE).json()["choices"] == expected


def _messages() -> st.SearchStrategy:
    """Chat messages near valid ones: odd roles, contents of every JSON type, text and other parts."""
    part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", ""]), "text": JSON})
    content = st.one_of(st.text(max_size=30), st.lists(part, max_size=3), JSON)
    message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "", "x" * 70])})
    message = st.builds(lambda m, c: m | {"content": c}, message, content) | JSON
    return st.lists(message, max_size=4) | JSON


@pytest.fixture(scope="module")
def chat(text2text_runs, chat_model):
    stack = AdapterStack.from_runs([text2text_runs["topic"]], model=str(chat_model))
    with TestClient(create_app(stack, ServeSettings(batch_window_ms=0, max_new_tokens=4, max_items=4))) as client:
        expected = client.post("/v1/chat/completions", json=CHAT).json()["choices"]
        yield client, expected


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(document=near(CHAT, CHAT_EXTRA), messages=_messages())
def test_random_chats_on_a_server_with_a_chat_template(chat, document, messages):
    client, expected = chat
    content = json.dumps(document | {"messages": messages}).encode()
    _check(client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"}))
    assert client.post("/v1/chat/completions", json=CHAT).json()["choices"] == expected
