"""What every local token-level backend shares (``transformers``, ``ctranslate2``, ``openvino``, ``vllm``).

- the prompt's token ids come from the tokenizer's chat template, and a conversation that goes on
  after a reply this backend sampled *extends* that sample (old prompt + sampled ids + the tokens
  of what followed), never a re-tokenisation of the reply (:mod:`sandmle.training.sequences`);
- the completion record: text, sampled ids, prompt ids, logprobs, usage, finish reason;
- a queue that batches the concurrent requests of one event loop: a request waits up to
  ``batch_wait_s`` for others to join, up to ``max_batch``.

A subclass sets ``tokenizer``, ``stop_ids``, ``stats``, ``context_window`` (the model's positions,
or None when unknown) and ``config`` (``batch_wait_s``, ``max_batch``), calls
:meth:`TokenChatBackend._init_queues` and implements ``_generate_batch`` and ``_unloaded`` (or
overrides ``generate`` when its engine batches by itself, as vLLM and OpenVINO do).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandmle.core.errors import ContextLengthError
from sandmle.core.interfaces import Backend
from sandmle.core.records import Completion, Sampling, Usage
from sandmle.training.chat import encode, plain_messages, render

HISTORY = 1024  # replies remembered for prompt extension


@dataclass
class Request:
    """One queued generation request and the future its episode awaits."""

    prompt_ids: list[int]
    sampling: Sampling
    future: asyncio.Future


@dataclass
class GenerationStats:
    """What the backend has generated so far (the throughput benchmarks read it)."""

    calls: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0  # added as each batch ends (its abandoned rows' tokens included)
    # Every token sampled, added as it is sampled (transformers, ctranslate2; vLLM at each reply's
    # end): it moves while a batch generates, so a caller can see how far a request got before it
    # was cancelled, and that generation stopped after (the cancellation tests read it).
    sampled_tokens: int = 0
    generate_s: float = 0.0
    largest_batch: int = 0
    reused_prefixes: int = 0  # prompts built on the sampled ids of an earlier reply
    cached_prompt_tokens: int = 0  # prompt tokens whose keys/values came from the KV cache
    # ctranslate2: prompt tokens fed one decoding step at a time (those beyond a batch's shortest
    # prompt), each as costly as a sampled token; what a batch's spread of prompt lengths costs
    stepped_prompt_tokens: int = 0
    shared_prompt_tokens: int = 0  # ctranslate2: prompt tokens not encoded again, shared with another row

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class _Sample:
    prompt_ids: list[int]
    token_ids: list[int]


class TokenChatBackend(Backend):
    """Chat completion on token ids: prompts from the chat template, batched requests."""

    tokenizer: Any
    stop_ids: set[int]
    stats: GenerationStats
    #: Positions the model was trained on (``max_position_embeddings``); None: not checked.
    context_window: int | None = None
    #: Batches generated at the same time (an engine with several workers); each is taken from
    #: the queue when a worker is free, from the requests waiting then.
    parallel_batches: int = 1

    def _init_queues(self) -> None:
        self._pending: dict[int, list[Request]] = {}
        self._drainers: dict[int, asyncio.Task] = {}
        self._history: OrderedDict[str, _Sample] = OrderedDict()

    # ------------------------------------------------------------------ prompts
    @staticmethod
    def _key(plain: list[dict[str, str]]) -> str:
        return hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()

    def prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of the prompt for ``messages``, extending an earlier sample when possible."""
        plain = plain_messages(messages)
        last = max((i for i, m in enumerate(plain) if m["role"] == "assistant"), default=None)
        if last is not None:
            sample = self._history.get(self._key(plain[:last + 1]))
            if sample is not None:
                ids = self._extend(sample, plain, last)
                if ids is not None:
                    self.stats.reused_prefixes += 1
                    return ids
        return encode(self.tokenizer, render(self.tokenizer, plain, True))

    def _extend(self, sample: _Sample, plain: list[dict[str, str]], k: int) -> list[int] | None:
        """Earlier prompt + sampled ids + the template's text for what followed reply ``k``."""
        tok, content = self.tokenizer, plain[k]["content"]
        before = render(tok, plain[:k], True)
        after = render(tok, plain[:k + 1], False)
        full = render(tok, plain, True)
        if not after.startswith(before + content) or not full.startswith(after):
            return None
        close = after[len(before) + len(content):]  # the template's end of the reply
        sampled = tok.decode(sample.token_ids, skip_special_tokens=False)
        if not sampled.startswith(content) or not close.startswith(sampled[len(content):]):
            return None  # the text the scaffold kept is not what was sampled
        glue = close[len(sampled) - len(content):] + full[len(after):]
        return sample.prompt_ids + sample.token_ids + encode(tok, glue)

    def remember(self, messages: list[dict[str, Any]], prompt_ids: list[int], completion: Completion) -> None:
        """Note a reply so a continuation of this conversation reuses its sampled ids."""
        plain = plain_messages(messages) + [{"role": "assistant", "content": completion.text}]
        self._history[self._key(plain)] = _Sample(list(prompt_ids), list(completion.token_ids or []))
        while len(self._history) > HISTORY:
            self._history.popitem(last=False)

    # ------------------------------------------------------------------ completion
    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        prompt_ids = self.prompt_ids(messages)
        completion = await self.generate(prompt_ids, sampling or Sampling())
        self.remember(messages, prompt_ids, completion)
        return completion

    def _completion(self, prompt_ids: list[int], sampling: Sampling, new_ids: list[int],
                    logprobs: list[float] | None) -> Completion:
        finish = "stop" if new_ids and new_ids[-1] in self.stop_ids and not sampling.ignore_eos else "length"
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for stop in sampling.stop or []:
            if stop in text:
                text, finish = text[:text.index(stop)], "stop"
        return Completion(text=text, token_ids=new_ids, prompt_token_ids=list(prompt_ids), logprobs=logprobs,
                          usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(new_ids), llm_calls=1),
                          finish_reason=finish)

    # ------------------------------------------------------------------ batching
    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """Sample a reply to ``prompt_ids``, batched with the other requests waiting now.

        Raises :class:`ContextLengthError` when the prompt fills the model's context window; a
        reply is cut where the window ends (``finish_reason="length"``).
        """
        sampling = self._within_window(prompt_ids, sampling)
        loop = asyncio.get_running_loop()
        request = Request(list(prompt_ids), sampling, loop.create_future())
        self._pending.setdefault(id(loop), []).append(request)
        drainer = self._drainers.get(id(loop))
        if drainer is None or drainer.done():
            self._drainers[id(loop)] = loop.create_task(self._drain(id(loop)))
        return await request.future

    def _within_window(self, prompt_ids: list[int], sampling: Sampling) -> Sampling:
        """``sampling`` with its reply cut where the context window ends; a prompt that fills the
        window raises :class:`ContextLengthError`."""
        window = self.context_window
        if window is not None:
            if len(prompt_ids) >= window:
                raise ContextLengthError(len(prompt_ids), window)
            if sampling.max_tokens > window - len(prompt_ids):
                sampling = sampling.model_copy(update={"max_tokens": window - len(prompt_ids)})
        return sampling

    async def _gather(self, pending: list[Request]) -> None:
        """Let concurrent episodes join the batch: wait until it is full or ``batch_wait_s`` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.batch_wait_s
        await asyncio.sleep(0)
        while len(pending) < self.config.max_batch and loop.time() < deadline:
            await asyncio.sleep(min(0.005, self.config.batch_wait_s))

    def _take_batch(self, pending: list[Request], free_workers: int = 1) -> list[Request]:
        """Remove and return the requests generated together next (the first ``max_batch``).
        ``free_workers``: batches that could start now (this one included), for a backend that
        splits the waiting requests between them."""
        batch = pending[:self.config.max_batch]
        del pending[:self.config.max_batch]
        return batch

    def _unloaded(self) -> bool:
        """True once the model is gone (``aclose``): a running batch stops at the next token."""
        raise NotImplementedError

    def _generate_batch(self, requests: list[tuple[list[int], Sampling]],
                        abandoned: Callable[[int], bool] | None = None) -> list[Completion]:
        """Sample replies for ``requests`` in one engine call; row ``i`` may stop as soon as
        ``abandoned(i)`` (its episode was cancelled). Runs in a worker thread."""
        raise NotImplementedError

    async def _drain(self, loop_id: int) -> None:
        pending = self._pending[loop_id]
        running: set[asyncio.Task] = set()
        while pending or running:
            if pending and len(running) < self.parallel_batches:
                await self._gather(pending)
                batch = [r for r in self._take_batch(pending, self.parallel_batches - len(running))
                         if not r.future.done()]
                if batch:
                    running.add(asyncio.get_running_loop().create_task(self._run_batch(batch)))
                continue
            # Every worker busy: wait for one. Some idle: look for new requests every 5 ms too.
            _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED,
                                            timeout=None if pending else 0.005)

    async def _run_batch(self, batch: list[Request]) -> None:
        try:
            results = await asyncio.to_thread(self._generate_batch, [(r.prompt_ids, r.sampling) for r in batch],
                                              lambda i: batch[i].future.done() or self._unloaded())
        except Exception as exc:  # noqa: BLE001 - every waiting episode learns why
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        for r, result in zip(batch, results):
            if not r.future.done():
                r.future.set_result(result)
