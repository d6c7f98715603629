"""``baseline``: a scripted AutoML policy that speaks every built-in scaffold's protocol.

It reads only the conversation (never the task object), like any model behind a backend:
explore the files, fit a random forest (then a linear model), validate the submission format,
finish. When an execution fails it falls back to the training prior, which always yields a valid
submission. Used as the quickstart policy and as the lower bound of every study.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sandmle.core.interfaces import Backend, ComponentConfig
from sandmle.core.records import Completion, Sampling, ToolCall, Usage

from .baseline_programs import EXPLORE, solve_program

_METRIC = re.compile(r"VALIDATION_METRIC (\S+) (\S+) (True|False)")


class BaselineConfig(ComponentConfig):
    """The scripted policy has no knobs that change its protocol; ``first_model`` picks the
    model family of the first solution (``forest`` or ``linear``)."""

    first_model: str = "forest"


def _content(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # multimodal content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") in ("user", "tool"):
            return _content(m)
    return ""


def _failed(observation: str) -> bool:
    return bool(re.search(r"Traceback|Error|\[Timeout\]|\[Killed|FAILED", observation)) or \
        "submission.csv was not found" in observation


class BaselineBackend(Backend):
    """Scripted AutoML agent; ``protocol`` tells it which scaffold stage is asking."""

    name = "baseline"

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config or BaselineConfig()
        self.second_model = "linear" if self.config.first_model == "forest" else "forest"

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        stage = (protocol or "react").split(".")
        handler = {"react": self._react, "aide": self._aide, "mledojo": self._mledojo}.get(stage[0], self._react)
        text, calls = handler(messages, tools, stage[1] if len(stage) > 1 else "")
        prompt_chars = sum(len(_content(m)) for m in messages)
        usage = Usage(prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4 + 1, llm_calls=1)
        return Completion(text=text, tool_calls=calls, usage=usage, finish_reason="stop")

    # ------------------------------------------------------------------ react
    def _react(self, messages, tools, _stage) -> tuple[str, list[ToolCall]]:
        step = sum(m.get("role") == "assistant" for m in messages)
        obs = _last_user(messages) if step else ""
        native = bool(tools)
        tool_names = {t.get("function", {}).get("name") for t in tools or []}
        if step == 0:
            return self._react_call("Look at the files and the sample submission first.", "python",
                                    {"code": EXPLORE}, native)
        if step == 1:
            return self._react_call(f"Fit a {self.config.first_model} pipeline, check it on a hold-out "
                                    "split, write submission.csv.", "python",
                                    {"code": solve_program(self.config.first_model)}, native)
        if step == 2 and _failed(obs):
            return self._react_call("That failed; fall back to the training prior.", "python",
                                    {"code": solve_program("constant")}, native)
        if "validate" not in " ".join(_content(m) for m in messages if m.get("role") == "assistant") and \
                (not native or "validate" in tool_names):
            return self._react_call("Check the submission format.", "validate", {}, native)
        return "<think>The submission is written and validated.</think>\n<answer>submission</answer>", []

    @staticmethod
    def _react_call(thought: str, name: str, args: dict[str, Any], native: bool) -> tuple[str, list[ToolCall]]:
        if native:
            return f"<think>{thought}</think>", [ToolCall(name=name, arguments=args, id=f"call_{name}")]
        if name == "python":
            body = f"python\n<code>\n{args['code']}\n</code>"
        else:
            body = json.dumps({"name": name, "arguments": args})
        return f"<think>{thought}</think>\n<tool_call>\n{body}\n</tool_call>", []

    # ------------------------------------------------------------------ aide
    def _aide(self, messages, tools, stage) -> tuple[str, list[ToolCall]]:
        prompt = "\n".join(_content(m) for m in messages)
        if stage == "review":
            found = _METRIC.findall(prompt)
            bug = not found or bool(re.search(r"Traceback|TimeoutError", prompt))
            review = {"is_bug": bug,
                      "summary": "The run failed; see the traceback." if bug else
                      f"Hold-out {found[-1][0]} = {found[-1][1]}.",
                      "metric": None if bug else float(found[-1][1]),
                      "lower_is_better": found[-1][2] == "True" if found else False}
            if tools:
                return "", [ToolCall(name="submit_review", arguments=review, id="call_review")]
            return json.dumps(review), []
        if stage == "debug":
            variant, plan = "constant", "The previous code crashed; predict the training prior instead."
        elif stage == "improve":
            variant = self.second_model if f'"{self.config.first_model}"' in prompt else self.config.first_model
            plan = f"Replace the model with a {variant} pipeline, keeping the same validation split."
        else:
            variant, plan = self.config.first_model, (
                f"Infer the submission format from the sample, fit a {self.config.first_model} pipeline, "
                "print the hold-out metric and write submission.csv.")
        return f"{plan}\n\n```python\n{solve_program(variant)}\n```", []

    # ------------------------------------------------------------------ mledojo
    def _mledojo(self, messages, tools, _stage) -> tuple[str, list[ToolCall]]:
        mine = [_content(m) for m in messages if m.get("role") == "assistant"]
        obs = _last_user(messages) if mine else ""
        executed = [m for m in mine if '"execute_code"' in m]
        if not mine:
            action = {"action": "request_info", "params": {"info_type": "overview"}}
        elif not executed:
            action = {"action": "execute_code", "params": {"code": solve_program(self.config.first_model)}}
        elif "FAILED" in obs and len(executed) == 1:
            action = {"action": "execute_code", "params": {"code": solve_program("constant")}}
        elif len(executed) == 1:
            action = {"action": "execute_code", "params": {"code": solve_program(self.second_model)}}
        else:
            action = {"action": "end", "params": {}}
        return f"```json\n{json.dumps(action)}\n```", []


def make_baseline(config: BaselineConfig) -> BaselineBackend:
    """Registry factory for the ``baseline`` backend."""
    return BaselineBackend(config)
