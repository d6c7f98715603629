"""Remote backends under failure: a reply of the wrong shape is an error (not empty text), a
closed port fails in about a second, litellm's banner never reaches stdout, and the rollout
record names the cause. The server is the real local HTTP server of test_backends_remote."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from sandmle.plugins.openai.backends import BackendReplyError, BackendUnreachableError

from test_backends_remote import Server, make, reply
from test_reliability_cli import sandmle
from test_reliability_generate import fake_generated


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens


WRONG = [{"choices": "yes"}, {"choices": []}, {"choices": [{"message": "hi"}]},
         {"choices": [{"message": {"content": 5}}]}, {"nothing": 1}]


@pytest.mark.parametrize("body", WRONG, ids=[json.dumps(b)[:30] for b in WRONG])
def test_a_reply_of_the_wrong_shape_is_an_error(server, body):
    server.requests.clear()
    server.script[:] = [(200, body), reply("never")]
    with pytest.raises(BackendReplyError):
        asyncio.run(make("openai", server).complete([{"role": "user", "content": "x"}]))
    assert len(server.requests) == 1, "a malformed reply is not retried"
    server.script[:] = [(200, body)]
    with pytest.raises(Exception):  # litellm rejects some shapes itself; none becomes empty text
        asyncio.run(make("litellm", server).complete([{"role": "user", "content": "x"}]))
    server.script.clear()


@pytest.mark.parametrize("kind", ["openai", "litellm"])
def test_default_retries_fail_a_closed_port_fast(kind):
    from sandmle.core.plugins import get_registry

    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = {"model": "x", "base_url": url} if kind == "openai" else {"model": "openai/x", "api_base": url}
    backend = get_registry().create("backends", kind, args)  # default retries and backoff
    t0 = time.monotonic()
    with pytest.raises(BackendUnreachableError, match="connection refused"):
        asyncio.run(backend.complete([{"role": "user", "content": "x"}]))
    assert time.monotonic() - t0 < 10, "the whole backoff (31 s) was spent on a closed port"


def test_rollout_records_the_cause_and_litellm_keeps_json_clean(server, tmp_path):
    task = fake_generated(tmp_path, 0)
    server.requests.clear()
    server.script[:] = [(200, {"choices": "yes"})] * 20
    ran = sandmle("rollout", task.root, "--backend", "openai", "--json", "--out", tmp_path / "ro",
                  "--backend-args", json.dumps({"model": "x", "base_url": server.url, "api_key": "EMPTY"}))
    record = json.loads(ran.stdout)
    traj = record["trajectory"]
    assert traj["stop_reason"] == "backend_error" and "not a chat completion" in traj["extra"]["backend_error"]
    assert len(server.requests) == 1, "one malformed reply ends the episode"
    server.script.clear()
    url = f"http://127.0.0.1:{closed_port()}/v1"
    ran = sandmle("rollout", task.root, "--backend", "litellm", "--json", "--out", tmp_path / "ro",
                  "--backend-args", json.dumps({"model": "openai/x", "api_base": url}))
    record = json.loads(ran.stdout)  # the whole of stdout is the record: no banner
    assert "connection refused" in record["trajectory"]["extra"]["backend_error"]
