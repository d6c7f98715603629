"""``openai`` and ``litellm`` backends: remote chat completions with retries and accounting.

Both share one retry loop (exponential backoff with jitter on rate limits, timeouts, connection
errors and 5xx; other errors raise at once; an address where nothing listens fails after
``connect_retries`` quick tries instead of the whole backoff) and one response parser (text,
native tool calls, usage, logprobs and, from vLLM with ``return_tokens_as_token_ids``, the
sampled token ids) that refuses a reply not shaped like a chat completion.

Every call is bounded (a server that accepts and never answers, trickles bytes, or sends 40 MB
must not hold an episode): a connect timeout, a per-attempt limit enforced around the whole
request (``request_timeout_s``; an HTTP read timeout alone restarts with every byte), at most
``timeout_retries`` retries of a timed-out attempt, a ``deadline_s`` for the call with all its
retries, and ``max_response_mb``: a longer body is cut off while it streams in and is an error,
not retried. The HTTP client reading the body is the toolkit's own (an ``httpx`` transport that
counts bytes) for the ``openai`` backend and for ``litellm``'s ``openai/`` models.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from typing import Any, Awaitable, Callable

from pydantic import Field

from sandmle.core.interfaces import Backend, ComponentConfig
from sandmle.core.records import Completion, Sampling, ToolCall, Usage
from sandmle.core.registry import require


class RemoteConfig(ComponentConfig):
    """Shared settings of remote backends."""

    model: str
    request_timeout_s: float = Field(300.0, gt=0, allow_inf_nan=False, description=(
        "limit for one attempt, reply included (enforced around the whole request)"))
    connect_timeout_s: float = Field(10.0, gt=0, allow_inf_nan=False, description="limit for opening a connection")
    deadline_s: float = Field(900.0, gt=0, allow_inf_nan=False, description=(
        "limit for one call with all its retries and backoff; no attempt starts past it"))
    timeout_retries: int = Field(1, ge=0, description=(
        "retries after an attempt timed out (a server that accepts and never answers costs at most "
        "(1 + timeout_retries) x request_timeout_s)"))
    max_response_mb: float = Field(16.0, gt=0, allow_inf_nan=False, description=(
        "a longer reply body is cut off and is an error (not retried)"))
    max_retries: int = Field(5, ge=0)
    connect_retries: int = Field(1, ge=0, description=(
        "retries when nothing listens at the address (connection refused): a closed port fails "
        "in about a second instead of after the whole backoff"))
    backoff_s: float = Field(1.0, ge=0, allow_inf_nan=False, description="first retry delay; doubles each retry")
    max_backoff_s: float = Field(60.0, ge=0, allow_inf_nan=False)
    logprobs: bool = False
    extra_body: dict[str, Any] = Field(default_factory=dict)
    cost_per_1k_prompt: float = Field(0.0, ge=0, description="USD; litellm's price map is used when 0")
    cost_per_1k_completion: float = Field(0.0, ge=0)


class OpenAIConfig(RemoteConfig):
    base_url: str | None = None  # default: $OPENAI_BASE_URL, else api.openai.com
    api_key: str | None = None  # default: $OPENAI_API_KEY ("EMPTY" for local servers)


class LitellmConfig(RemoteConfig):
    api_base: str | None = None
    api_key: str | None = None


TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}


class BackendReplyError(ValueError):
    """The server answered, but not with a chat completion (e.g. ``{"choices": "yes"}``)."""


class BackendUnreachableError(ConnectionError):
    """Nothing listens at the backend's address."""


class BackendTimeoutError(RuntimeError):
    """The backend did not answer within ``request_timeout_s`` (after ``timeout_retries``
    retries) or the call's ``deadline_s`` passed. Not a ``TimeoutError``: a scaffold reads that
    as its own episode time limit, and this is the backend's fault (``backend_error``)."""


class ResponseTooLargeError(BackendReplyError):
    """The reply body passed ``max_response_mb``."""


def _in_chain(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of type ``kind`` among ``exc`` and the exceptions it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _timed_out(exc: BaseException) -> bool:
    import httpx

    return _in_chain(exc, (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException)) is not None or \
        "Timeout" in type(exc).__name__


def _capped_http_client(cfg: RemoteConfig) -> Any:
    """An ``httpx.AsyncClient`` with the config's connect/read timeouts whose transport stops
    reading a reply body past ``max_response_mb`` (a declared Content-Length is checked first)."""
    import httpx

    limit = int(cfg.max_response_mb * 1024 * 1024)

    class CappedStream(httpx.AsyncByteStream):
        def __init__(self, inner: Any):
            self.inner, self.seen = inner, 0

        async def __aiter__(self):
            async for chunk in self.inner:
                self.seen += len(chunk)
                if self.seen > limit:
                    raise ResponseTooLargeError(f"the reply is larger than max_response_mb={cfg.max_response_mb:g} "
                                                f"(cut off after {self.seen} bytes)")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    class CappedTransport(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            response = await self.inner.handle_async_request(request)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await response.aclose()
                raise ResponseTooLargeError(f"the reply declares {declared} bytes, more than "
                                            f"max_response_mb={cfg.max_response_mb:g}")
            response.stream = CappedStream(response.stream)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    timeout = httpx.Timeout(cfg.request_timeout_s, connect=cfg.connect_timeout_s)
    return httpx.AsyncClient(transport=CappedTransport(), timeout=timeout)


def connection_refused(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a refused TCP connection."""
    return _in_chain(exc, ConnectionRefusedError) is not None


def is_transient(exc: BaseException) -> bool:
    """Rate limits, timeouts, connection failures and 5xx are worth retrying."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS or status >= 500
    name = type(exc).__name__
    return any(k in name for k in ("Timeout", "RateLimit", "Connection", "ServiceUnavailable",
                                   "InternalServer", "APIError"))


async def with_retries(fn: Callable[[], Awaitable[Any]], cfg: RemoteConfig,
                       on_retry: Callable[[BaseException], None] | None = None, where: str = "") -> Any:
    """Call ``fn`` until it succeeds, retrying transient errors up to ``cfg.max_retries`` times
    (a refused connection only ``cfg.connect_retries`` times, quickly; a timed-out attempt only
    ``cfg.timeout_retries`` times; a reply over ``max_response_mb`` never), each attempt limited
    to ``cfg.request_timeout_s`` and the whole call to ``cfg.deadline_s`` (``where`` names the
    address in the errors)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.deadline_s
    place = where or "the backend address"
    refused = timeouts = 0
    for attempt in range(cfg.max_retries + 1):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise BackendTimeoutError(f"no reply from {place} within deadline_s={cfg.deadline_s:g} "
                                      f"({attempt} attempt(s))")
        limit = min(cfg.request_timeout_s, remaining)
        try:
            return await asyncio.wait_for(fn(), timeout=limit)
        except Exception as exc:  # noqa: BLE001 - classified below
            too_large = _in_chain(exc, ResponseTooLargeError)
            if too_large is not None:
                raise ResponseTooLargeError(f"{too_large} from {place}") from exc
            if connection_refused(exc):
                refused += 1
                if refused > cfg.connect_retries or attempt >= cfg.max_retries:
                    raise BackendUnreachableError(
                        f"nothing answers at {place}: connection refused after "
                        f"{refused} attempt(s) (is the server running?)") from exc
                delay = min(cfg.backoff_s, 1.0) / 2
            elif _timed_out(exc):
                timeouts += 1
                if timeouts > cfg.timeout_retries or attempt >= cfg.max_retries:
                    raise BackendTimeoutError(
                        f"no reply from {place} within {limit:g}s, {timeouts} time(s) (request_timeout_s="
                        f"{cfg.request_timeout_s:g}, timeout_retries={cfg.timeout_retries}, deadline_s="
                        f"{cfg.deadline_s:g})") from exc
                delay = min(cfg.backoff_s * 2 ** attempt, cfg.max_backoff_s)
            elif attempt >= cfg.max_retries or not is_transient(exc):
                raise
            else:
                delay = min(cfg.backoff_s * 2 ** attempt, cfg.max_backoff_s)
            if on_retry:
                on_retry(exc)
            await asyncio.sleep(min(delay * (0.5 + random.random() / 2), max(0.0, deadline - loop.time())))
    raise AssertionError("unreachable")  # pragma: no cover


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


def _shape(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:60]!r}"


def _is_record(value: Any) -> bool:
    """A dict, or an SDK object with attributes (not a str, number or list)."""
    return isinstance(value, dict) or not isinstance(value, (str, bytes, int, float, list, tuple, type(None)))


def parse_response(resp: Any, cfg: RemoteConfig) -> Completion:
    """An OpenAI-format chat response (object or dict) as a :class:`Completion`; a reply of
    another shape raises :class:`BackendReplyError` (it must not pass as an empty answer)."""
    choices = _get(resp, "choices") if _is_record(resp) else None
    if not isinstance(choices, (list, tuple)) or not choices:
        raise BackendReplyError(f"the reply is not a chat completion: 'choices' is {_shape(choices)}")
    choice = choices[0]
    message = _get(choice, "message") if _is_record(choice) else None
    if not _is_record(message):
        raise BackendReplyError(f"the reply is not a chat completion: choices[0].message is {_shape(message)}")
    if not isinstance(_get(message, "content"), (str, type(None))):
        raise BackendReplyError(f"choices[0].message.content is {_shape(_get(message, 'content'))}, not text")
    raw_calls = _get(message, "tool_calls") or []
    if not isinstance(raw_calls, (list, tuple)) or not all(_is_record(tc) and _is_record(_get(tc, "function"))
                                                           for tc in raw_calls):
        raise BackendReplyError(f"choices[0].message.tool_calls is {_shape(raw_calls)}, not a list of calls")
    calls = []
    for i, tc in enumerate(raw_calls):
        fn = _get(tc, "function")
        raw = _get(fn, "arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else dict(raw)
            if not isinstance(args, dict):
                raise ValueError
        except ValueError:
            args = {"__invalid_json__": raw}  # kept so the scaffold can report the format failure
        calls.append(ToolCall(name=str(_get(fn, "name") or ""), arguments=args, id=str(_get(tc, "id") or f"call_{i}")))
    usage_obj = _get(resp, "usage")
    try:
        prompt = int(_get(usage_obj, "prompt_tokens", 0) or 0)
        completion = int(_get(usage_obj, "completion_tokens", 0) or 0)
    except (TypeError, ValueError):
        raise BackendReplyError(f"the reply's usage is {_shape(usage_obj)}") from None
    cost = prompt / 1000 * cfg.cost_per_1k_prompt + completion / 1000 * cfg.cost_per_1k_completion
    logprobs = token_ids = None
    content_lp = _get(_get(choice, "logprobs"), "content")
    if content_lp:
        logprobs = [float(_get(t, "logprob")) for t in content_lp]
        ids = [_TOKEN_ID.match(str(_get(t, "token"))) for t in content_lp]
        token_ids = [int(m.group(1)) for m in ids] if all(ids) else None
    text = _get(message, "content") or ""
    reasoning = _get(message, "reasoning_content")
    if reasoning and "<think>" not in text:
        # litellm and vLLM's reasoning parsers split <think> off; scaffolds keep it verbatim.
        text = f"<think>{reasoning}</think>{text}"
    return Completion(text=text, tool_calls=calls, logprobs=logprobs, token_ids=token_ids,
                      usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, llm_calls=1),
                      finish_reason=_get(choice, "finish_reason"))


def request_args(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, sampling: Sampling | None,
                 cfg: RemoteConfig) -> dict[str, Any]:
    s = sampling or Sampling()
    args: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": s.temperature,
                            "top_p": s.top_p, "max_tokens": s.max_tokens}
    if s.seed is not None:
        args["seed"] = s.seed
    if s.stop:
        args["stop"] = s.stop
    if tools:
        args["tools"] = tools
    if cfg.logprobs:
        args["logprobs"] = True
    return args


class OpenAIBackend(Backend):
    """Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, OpenAI)."""

    def __init__(self, config: OpenAIConfig):
        openai = require("openai", None, "openai backend")
        self.config, self.name = config, f"openai:{config.model}"
        self.retries = 0
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=config.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=config.request_timeout_s, max_retries=0,  # our loop retries, with accounting
            http_client=_capped_http_client(config))

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None) -> Completion:
        args = request_args(messages, tools, sampling, self.config)
        if self.config.extra_body:
            args["extra_body"] = self.config.extra_body
        resp = await with_retries(lambda: self.client.chat.completions.create(**args), self.config, self._count,
                                  where=str(self.client.base_url))
        return parse_response(resp, self.config)

    def _count(self, _exc: BaseException) -> None:
        self.retries += 1

    async def aclose(self) -> None:
        await self.client.close()


class LitellmBackend(Backend):
    """Any provider litellm supports (``model="openai/x"`` + ``api_base`` for a local server)."""

    def __init__(self, config: LitellmConfig):
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
        self.litellm = require("litellm", None, "litellm backend")
        # litellm print()s a "Give Feedback / Get Help" banner to stdout on every error, which
        # breaks --json output; the error itself still reaches the episode record.
        self.litellm.suppress_debug_info = True
        self.config, self.name = config, f"litellm:{config.model}"
        self.retries = 0
        self._client: Any = None  # an openai client over the capped transport, for openai/ models

    def _openai_client(self) -> Any:
        """For ``openai/`` models at an ``api_base``: litellm's OpenAI path takes a ready client,
        so the reply is read by the transport that enforces ``max_response_mb``."""
        cfg = self.config
        if not (cfg.api_base and cfg.model.startswith("openai/")):
            return None  # other providers: bounded in time by with_retries, not in size
        if self._client is None:
            openai = require("openai", None, "litellm backend")
            key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
            self._client = openai.AsyncOpenAI(base_url=cfg.api_base, api_key=key, timeout=cfg.request_timeout_s,
                                              max_retries=0, http_client=_capped_http_client(cfg))
        return self._client

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None) -> Completion:
        cfg = self.config
        args = request_args(messages, tools, sampling, cfg)
        args.update(timeout=cfg.request_timeout_s, num_retries=0, **cfg.extra_body)
        if tools:  # our tools are plain functions; litellm's MCP path would need the `mcp` package
            args["_skip_mcp_handler"] = True
        if cfg.api_base:
            args["api_base"] = cfg.api_base
        if cfg.api_key:
            args["api_key"] = cfg.api_key
        elif cfg.api_base and cfg.model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            args["api_key"] = "EMPTY"  # a local OpenAI-compatible server needs none (as the openai backend)
        client = self._openai_client()
        if client is not None:
            args["client"] = client
        resp = await with_retries(lambda: self.litellm.acompletion(**args), cfg, self._count,
                                  where=cfg.api_base or cfg.model)
        completion = parse_response(resp, cfg)
        if not completion.usage.cost_usd:
            try:
                completion.usage.cost_usd = float(self.litellm.completion_cost(completion_response=resp) or 0.0)
            except Exception:  # noqa: BLE001 - unknown price: cost stays 0
                pass
        return completion

    def _count(self, _exc: BaseException) -> None:
        self.retries += 1

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def make_openai(config: OpenAIConfig) -> OpenAIBackend:
    """Registry factory for ``openai``."""
    return OpenAIBackend(config)


def make_litellm(config: LitellmConfig) -> LitellmBackend:
    """Registry factory for ``litellm``."""
    return LitellmBackend(config)
