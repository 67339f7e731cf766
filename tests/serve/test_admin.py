"""Secure by default: run-time adapter changes are off unless the operator turns them on, POST /v1/adapters loads
only from under --adapter-root, and its refusals tell nothing about the file system outside that root."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from fastapi.testclient import TestClient

from adalink.serve import AdapterStack
from adalink.serve.admin import resolve_under_root
from adalink.serve.app import ServeSettings, create_app

ADMIN = {"authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def roots(classification_runs, tmp_path_factory):
    """An adapter root holding a copy of the topic run, and runs outside it (with symlinks into them)."""
    base = tmp_path_factory.mktemp("admin")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    shutil.copytree(classification_runs["topic"], root / "topic")
    shutil.copytree(classification_runs["topic"], outside / "topic2")
    (root / "link-out").symlink_to(outside / "topic2")  # a directory symlink out of the root
    (root / "files-out").mkdir()  # a directory in the root whose run files are symlinks out of it
    for file in (outside / "topic2").iterdir():
        (root / "files-out" / file.name).symlink_to(file)
    (root / "link-in").symlink_to(root / "topic")  # a symlink that stays inside: fine
    return {"root": root, "outside": outside}


def _client(classification_runs, **settings) -> TestClient:
    return TestClient(create_app(AdapterStack.from_runs([classification_runs["sentiment"]]), ServeSettings(**settings)))


def test_adapter_changes_are_off_by_default(classification_runs, roots):
    with _client(classification_runs, adapter_root=str(roots["root"])) as client:
        for response in (
            client.post("/v1/adapters", json={"path": "topic"}),
            client.post("/v1/adapters", json={"path": "topic"}, headers=ADMIN),
            client.delete("/v1/adapters/sentiment"),
        ):
            assert response.status_code == 403, response.text
            assert "--admin-token" in response.json()["error"]["message"]
        assert [a["name"] for a in client.get("/v1/adapters").json()["data"]] == ["sentiment"]


def test_loading_needs_an_adapter_root(classification_runs):
    with _client(classification_runs, admin_token="s3cret") as client:
        response = client.post("/v1/adapters", json={"path": str(classification_runs["topic"])}, headers=ADMIN)
        assert response.status_code == 403 and "--adapter-root" in response.json()["error"]["message"]
        assert client.delete("/v1/adapters/sentiment", headers=ADMIN).status_code == 200  # removal needs no root


def test_paths_outside_the_root_get_one_answer_whatever_exists(classification_runs, roots):
    root, outside = roots["root"], roots["outside"]
    probes = [
        "/etc",  # exists
        "/no/such/dir",  # does not
        str(outside / "topic2"),  # a valid run, outside
        "../outside/topic2",  # the same, relative
        "topic/../../outside/topic2",
        "link-out",  # a symlink out of the root
        "files-out",  # run files that are symlinks out of the root
        str(root) + "-sibling",  # a name that only starts like the root
        "/",
        "topic\x00",
    ]
    with _client(classification_runs, admin_token="s3cret", adapter_root=str(root)) as client:
        answers = {probe: client.post("/v1/adapters", json={"path": probe}, headers=ADMIN) for probe in probes}
        bodies = {probe: (r.status_code, r.json()) for probe, r in answers.items()}
        assert len({repr(body) for body in bodies.values()}) == 1, bodies  # nothing depends on what exists
        status, body = next(iter(bodies.values()))
        assert status == 403 and body["error"]["param"] == "path", body
        assert str(outside) not in body["error"]["message"] and "missing" not in body["error"]["message"]
        assert [a["name"] for a in client.get("/v1/adapters").json()["data"]] == ["sentiment"]

        missing = client.post("/v1/adapters", json={"path": "no-such-run"}, headers=ADMIN)  # inside: says why
        assert missing.status_code == 400 and "run.json is missing" in missing.json()["error"]["message"]
        assert missing.json()["error"]["message"].startswith("no-such-run is not") and str(root) not in missing.text
        added = client.post("/v1/adapters", json={"path": "link-in", "name": "t"}, headers=ADMIN)
        assert added.status_code == 201 and added.json() == {"name": "t", "tasks": ["topic"]}, added.text
        assert client.delete("/v1/adapters/t", headers=ADMIN).status_code == 200
        absolute = client.post("/v1/adapters", json={"path": str(root / "topic")}, headers=ADMIN)
        assert absolute.status_code == 201, absolute.text


def test_no_answer_shows_a_server_path_to_a_client_without_the_token(classification_runs):
    run = classification_runs["sentiment"]
    with _client(classification_runs, admin_token="s3cret") as client:
        public = client.get("/v1/adapters")
        listed = {"name": "sentiment", "tasks": ["sentiment"], "method": "adalink", "format": "classification"}
        assert public.status_code == 200 and public.json()["data"] == [listed]
        wrong = client.get("/v1/adapters", headers={"authorization": "Bearer s3cre"})
        assert wrong.json() == public.json()
        assert client.get("/v1/adapters", headers=ADMIN).json()["data"] == [listed | {"path": str(run)}]
        answers = [public, client.get("/v1/models"), client.get("/health"), client.get("/metrics")]
        answers += [client.post("/v1/classify", json={"task": "nope", "inputs": ["a"]})]
        answers += [client.post("/v1/completions", json={"model": "sentiment", "prompt": "a"})]
        for answer in answers:
            assert str(run.parent) not in answer.text and "/tmp" not in answer.text, answer.text
        assert client.get("/v1/models").json()["data"][0]["base_model"] == "tiny-bert"  # a local model by name


def test_an_explicit_opt_out_allows_changes_without_a_token(classification_runs, roots):
    settings = {"allow_unauthenticated_admin": True, "adapter_root": str(roots["root"])}
    with _client(classification_runs, **settings) as client:
        assert client.post("/v1/adapters", json={"path": "topic"}).status_code == 201
        assert client.delete("/v1/adapters/topic").status_code == 200


def test_resolve_under_root(roots):
    root = roots["root"].resolve()
    assert resolve_under_root("topic", root) == root / "topic"
    assert resolve_under_root("link-in", root) == root / "topic"
    assert resolve_under_root(".", root) == root
    for probe in ("..", "link-out", "files-out", "/", "a\x00b"):
        assert resolve_under_root(probe, root) is None, probe


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"admin_token": ""}, "--admin-token is empty"),
        ({"admin_token": "x", "allow_unauthenticated_admin": True}, "contradict"),
        ({"adapter_root": "/no/such/root"}, "--adapter-root '/no/such/root' is invalid"),
    ],
)
def test_settings_refuse_unsafe_or_wrong_combinations(settings, message):
    with pytest.raises(ValueError, match=message):
        ServeSettings(**settings).validate()


def test_the_token_can_come_from_the_environment(classification_runs, monkeypatch, capsys):
    """`adalink serve` reads ADALINK_ADMIN_TOKEN when --admin-token is not given (a command line shows in `ps`)."""
    from adalink.cli import main

    monkeypatch.setenv("ADALINK_ADMIN_TOKEN", "   ")
    assert main(["serve", "--adapter", str(classification_runs["topic"]), "--adapter-root", os.devnull]) == 2
    assert "--admin-token is empty" in capsys.readouterr().err


def test_the_unauthenticated_opt_out_is_announced_loudly(classification_runs, monkeypatch, capsys):
    from adalink.cli import main
    from adalink.serve import app

    class NoServer:  # start nothing (uvicorn would also bind its loggers to capsys's stream): only the words matter
        def __init__(self, *args, **options) -> None:
            pass

        def run(self) -> None:
            pass

    monkeypatch.setattr(app, "DrainingServer", NoServer)
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)  # no handler left on capsys's stream either
    assert main(["serve", "--adapter", str(classification_runs["topic"]), "--allow-unauthenticated-admin"]) == 0
    assert "WARNING: --allow-unauthenticated-admin" in capsys.readouterr().err
    assert main(["serve", "--adapter", str(classification_runs["topic"])]) == 0
    assert "--allow-unauthenticated-admin" not in capsys.readouterr().err


def test_a_task_clash_names_adapters_not_where_they_live(roots):
    """The served run lies outside --adapter-root, so the root-relative rewrite cannot hide its path: only names."""
    stack = AdapterStack.from_runs([roots["outside"] / "topic2"])
    settings = ServeSettings(admin_token="s3cret", adapter_root=str(roots["root"]))
    with TestClient(create_app(stack, settings)) as client:
        clash = client.post("/v1/adapters", json={"path": "topic"}, headers=ADMIN)
    assert clash.status_code == 409 and "already served by adapter 'topic2'" in clash.text, clash.text
    assert str(roots["outside"]) not in clash.text and "/tmp" not in clash.text, clash.text
