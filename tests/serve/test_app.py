"""The HTTP API under a real uvicorn: concurrent mixed-task requests are answered as if each ran alone, adapters
come and go without dropping requests, and malformed requests get 4xx JSON errors without hurting the server."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adalink.serve import AdapterStack
from adalink.serve.app import ServeSettings, create_app
from serve_support import serving
from tiny_models import WORDS

RNG = random.Random(0)
TEXTS = [" ".join([*RNG.sample(WORDS, 4), str(i)]) for i in range(24)]
TASKS = ("sentiment", "topic")


@pytest.fixture(scope="module")
def stack(classification_runs) -> AdapterStack:
    return AdapterStack.from_runs([classification_runs["sentiment"], classification_runs["topic"]])


def _samples(url: str) -> dict[str, float]:
    """Prometheus samples by name and labels, e.g. 'adalink_batch_size_bucket{le="1.0"}'."""
    text = httpx.get(f"{url}/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


async def _post_all(url: str, bodies: list[tuple[str, object]], concurrency: int = 64) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        return await asyncio.gather(*(client.post(path, json=body) for path, body in bodies))


def _same(answer: dict, alone: dict) -> bool:
    probabilities = answer["probabilities"]
    close = all(abs(p - alone["probabilities"][k]) < 1e-4 for k, p in probabilities.items())
    return answer["label"] == alone["label"] and probabilities.keys() == alone["probabilities"].keys() and close


def test_concurrent_mixed_task_requests_each_get_their_own_answer(stack):
    app = create_app(stack, ServeSettings(batch_window_ms=10, max_batch_size=16))
    requests = [(RNG.choice(TASKS), RNG.sample(TEXTS, RNG.randint(1, 3))) for _ in range(150)]
    with serving(app) as url:
        alone = {}  # one request at a time: each runs in a forward pass of its own
        for task in TASKS:
            for text in TEXTS:
                answer = httpx.post(f"{url}/v1/classify", json={"task": task, "inputs": [text]}).json()
                alone[task, text] = answer["data"][0]
        single = _samples(url)
        assert single['adalink_batch_size_bucket{le="1.0"}'] == single["adalink_batch_size_count"]

        bodies = [("/v1/classify", {"task": task, "inputs": texts}) for task, texts in requests]
        responses = asyncio.run(_post_all(url, bodies))
        for (task, texts), response in zip(requests, responses, strict=True):
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["task"] == task and [d["index"] for d in body["data"]] == list(range(len(texts)))
            for text, answer in zip(texts, body["data"], strict=True):
                assert _same(answer, alone[task, text]), (task, text, answer, alone[task, text])

        metrics = _samples(url)
    batches = metrics["adalink_batch_size_count"] - single["adalink_batch_size_count"]
    one_task = metrics['adalink_batch_tasks_bucket{le="1.0"}'] - single['adalink_batch_tasks_bucket{le="1.0"}']
    assert batches < sum(len(texts) for _, texts in requests)  # examples shared forward passes
    assert one_task < batches  # and some forward passes mixed both tasks
    assert metrics['adalink_requests_total{endpoint="/v1/classify",status="200"}'] == len(alone) + len(requests)


def test_concurrent_completions_match_each_prompt_alone(text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["sentiment"], text2text_runs["topic"]])
    app = create_app(stack, ServeSettings(batch_window_ms=10, max_batch_size=16))
    requests = [(RNG.choice(TASKS), RNG.choice(TEXTS), RNG.randint(1, 6)) for _ in range(60)]

    def body(task: str, prompt: str, max_tokens: int) -> dict:
        return {"model": task, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}

    with serving(app) as url:
        alone = {r: httpx.post(f"{url}/v1/completions", json=body(*r), timeout=120).json() for r in set(requests)}
        responses = asyncio.run(_post_all(url, [("/v1/completions", body(*r)) for r in requests]))
        for request, response in zip(requests, responses, strict=True):
            assert response.status_code == 200, response.text
            answer, expected = response.json(), alone[request]
            assert answer["object"] == "text_completion" and answer["model"] == request[0]
            assert answer["choices"] == expected["choices"] and answer["usage"] == expected["usage"]
            assert answer["usage"]["completion_tokens"] <= request[2]
        classified = httpx.post(f"{url}/v1/classify", json={"task": "topic", "inputs": TEXTS[:3]}).json()
        assert all("generated" in d and d["probabilities"] is None for d in classified["data"])
        batched = httpx.post(f"{url}/v1/completions", json={"model": "topic", "prompt": TEXTS[:3], "max_tokens": 3})
        assert [c["index"] for c in batched.json()["choices"]] == [0, 1, 2]


def _malformed(rng: random.Random) -> list[tuple[str, str, bytes | None, dict]]:
    """A few hundred bad requests: (method, path, body, headers)."""
    json_headers = {"content-type": "application/json"}
    cases: list[tuple[str, str, bytes | None, dict]] = []

    def post(path: str, document) -> None:
        cases.append(("POST", path, json.dumps(document).encode(), json_headers))

    bad_values = [None, 1, 1.5, True, [], {}, [None], [1, "a"], [[]], "", "   ", ["ok", ""]]
    bad_values += [["x" * 20_000], "x" * 20_000]
    for value in bad_values:
        post("/v1/classify", {"task": "topic", "inputs": value})
        post("/v1/classify", {"task": value, "inputs": ["good food"]})
        post("/v1/completions", {"model": "topic", "prompt": value})
    post("/v1/classify", {"task": "topic", "inputs": ["good"] * 65})  # too many items
    for i in range(30):
        post("/v1/classify", {"task": f"no-such-task-{i}", "inputs": ["good food"]})
        post("/v1/classify", {"task": "topic", "inputs": ["good food"], f"extra{i}": i})
    completions = [
        {"max_tokens": 0},
        {"max_tokens": -1},
        {"max_tokens": "5"},
        {"max_tokens": 10**9},
        {"temperature": -1},
        {"temperature": 3},
        {"temperature": "hot"},
        {"top_p": 0},
        {"n": 2},
        {"stream": True},
        {"logprobs": 1},
        {"echo": True},
        {"stop": [""]},
        {"stop": 5},
    ]
    for change in completions:
        post("/v1/completions", {"model": "topic", "prompt": "good food", **change})
    post("/v1/completions", {"model": "topic", "prompt": "good food"})  # a classification task
    for document in ([], 1, "x", None, [{"task": "topic"}], {}, {"inputs": ["good"]}):
        post("/v1/classify", document)
    for _ in range(60):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        cases.append(("POST", rng.choice(["/v1/classify", "/v1/completions"]), junk, json_headers))
    valid = json.dumps({"task": "topic", "inputs": ["good food", "awful service"]}).encode()
    for _ in range(40):
        cases.append(("POST", "/v1/classify", valid[: rng.randrange(1, len(valid) - 1)], json_headers))
    cases.append(("POST", "/v1/classify", b"[" * 100_000, json_headers))  # deeply nested
    cases.append(("POST", "/v1/classify", b"x" * (2 << 20), json_headers))  # over the body limit
    cases.append(("POST", "/v1/classify", b'{"task": "topic", "inputs": ["\xff\xfe"]}', json_headers))
    cases.append(("POST", "/v1/classify", b'{"task": "topic", "inputs": [NaN]}', json_headers))
    cases.append(("POST", "/v1/classify", valid, {"content-type": "text/plain"}))
    cases.append(("POST", "/v1/classify", b"", json_headers))
    for method, path in [("GET", "/v1/classify"), ("PUT", "/v1/completions"), ("DELETE", "/v1/models")]:
        cases.append((method, path, None, {}))
    for path in ["/", "/v2/classify", "/v1/classify/x", "/v1/adapters/x/y", "/%00", "/" + "a" * 5000]:
        cases.append(("GET", path, None, {}))
    post("/v1/adapters", {"path": 1})
    post("/v1/adapters", {"path": "/no/such/run"})
    post("/v1/adapters", {"path": "/etc"})
    cases.append(("DELETE", "/v1/adapters/no-such-adapter", None, {}))
    return cases


def test_fuzzed_bad_requests_get_4xx_json_and_the_server_keeps_answering(stack):
    app = create_app(stack, ServeSettings(batch_window_ms=2))
    cases = _malformed(random.Random(1))
    assert len(cases) >= 200
    with serving(app) as url:
        expected = httpx.post(f"{url}/v1/classify", json={"task": "topic", "inputs": TEXTS[:4]}).json()

        async def send_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=300) as client:
                sends = [client.request(m, p, content=b, headers=h) for m, p, b, h in cases]
                return await asyncio.gather(*sends)

        for (method, path, content, _), response in zip(cases, asyncio.run(send_all()), strict=True):
            where = f"{method} {path} {content[:80] if content else content!r}"
            assert 400 <= response.status_code < 500, (where, response.status_code, response.text)
            error = response.json()["error"]
            assert isinstance(error["message"], str) and error["message"] and error["type"], where
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        again = httpx.post(f"{url}/v1/classify", json={"task": "topic", "inputs": TEXTS[:4]}).json()
        assert again == expected
        statuses = {k for k, v in _samples(url).items() if k.startswith("adalink_requests_total") and v}
    assert not any('status="5' in k for k in statuses), statuses


def test_error_messages_name_the_problem(stack):
    with serving(create_app(stack, ServeSettings(max_items=3, max_input_chars=50))) as url:
        cases = [
            ({"task": "nope", "inputs": ["a"]}, 404, "Unknown task 'nope'; served tasks: ['sentiment', 'topic']"),
            ({"task": "topic", "inputs": ["a"] * 4}, 400, "inputs has 4 items; at most 3 per request"),
            ({"task": "topic", "inputs": ["a", " "]}, 400, "inputs[1] is empty"),
            ({"task": "topic", "inputs": ["a" * 51]}, 400, "inputs[0] has 51 characters; at most 50"),
            ({"task": "topic", "inputs": [3]}, 400, "inputs"),
            ({"task": "topic", "inputs": ["a"], "labels": 1}, 400, "labels: Extra inputs are not permitted"),
        ]
        for document, status, message in cases:
            response = httpx.post(f"{url}/v1/classify", json=document)
            assert response.status_code == status and message in response.json()["error"]["message"], response.text
        response = httpx.post(f"{url}/v1/classify", content=b'{"task": ', headers={"content-type": "application/json"})
        assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
        response = httpx.post(f"{url}/v1/completions", json={"model": "topic", "prompt": "a"})
        assert response.status_code == 400 and "POST /v1/classify" in response.json()["error"]["message"]


def test_adapters_come_and_go_without_dropping_requests(classification_runs, stack):
    served = AdapterStack.from_runs([classification_runs["sentiment"]])
    expected = {(task, text): stack.classify([(task, text)])[0] for task in TASKS for text in TEXTS}

    def check(task: str, text: str, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        answer, reference = response.json()["data"][0], expected[task, text]
        assert answer["label"] == reference.label
        assert answer["probabilities"] == pytest.approx(reference.probabilities, abs=1e-4)

    # a long window keeps requests queued (in flight, not answered) while adapters change; a removal flushes them
    settings = ServeSettings(
        batch_window_ms=60_000,
        max_batch_size=64,
        admin_token="s3cret",
        adapter_root=str(classification_runs["topic"].parent),
    )
    with serving(create_app(served, settings)) as url:

        async def scenario() -> None:
            admin = {"authorization": "Bearer s3cret"}
            async with httpx.AsyncClient(base_url=url, timeout=300, headers=admin) as client:

                async def ask(task: str, text: str) -> None:
                    check(task, text, await client.post("/v1/classify", json={"task": task, "inputs": [text]}))

                async def queued(count: int) -> None:
                    while (await client.get("/health")).json()["queue"] < count:
                        await asyncio.sleep(0.005)

                waiting = [asyncio.create_task(ask("sentiment", t)) for t in TEXTS]
                await queued(len(TEXTS))
                added = await client.post("/v1/adapters", json={"path": str(classification_runs["topic"])})
                assert added.status_code == 201 and added.json() == {"name": "topic", "tasks": ["topic"]}
                clash = await client.post("/v1/adapters", json={"path": str(classification_runs["topic"])})
                assert clash.status_code == 409 and "already served" in clash.json()["error"]["message"]
                models = (await client.get("/v1/models")).json()["data"]
                assert [m["id"] for m in models] == ["sentiment", "topic"]

                waiting += [asyncio.create_task(ask("topic", t)) for t in TEXTS]
                await queued(2 * len(TEXTS))
                assert not any(t.done() for t in waiting)
                removed = await client.delete("/v1/adapters/topic")  # returns once the queued ones are answered
                assert removed.status_code == 200 and removed.json() == {"name": "topic", "tasks": ["topic"]}
                await asyncio.gather(*waiting)  # every request queued before the removal got its right answer
                gone = await client.post("/v1/classify", json={"task": "topic", "inputs": ["good"]})
                assert gone.status_code == 404 and "Unknown task 'topic'" in gone.json()["error"]["message"]
                models = (await client.get("/v1/models")).json()["data"]
                assert [m["id"] for m in models] == ["sentiment"]

        asyncio.run(scenario())
    assert list(served.tasks) == ["sentiment"]


def test_a_full_queue_answers_503_and_recovers(stack):
    with serving(create_app(stack, ServeSettings(batch_window_ms=300, max_queue=4))) as url:
        bodies = [("/v1/classify", {"task": "topic", "inputs": [text]}) for text in TEXTS[:10]]
        responses = asyncio.run(_post_all(url, bodies))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) >= 4 and statuses.count(503) >= 1 and set(statuses) == {200, 503}
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "queue is full" in busy.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/classify", json={"task": "topic", "inputs": ["good"]}).status_code == 200


def test_admin_token_guards_adapter_changes(stack, classification_runs):
    with serving(create_app(stack, ServeSettings(admin_token="s3cret"))) as url:
        assert httpx.delete(f"{url}/v1/adapters/topic").status_code == 401
        assert httpx.post(f"{url}/v1/adapters", json={"path": "x"}).status_code == 401
        wrong = {"authorization": "Bearer s3cre"}
        assert httpx.delete(f"{url}/v1/adapters/topic", headers=wrong).status_code == 401
        authorised = {"authorization": "Bearer s3cret"}
        assert httpx.delete(f"{url}/v1/adapters/nope", headers=authorised).status_code == 404
        assert httpx.get(f"{url}/v1/adapters").json()["data"][0]["tasks"] == ["sentiment"]


def test_models_health_and_metrics(stack):
    with serving(create_app(stack)) as url:
        models = httpx.get(f"{url}/v1/models").json()
        assert models["object"] == "list"
        assert [(m["id"], m["labels"]) for m in models["data"]] == [
            ("sentiment", ["negative", "positive"]),
            ("topic", ["food", "movie", "service"]),
        ]
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "tasks": 2, "queue": 0, "format": "classification"}
        response = httpx.get(f"{url}/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        for name in ("adalink_requests_total", "adalink_request_latency_seconds_bucket", "adalink_batch_size_bucket"):
            assert name in response.text
