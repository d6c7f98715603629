"""``openai`` and ``litellm`` backends against a real local HTTP server.

The server is a tiny OpenAI-compatible ``/v1/chat/completions`` endpoint in the test process,
standing in for a vLLM server (no model server can run here). It answers from a script, including
transient 500s and 429s, so retries, parsing and accounting go through real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from sandmle.core.plugins import get_registry  # noqa: E402
from sandmle.core.records import Sampling  # noqa: E402


def reply(content="hi", tool_calls=None, logprobs=None, prompt=11, completion=7):
    choice = {"index": 0, "finish_reason": "tool_calls" if tool_calls else "stop",
              "message": {"role": "assistant", "content": content, "tool_calls": tool_calls}}
    if logprobs:
        choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
                                          for t, lp in logprobs]}
    return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "x", "choices": [choice],
                 "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}}


class Server:
    """Serves scripted (status, body) replies in order and records every request body."""

    def __init__(self):
        self.script: list[tuple[int, dict]] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                status, payload = outer.script.pop(0) if outer.script else (500, {"error": "script empty"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()


def make(kind, server, **kw):
    args = {"model": "x", "backoff_s": 0.01, "max_retries": 3, **kw}
    if kind == "openai":
        args.update(base_url=server.url, api_key="EMPTY")
    else:
        args.update(model="openai/x", api_base=server.url, api_key="EMPTY")
    return get_registry().create("backends", kind, args)


@pytest.mark.parametrize("kind", ["openai", "litellm"])
def test_retries_transient_errors_then_parses_text_usage_and_cost(server, kind):
    server.requests.clear()
    server.script[:] = [(500, {"error": {"message": "boom"}}), (429, {"error": {"message": "slow down"}}),
                        reply("<think>ok</think>", prompt=100, completion=20)]
    backend = make(kind, server, cost_per_1k_prompt=1.0, cost_per_1k_completion=2.0)
    c = asyncio.run(backend.complete([{"role": "user", "content": "hello"}],
                                     sampling=Sampling(temperature=0.3, seed=5, max_tokens=64)))
    assert c.text == "<think>ok</think>" and backend.retries == 2 and len(server.requests) == 3
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.llm_calls) == (100, 20, 1)
    assert c.usage.cost_usd == pytest.approx(0.1 + 0.04)
    sent = server.requests[-1]
    assert sent["temperature"] == 0.3 and sent["seed"] == 5 and sent["max_tokens"] == 64


@pytest.mark.parametrize("kind", ["openai", "litellm"])
def test_native_tool_calls_and_logprobs_with_token_ids(server, kind):
    calls = [{"id": "c1", "type": "function", "function": {"name": "python", "arguments": '{"code": "print(1)"}'}},
             {"id": "c2", "type": "function", "function": {"name": "validate", "arguments": "{not json"}}]
    server.script[:] = [reply(None, tool_calls=calls, logprobs=[("token_id:5", -0.5), ("token_id:9", -1.25)])]
    backend = make(kind, server, logprobs=True)
    tools = [{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}]
    c = asyncio.run(backend.complete([{"role": "user", "content": "x"}], tools=tools))
    assert [t.name for t in c.tool_calls] == ["python", "validate"]
    assert c.tool_calls[0].arguments == {"code": "print(1)"} and c.tool_calls[0].id == "c1"
    assert "__invalid_json__" in c.tool_calls[1].arguments  # kept for the scaffold to flag
    assert c.logprobs == [-0.5, -1.25] and c.token_ids == [5, 9]
    assert server.requests[-1]["logprobs"] is True and server.requests[-1]["tools"][0]["function"]["name"] == "python"


@pytest.mark.parametrize("kind", ["openai", "litellm"])
def test_gives_up_after_max_retries_and_does_not_retry_client_errors(server, kind):
    server.requests.clear()
    server.script[:] = [(503, {"error": {"message": "down"}})] * 3
    backend = make(kind, server, max_retries=2)
    with pytest.raises(Exception):
        asyncio.run(backend.complete([{"role": "user", "content": "x"}]))
    assert len(server.requests) == 3
    server.requests.clear()
    server.script[:] = [(400, {"error": {"message": "bad request"}}), reply("never")]
    with pytest.raises(Exception):
        asyncio.run(make(kind, server).complete([{"role": "user", "content": "x"}]))
    assert len(server.requests) == 1
    server.script.clear()
