"""Every 4xx of `adalink serve`, endpoint by endpoint, has OpenAI's one error shape, with ``param`` naming the
request field at fault (null when no one field is)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from adalink.serve import AdapterStack
from adalink.serve.app import ServeSettings, create_app

KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
}
ADMIN = {"authorization": "Bearer s3cret"}


def assert_error(response, status: int, param: str | None, message: str = "") -> None:
    """The response is ``status`` with exactly OpenAI's error shape, ``param`` and a message containing ``message``."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert error["type"] == KINDS[status] and error["code"] == status and error["param"] == param, error
    assert isinstance(error["message"], str) and message in error["message"], error


@pytest.fixture(scope="module")
def classification(classification_runs):
    stack = AdapterStack.from_runs([classification_runs["sentiment"], classification_runs["topic"]])
    root = classification_runs["topic"].parent
    settings = ServeSettings(max_items=3, max_body_bytes=4096, admin_token="s3cret", adapter_root=str(root))
    with TestClient(create_app(stack, settings)) as client:
        yield client


@pytest.fixture(scope="module")
def text2text(text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["topic"]])
    with TestClient(create_app(stack, ServeSettings(max_new_tokens=8))) as client:
        yield client


CLASSIFY = [
    ({"task": "topic"}, 400, "inputs", "inputs: Field required"),
    ({"inputs": ["a"]}, 400, "task", "task: Field required"),
    ({"task": 1, "inputs": ["a"]}, 400, "task", "task: Input should be a valid string"),
    ({"task": "topic", "inputs": [3]}, 400, "inputs[0]", "inputs[0]: Input should be a valid string"),
    ({"task": "topic", "inputs": 3}, 400, "inputs", "inputs: "),
    ({"task": "topic", "inputs": ["a", " "]}, 400, "inputs[1]", "inputs[1] is empty"),
    ({"task": "topic", "inputs": []}, 400, "inputs", "inputs is empty"),
    ({"task": "topic", "inputs": ["a"] * 4}, 400, "inputs", "inputs has 4 items; at most 3"),
    ({"task": "topic", "inputs": ["a"], "labels": 1}, 400, "labels", "labels: Extra inputs are not permitted"),
    ({"task": "nope", "inputs": ["a"]}, 404, "task", "Unknown task 'nope'"),
    ([1], 400, None, "body: Input should be a valid dictionary"),
    (None, 400, None, "body"),
]


@pytest.mark.parametrize(("document", "status", "param", "message"), CLASSIFY)
def test_classify_errors(classification, document, status, param, message):
    assert_error(classification.post("/v1/classify", json=document), status, param, message)


def test_body_errors_name_no_field(classification):
    headers = {"content-type": "application/json"}
    response = classification.post("/v1/classify", content=b'{"task": ', headers=headers)
    assert_error(response, 400, None, "not valid JSON")
    assert_error(classification.post("/v1/classify", content=b"x" * 5000, headers=headers), 413, None, "4096 bytes")


def test_completion_errors(classification, text2text):
    assert_error(classification.post("/v1/completions", json={"model": "topic", "prompt": "a"}), 400, "model")
    cases = [
        ({"prompt": "a"}, 400, "model", "model: Field required"),
        ({"model": "nope", "prompt": "a"}, 404, "model", "Unknown task 'nope'"),
        ({"model": "topic"}, 400, "prompt", "prompt: Field required"),
        ({"model": "topic", "prompt": ["a", ""]}, 400, "prompt[1]", "prompt[1] is empty"),
        ({"model": "topic", "prompt": [1]}, 400, "prompt[0]", "prompt[0]: Input should be a valid string"),
        ({"model": "topic", "prompt": "a", "max_tokens": "5"}, 400, "max_tokens", "valid integer"),
        ({"model": "topic", "prompt": "a", "max_tokens": 0}, 400, "max_tokens", "greater than or equal to 1"),
        ({"model": "topic", "prompt": "a", "max_tokens": 9}, 400, "max_tokens", "max_tokens is at most 8"),
        ({"model": "topic", "prompt": "a", "temperature": 3}, 400, "temperature", "less than or equal to 2"),
        ({"model": "topic", "prompt": "a", "top_p": 0}, 400, "top_p", "greater than 0"),
        ({"model": "topic", "prompt": "a", "n": 0}, 400, "n", "greater than or equal to 1"),
        ({"model": "topic", "prompt": ["a", "b"], "n": 40}, 400, "n", "asks 80 choices; at most 64"),
        ({"model": "topic", "prompt": "a", "echo": True}, 400, "echo", "echo=True is not supported"),
        ({"model": "topic", "prompt": "a", "best_of": 2}, 400, "best_of", "not supported"),
        ({"model": "topic", "prompt": "a", "stream": True, "logprobs": 1}, 400, "logprobs", "not supported"),
        ({"model": "topic", "prompt": "a", "stream": "yes"}, 400, "stream", "valid boolean"),
        ({"model": "topic", "prompt": "a", "stop": [""]}, 400, "stop", "stop takes up to 4 non-empty strings"),
        ({"model": "topic", "prompt": "a", "stop": 5}, 400, "stop", "stop: "),
        ({"model": "topic", "prompt": "a " * 200, "max_tokens": 8}, 400, "prompt", "This model's context is"),
    ]
    for document, status, param, message in cases:  # max_tokens within the limit unless the case sets it
        assert_error(text2text.post("/v1/completions", json={"max_tokens": 4, **document}), status, param, message)


def test_chat_errors(classification, text2text):
    chat = [{"role": "user", "content": "good food"}]
    refused = classification.post("/v1/chat/completions", json={"model": "topic", "messages": chat})
    assert_error(refused, 400, "model", "classification head")
    no_template = text2text.post("/v1/chat/completions", json={"model": "topic", "messages": chat})
    assert_error(no_template, 400, "messages", "no chat template")
    cases = [
        ({"messages": chat}, 400, "model", "model: Field required"),
        ({"model": "nope", "messages": chat}, 404, "model", "Unknown task 'nope'"),
        ({"model": "topic"}, 400, "messages", "messages: Field required"),
        ({"model": "topic", "messages": [{"content": "a"}]}, 400, "messages[0]", "Field required"),
        ({"model": "topic", "messages": "hi"}, 400, "messages", "valid list"),
        ({"model": "topic", "messages": chat, "stream": True, "temperature": 3}, 400, "temperature", "less than"),
    ]
    for document, status, param, message in cases:
        assert_error(text2text.post("/v1/chat/completions", json=document), status, param, message)


def test_read_only_endpoints_refuse_other_methods(classification):
    for method, path in [("POST", "/v1/models"), ("POST", "/health"), ("POST", "/metrics"), ("GET", "/v1/classify")]:
        assert_error(classification.request(method, path), 405, None, "Method Not Allowed")
    assert_error(classification.get("/v1/no-such-endpoint"), 404, None, "Not Found")
    for path in ("/v1/models", "/health", "/metrics", "/v1/adapters"):
        assert classification.get(path).status_code == 200


def test_adapter_errors(classification, classification_runs):
    post = classification.post
    assert_error(post("/v1/adapters", json={"path": "topic"}), 401, None, "Authorization: Bearer")
    assert_error(classification.delete("/v1/adapters/topic"), 401, None, "Authorization: Bearer")
    cases = [
        ({}, 400, "path", "path: Field required"),
        ({"path": 1}, 400, "path", "path: Input should be a valid string"),
        ({"path": ""}, 400, "path", "path: String should have at least 1 character"),
        ({"path": "topic", "name": ""}, 400, "name", "name: String should have at least 1 character"),
        ({"path": "topic", "extra": 1}, 400, "extra", "extra: Extra inputs are not permitted"),
        ({"path": "no-such-run"}, 400, "path", "run.json is missing"),
        ({"path": "/etc"}, 403, "path", "under the server's --adapter-root"),
        ({"path": "topic"}, 409, "name", "already served"),
        ({"path": "topic", "name": "again"}, 409, "name", "Task 'topic' of adapter 'again' is already served by"),
    ]
    for document, status, param, message in cases:
        response = post("/v1/adapters", json=document, headers=ADMIN)
        assert_error(response, status, param, message)
        assert "/tmp" not in response.text, response.text  # runs are named, never located on the server's disk
    response = classification.delete("/v1/adapters/nope", headers=ADMIN)
    assert_error(response, 404, "name", "No adapter named 'nope'")
    off = ServeSettings()  # the default: run-time changes are off
    with TestClient(create_app(AdapterStack.from_runs([classification_runs["sentiment"]]), off)) as client:
        for response in (client.post("/v1/adapters", json={"path": "x"}), client.delete("/v1/adapters/sentiment")):
            assert_error(response, 403, None, "Run-time adapter changes are off")


def test_every_validation_error_of_a_json_body_names_a_field(classification):
    """Whatever a field holds, the error's param is that field."""
    for value in (None, 1, 1.5, True, {}, [None], {"a": 1}):
        for field in ("task", "inputs"):
            document = {"task": "topic", "inputs": ["a"], field: value}
            response = classification.post("/v1/classify", json=document)
            assert response.status_code == 400 and response.json()["error"]["param"].split("[")[0] == field, (
                json.dumps(document),
                response.text,
            )
