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


# -- issue 26 item 11: a server that accepts and never answers, trickles, or sends 40 MB ----------
class Misbehaving:
    """A real HTTP server on 127.0.0.1 that misbehaves as told (``mode``): ``hang`` reads the
    request and never answers, ``trickle`` sends a byte every 0.2 s, ``huge`` a 40 MB body with
    its Content-Length, ``huge-chunked`` 40 MB chunked (no length). Every connection ends by
    itself after ``hold_s``; ``close()`` stops the server and its threads."""

    def __init__(self, hold_s: float = 20.0):
        import threading

        self.mode, self.hold_s, self.requests = "hang", hold_s, 0
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            conn.settimeout(self.hold_s)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests += 1
                big = b'{"choices": [{"message": {"content": "' + b"x" * (40 * 1024 * 1024) + b'"}}]}'
                if self.mode == "hang":
                    self.stop.wait(self.hold_s)
                elif self.mode == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                    deadline = time.monotonic() + self.hold_s
                    while time.monotonic() < deadline and not self.stop.wait(0.2):
                        conn.sendall(b" ")
                elif self.mode == "huge":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(big)).encode() + b"\r\n\r\n" + big)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for i in range(0, len(big), 1 << 20):
                        piece = big[i:i + (1 << 20)]
                        conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    conn.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the client gave up: what the test wants

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def bad_server():
    srv = Misbehaving()
    yield srv
    srv.close()


def _backend(kind, url, **kw):
    from sandmle.core.plugins import get_registry

    args = {"model": "x", "base_url": url, "api_key": "EMPTY"} if kind == "openai" else \
        {"model": "openai/x", "api_base": url, "api_key": "EMPTY"}
    return get_registry().create("backends", kind, {"backoff_s": 0.01, **args, **kw})


def _call(backend):
    t0 = time.monotonic()
    try:
        asyncio.run(backend.complete([{"role": "user", "content": "x"}]))
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc, time.monotonic() - t0
    raise AssertionError("a misbehaving server gave a completion")


@pytest.mark.parametrize("kind", ["openai", "litellm"])
@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_server_that_never_answers_costs_one_retry_of_the_request_timeout(bad_server, kind, mode):
    from sandmle.plugins.openai.backends import BackendTimeoutError

    bad_server.mode, bad_server.requests = mode, 0
    exc, took = _call(_backend(kind, bad_server.url, request_timeout_s=1.0, max_retries=5))
    assert isinstance(exc, BackendTimeoutError) and "no reply" in str(exc), repr(exc)
    assert bad_server.requests == 2, "one try and timeout_retries=1 retry, not max_retries=5"
    assert took < 8, took  # main: 5 retries of the whole request timeout (the trickle never timed out)


@pytest.mark.parametrize("kind", ["openai", "litellm"])
def test_the_deadline_bounds_a_call_with_all_its_retries(bad_server, kind):
    from sandmle.plugins.openai.backends import BackendTimeoutError

    bad_server.mode = "hang"
    exc, took = _call(_backend(kind, bad_server.url, request_timeout_s=100, timeout_retries=5, deadline_s=1.5))
    assert isinstance(exc, BackendTimeoutError), repr(exc)
    assert took < 6, took


@pytest.mark.parametrize("kind", ["openai", "litellm"])
@pytest.mark.parametrize("mode", ["huge", "huge-chunked"])
def test_a_40_mb_reply_is_an_error_and_not_retried(bad_server, kind, mode):
    from sandmle.plugins.openai.backends import BackendReplyError

    bad_server.mode, bad_server.requests = mode, 0
    exc, _ = _call(_backend(kind, bad_server.url, max_response_mb=1, request_timeout_s=30))
    assert isinstance(exc, BackendReplyError) and "max_response_mb=1" in str(exc), repr(exc)
    assert bad_server.requests == 1


def test_rollout_against_a_hanging_server_ends_backend_error_in_bounded_time(bad_server, tmp_path):
    task = fake_generated(tmp_path, 0)
    bad_server.mode = "hang"
    t0 = time.monotonic()
    ran = sandmle("rollout", task.root, "--backend", "openai", "--json", "--out", tmp_path / "ro", "--backend-args",
                  json.dumps({"model": "x", "base_url": bad_server.url, "api_key": "EMPTY", "request_timeout_s": 1}))
    traj = json.loads(ran.stdout)["trajectory"]
    assert traj["stop_reason"] == "backend_error" and "no reply" in traj["extra"]["backend_error"]
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("field,value", [("request_timeout_s", "nan"), ("deadline_s", "inf"),
                                         ("max_response_mb", 0), ("timeout_retries", -1), ("connect_timeout_s", -1)])
def test_backend_limits_are_checked_when_configured(field, value, tmp_path):
    task = fake_generated(tmp_path, 0)
    args = json.dumps({"model": "x", "base_url": "http://127.0.0.1:9/v1", field: value}).replace('"nan"', "NaN")
    from test_reliability_cli import no_traceback

    no_traceback(sandmle("rollout", task.root, "--backend", "openai", "--backend-args", args), field)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_rollout_refuses_a_non_finite_keep_max_mb_before_the_episode(tmp_path, value):
    """main ran the whole episode, then failed on ``--keep-max-mb nan`` (NaN passes FloatRange)."""
    from test_reliability_cli import no_traceback

    task = fake_generated(tmp_path, 0)
    ran = sandmle("rollout", task.root, "--out", tmp_path / "ro", "--keep-max-mb", value)
    no_traceback(ran, "--keep-max-mb")
    assert ran.returncode == 2 and not (tmp_path / "ro").exists(), "refused before anything ran"
