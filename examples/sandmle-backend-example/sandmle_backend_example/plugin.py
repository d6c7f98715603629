"""Backend ``replay``: answers with the model turns recorded in a saved trajectory, one per call.

Useful to re-run a recorded episode exactly (after changing a grader, a reward or the sandbox),
or to debug a scaffold against real model output without paying for the model again.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, FilePath

from sandmle.core import Backend, Completion, ComponentConfig, Sampling, Turn, Usage, hookimpl


class ReplayConfig(ComponentConfig):
    """Which recorded episode to replay."""

    path: FilePath = Field(description="a trajectory JSONL written by `sandmle rollout` or `sandmle eval`")
    line: int = Field(0, ge=0, description="which record of the file")
    when_done: str = Field("", description="the reply once every recorded turn has been replayed")


class ReplayBackend(Backend):
    """Replays recorded turns in order; it never looks at the messages it is sent."""

    name = "replay"

    def __init__(self, config: ReplayConfig):
        self.config = config
        lines = [ln for ln in config.path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        record = json.loads(lines[config.line])
        trajectory = record.get("trajectory", record)  # a rollout record, or a bare trajectory
        self.turns = [Turn.model_validate(t) for t in trajectory["turns"]]
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        self.calls += 1
        if self.calls > len(self.turns):
            return Completion(text=self.config.when_done, usage=Usage(llm_calls=1), finish_reason="stop")
        turn = self.turns[self.calls - 1]
        return Completion(text=turn.text, tool_calls=turn.tool_calls, token_ids=turn.token_ids,
                          prompt_token_ids=turn.prompt_token_ids, logprobs=turn.logprobs,
                          usage=Usage(prompt_tokens=turn.usage.prompt_tokens,
                                      completion_tokens=turn.usage.completion_tokens, llm_calls=1),
                          finish_reason="stop")


@hookimpl
def register_backends(register):
    register("replay", ReplayBackend, config=ReplayConfig,
             description="replay the model turns of a saved trajectory")
