"""A sandmle :class:`Backend` over veRL's ``server_manager.generate``: tokens in, tokens out.

A scaffold asks for chat completions with message lists; veRL's rollout servers take and return
token ids. This backend keeps the episode's token stream and extends it with veRL's Continuous
Token helpers (``ct_build_initial_tokens`` / ``ct_merge_context_msg`` / ``ct_merge_assistant_token``
of the agent loop), so history is never re-tokenised: the ids trained on are exactly the ids the
server sampled, followed by the rendered observation/context tokens (mask 0).

Each call compares the scaffold's messages with those of the previous call:

- the previous messages, then the assistant reply the scaffold recorded, then new non-assistant
  messages: the new messages are merged into the stream (the reply's sampled tokens are already
  there; a scaffold's edit of its own copy of the reply does not change them, it is counted in
  ``assistant_edits``);
- anything else (a scaffold that trims or restarts its history, as AIDE's stages or MLE-Dojo's
  JSON-repair prompt do): a new *segment* starts from a fresh prompt. veRL's v1 trainer accepts one
  :class:`AgentLoopOutput` per segment and broadcasts the episode's advantage to all of them; under
  the legacy trainer (``trainer.use_v1=false``) the episode stops instead.

Sampling: temperature and top-p are veRL's (``rollout.temperature``, ``val_kwargs``), because veRL
recomputes the old log-probs at that temperature; a scaffold's ``sampling.max_tokens`` still caps
each reply.

Budget: before each call the stream must leave room for at least one token within
``rollout.response_length`` (the whole episode) and ``max_model_len``; the first prompt of a segment
must fit ``rollout.prompt_length``. Otherwise the call raises the shared
:class:`~sandmle.training.rollout.EpisodeBudgetExceeded` (the scaffold ends the episode, which
then stops as ``max_length`` like the ``grpo`` trainer's) instead of sending a request veRL's
server would reject; ``budget_stop`` says which limit it was.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from sandmle.core.interfaces import Backend
from sandmle.core.records import Completion, Sampling, ToolCall, Usage
from sandmle.training.rollout import EpisodeBudgetExceeded


def _exceeded(reason: str, detail: str) -> EpisodeBudgetExceeded:
    exc = EpisodeBudgetExceeded(f"{reason}: {detail}")
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


class HistoryRewritten(RuntimeError):
    """The scaffold rewrote its history and the legacy veRL trainer takes one stream per episode."""


@dataclass
class TokenSegment:
    """One continuous token stream: a prompt and everything appended after it."""

    prompt_ids: list[int]
    token_ids: list[int]  # prompt + response so far (the runtime stream)
    mask: list[int] = field(default_factory=list)  # one per response token: 1 = sampled by the policy
    logprobs: list[float] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # messages of the last request
    reply_text: str = ""  # the text the last reply was handed to the scaffold as

    @property
    def response_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_ids):]


@dataclass
class Budget:
    """veRL's length limits as the agent loop sees them."""

    prompt_length: int
    response_length: int
    max_model_len: int
    max_tokens_per_turn: int | None = None


class ContinuousTokenBackend(Backend):
    """The policy behind veRL's rollout servers, for one trajectory (one instance per episode)."""

    name = "verl"

    def __init__(self, loop: Any, sampling_params: dict[str, Any], budget: Budget, *,
                 allow_segments: bool = True, tool_format: str = "hermes"):
        self.loop = loop  # the AgentLoopBase: server_manager, tokenizer and ct_* helpers
        self.sampling_params = dict(sampling_params)
        self.want_logprobs = bool(self.sampling_params.get("logprobs"))
        self.budget = budget
        self.allow_segments = allow_segments
        self.tool_format = tool_format
        self.request_id = uuid4().hex  # sticky: every turn of the episode goes to the same server
        self.segments: list[TokenSegment] = []
        self.budget_stop: str | None = None  # which length limit ended the episode, if one did
        self.history_rewritten = False
        self.server_error: str | None = None  # set when the rollout server raised
        self._parser: Any = None
        self.generate_s = 0.0
        self.assistant_edits = 0
        self.num_preempted = 0
        self.server_extra: dict[str, Any] = {}

    # ------------------------------------------------------------------ Backend
    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        try:
            seg = await self._stream_for(messages, tools)
            max_tokens = self._room(seg, sampling.max_tokens if sampling else None)
        except EpisodeBudgetExceeded as exc:
            self.budget_stop = getattr(exc, "reason", "max_length")
            raise
        prompt_ids = list(seg.token_ids)
        params = {**self.sampling_params, "max_tokens": max_tokens}
        stops = self._tool_parser().stop_token_ids if tools else []
        if stops:  # parsers whose models do not end a tool call with EOS (veRL's ToolAgentLoop does the same)
            params["stop_token_ids"] = sorted(set(params.get("stop_token_ids") or []) | set(stops))
        t0 = time.monotonic()
        try:
            out = await self.loop.server_manager.generate(request_id=self.request_id, prompt_ids=prompt_ids,
                                                          sampling_params=params)
        except Exception as exc:
            self.server_error = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            self.generate_s += time.monotonic() - t0
        self.num_preempted += out.num_preempted or 0
        self._note_server_extra(out.extra_fields or {})
        token_ids = list(out.token_ids)
        log_probs = list(out.log_probs) if (self.want_logprobs and out.log_probs is not None) else None
        if self.want_logprobs and log_probs is None:
            log_probs = [0.0] * len(token_ids)  # keep the column aligned; veRL recomputes old log-probs
        merge, seg.mask, seg.logprobs = await self.loop.ct_merge_assistant_token(
            seg.token_ids, token_ids, seg.mask, seg.logprobs, assistant_logprobs=log_probs)
        seg.token_ids = merge.token_ids
        seg.sent = copy.deepcopy(messages)  # a scaffold editing its list in place must not fool _continues
        text, calls = await self._parse(token_ids, tools)
        seg.reply_text = text
        finish = "length" if out.stop_reason == "length" or len(token_ids) >= max_tokens else "stop"
        return Completion(text=text, tool_calls=calls, token_ids=token_ids, prompt_token_ids=prompt_ids,
                          logprobs=log_probs, finish_reason=finish,
                          usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(token_ids),
                                      llm_calls=1))

    # ------------------------------------------------------------------ the token stream
    async def _stream_for(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> TokenSegment:
        """The segment to generate in, with ``messages``' new context merged into it."""
        seg = self.segments[-1] if self.segments else None
        if seg is not None and self._continues(seg.sent, messages):
            if messages[len(seg.sent)].get("content") != seg.reply_text:
                self.assistant_edits += 1
            recorded = messages[:len(seg.sent) + 1]  # up to the reply whose tokens are in the stream
            merge, mask, logprobs = await self._merge_context(seg, recorded, messages, tools)
            if len(mask) >= self.budget.response_length:
                raise _exceeded("max_response_length", f"{len(mask)} response tokens after the new "
                                f"context; rollout.response_length={self.budget.response_length}")
            seg.token_ids, seg.mask, seg.logprobs = merge.token_ids, mask, logprobs
            return seg
        if seg is not None and not self.allow_segments:
            self.history_rewritten = True
            raise HistoryRewritten("the scaffold rewrote its message history; the legacy veRL trainer "
                                   "(trainer.use_v1=false) takes one token stream per episode")
        return await self._new_segment(messages, tools)

    @staticmethod
    def _continues(sent: list[dict[str, Any]], messages: list[dict[str, Any]]) -> bool:
        """``messages`` = the previous request + one assistant reply + later messages."""
        n = len(sent)
        return (len(messages) > n and messages[:n] == sent and messages[n].get("role") == "assistant")

    async def _merge_context(self, seg: TokenSegment, recorded: list[dict[str, Any]], messages: list[dict[str, Any]],
                             tools: list[dict[str, Any]] | None) -> tuple[Any, list[int], list[float] | None]:
        if len(messages) > len(recorded):
            return await self.loop.ct_merge_context_msg(recorded, messages, seg.token_ids, seg.mask,
                                                        seg.logprobs, tools=tools)
        # Two assistant turns in a row (a reply without a tool call): only the next turn's header
        # is new. veRL's builder renders it as a suffix diff, the stream itself is not re-rendered.
        from verl.utils.tokenizer.continuous_token import MergeResult

        builder = self.loop.continuous_token_builder
        header = await self.loop.loop.run_in_executor(
            None, lambda: builder.render_delta_token_id(messages, [], add_generation_prompt=True, tools=tools))
        merge = MergeResult(token_ids=seg.token_ids + header, appended_token_count=len(header), kind="context")
        mask, logprobs = builder.align_response_metadata(merge, seg.mask, seg.logprobs)
        return merge, mask, logprobs

    async def _new_segment(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> TokenSegment:
        builder = self.loop.continuous_token_builder
        # The builder directly: veRL's ct_build_initial_tokens would silently left-truncate.
        prompt = await self.loop.loop.run_in_executor(
            None, lambda: builder.build_initial_tokens(messages, tools=tools))
        prompt = list(prompt)
        if len(prompt) > self.budget.prompt_length:
            raise _exceeded("max_prompt_length", f"prompt of {len(prompt)} tokens; "
                                         f"rollout.prompt_length={self.budget.prompt_length}")
        seg = TokenSegment(prompt_ids=prompt, token_ids=list(prompt),
                           logprobs=[] if self.want_logprobs else None)
        self.segments.append(seg)
        return seg

    def _room(self, seg: TokenSegment, asked: int | None = None) -> int:
        """Tokens the next reply may have (the scaffold's ``max_tokens``, the trainer's cap and the
        budget, whichever is smallest); raises when the budget leaves not even one."""
        b = self.budget
        room = min(b.response_length - len(seg.mask), b.max_model_len - len(seg.token_ids))
        for cap in (b.max_tokens_per_turn, asked):
            if cap and room >= 1:
                room = min(room, cap)
        if room < 1:
            reason = ("max_response_length" if b.response_length - len(seg.mask) < 1 else "max_model_len")
            raise _exceeded(reason, f"stream of {len(seg.token_ids)} tokens "
                                         f"({len(seg.mask)} response) leaves no room to generate")
        return room

    # ------------------------------------------------------------------ replies
    async def _parse(self, token_ids: list[int], tools: list[dict[str, Any]] | None) -> tuple[str, list[ToolCall]]:
        tokenizer = self.loop.tokenizer
        if not tools:
            return tokenizer.decode(token_ids, skip_special_tokens=True), []
        content, calls = await self._tool_parser().extract_tool_calls(token_ids)
        out = []
        for i, call in enumerate(calls):
            try:
                args = json.loads(call.arguments)
                if not isinstance(args, dict):
                    raise ValueError
            except ValueError:
                args = {"__invalid_json__": call.arguments}  # the scaffold reports the format failure
            out.append(ToolCall(name=call.name, arguments=args, id=call.tool_call_id or f"call_{i}"))
        return content, out

    def _tool_parser(self) -> Any:
        if self._parser is None:
            from verl.experimental.agent_loop.tool_parser import ToolParser

            self._parser = ToolParser.get_tool_parser(self.tool_format, self.loop.tokenizer)
        return self._parser

    def _note_server_extra(self, extra: dict[str, Any]) -> None:
        # veRL tracks which weight versions generated a trajectory (off-policy staleness control).
        if not self.server_extra:
            self.server_extra = {k: extra.get(k) for k in ("min_global_steps", "max_global_steps")}
        elif extra.get("max_global_steps") is not None:
            self.server_extra["max_global_steps"] = extra["max_global_steps"]
