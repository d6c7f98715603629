"""``baseline``: a scripted AutoML policy that speaks every built-in scaffold's protocol.

It reads only the conversation (never the task object), like any model behind a backend:
explore the files, fit a model, check the submission with the tools the scaffold offers, finish
(ReAct: ``validate``, or the release's ``Score`` under the ``sandmle-release*`` presets; MLE-Dojo:
a second model family, then ``end``, or further solutions where ``end`` is not offered, as under
preset ``paper``; AIDE: drafts, then improvements that switch the model family). When an execution fails it
falls back to the training prior, which always yields a valid submission. Used as the quickstart
policy and as the lower bound of every study.

Sampling behaves as a model's would: at temperature 0 the policy is greedy (``first_model`` with
default settings, then ``linear`` or ``forest``); at a positive temperature the sampling seed and
the prompt pick the model family, its hyper-parameters and the feature choices
(:class:`~sandmle.scaffolds.baseline_programs.Choices`), so different seeds give different
solutions and the same seed and prompt give the same one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Literal

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import Backend, ComponentConfig
from sandmle.core.records import Completion, Sampling, ToolCall, Usage

from .baseline_programs import EXPLORE, FAMILIES, Choices, short_program, solve_program
from .react import TOOL_DOCS, parse_text_call
from .react_release import SCORE_TOOL

_METRIC = re.compile(r"VALIDATION_METRIC (\S+) (\S+) (True|False)")
_MODEL_IN_CODE = re.compile(r'\\?"model\\?": \\?"(\w+)')  # plain, or JSON-escaped in an MLE-Dojo action
# Sampled model families and their weights (what an AutoML-minded agent reaches for first).
FAMILY_WEIGHTS = {"forest": 0.35, "gbt": 0.3, "linear": 0.25, "knn": 0.1}
FAMILIES_CYCLE = list(FAMILY_WEIGHTS)  # the greedy policy's later MLE-Dojo solutions, in turn
_END_ACTION = "- end: params {}"  # how the MLE-Dojo prompt offers `end` (absent under preset paper)


class BaselineConfig(ComponentConfig):
    """``first_model``: the greedy (temperature 0) policy's first model family. ``style``: the
    full AutoML programs (~1,500 tokens: hold-out metric, dates, text, images, probabilities), or
    ``short`` ones (~285 tokens, :func:`~sandmle.scaffolds.baseline_programs.short_program`) and
    short replies, a curriculum a small model can learn to write within a reply budget; ReAct
    then skips the exploring call."""

    first_model: str = Field("forest", description="forest, gbt, linear or knn")
    style: Literal["automl", "short"] = Field("automl", description="automl (full programs) or short")


def sample_choices(rng: random.Random | None, first_model: str = "forest", avoid: str | None = None) -> Choices:
    """The greedy choices (``rng`` None) or a sample: family, hyper-parameters, features.
    ``avoid`` excludes a family (an improvement switches to another one)."""
    if rng is None:
        model = first_model if first_model != avoid else ("linear" if avoid != "linear" else "forest")
        return Choices(model=model)
    weights = {k: w for k, w in FAMILY_WEIGHTS.items() if k != avoid}
    model = rng.choices(list(weights), weights=list(weights.values()))[0]
    return Choices(model=model, n_estimators=rng.choice([50, 100, 200]), max_depth=rng.choice([None, 6, 12]),
                   min_samples_leaf=rng.choice([1, 2, 4]), learning_rate=rng.choice([0.03, 0.1, 0.2]),
                   C=rng.choice([0.1, 0.3, 1.0, 3.0]), k=rng.choice([5, 10, 20]),
                   parse_dates=rng.random() < 0.5, text_with_columns=rng.random() < 0.5,
                   text_ngrams=rng.choice([1, 2]), image_grid=rng.choice([6, 8, 12]))


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


# The checking tools the ReAct policy calls after its solution, in this order, when offered:
# sandmle's `validate`, the release's `Score` (react presets sandmle-release*), sandmle's `score`.
_CHECKS = [("validate", "Check the submission format."), (SCORE_TOOL, "Grade the submission with the Score tool."),
           ("score", "Grade the submission.")]
_TASK_ID = re.compile(r"## (?:Competition|Task) ID: (\S+)")


def offered_react_tools(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> set[str]:
    """The tools a ReAct scaffold offers: the native schemas, else what its system prompt documents
    (sandmle's prompt lists each tool's doc line; the release's shows a Score call)."""
    if tools:
        return {t.get("function", {}).get("name") for t in tools}
    system = next((_content(m) for m in messages if m.get("role") == "system"), "")
    offered = {name for name in ("python", "validate", "score") if TOOL_DOCS[name] in system}
    if TOOL_DOCS[SCORE_TOOL] in system or f'"name": "{SCORE_TOOL}"' in system:
        offered.add(SCORE_TOOL)
    return offered | {"python"}


def called_react_tools(messages: list[dict[str, Any]]) -> list[str]:
    """Names of the tools the policy's earlier replies called (native calls or text calls)."""
    names = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        native = [c.get("function", {}).get("name") for c in m.get("tool_calls") or []]
        names += native or [parse_text_call(_content(m))[0]]
    return [n for n in names if n]


def competition_id(messages: list[dict[str, Any]]) -> str:
    """The task id the user prompt states (the release's Score tool needs it)."""
    for m in messages:
        found = _TASK_ID.search(_content(m)) if m.get("role") == "user" else None
        if found:
            return found.group(1)
    return ""


#: The reply protocols the baseline speaks (``protocol`` passed to ``complete``), by their first
#: dotted part; documented in docs/plugins/backends.md.
PROTOCOLS = {
    "react": "ReAct: <think>, then a python tool call (text <tool_call> or native), checks, <answer>",
    "aide": "AIDE stages aide.draft / aide.improve / aide.debug: a plan and one ```python block; "
            "aide.review: a JSON review (or the submit_review tool)",
    "mledojo": "MLE-Dojo: one ```json action per reply (request_info, execute_code, end)",
    "code": "any scaffold that runs one ```python block per reply: a solution, or the training "
            "prior after a failed execution",
}
_AIDE_STAGES = ("", "draft", "improve", "debug", "review")


class UnknownProtocolError(SandmleError, ValueError):
    """A scaffold asked the baseline for a reply protocol it does not speak."""


class BaselineBackend(Backend):
    """Scripted AutoML agent; ``protocol`` tells it which scaffold stage is asking (``None``:
    ``react``; a protocol it does not speak is an :class:`UnknownProtocolError`, never a reply
    in some other format that the scaffold would silently fail to parse)."""

    name = "baseline"

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config or BaselineConfig()
        if self.config.first_model not in FAMILIES:
            raise ValueError(f"unknown first_model {self.config.first_model!r}; known: {FAMILIES}")

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        stage = (protocol or "react").split(".", 1)
        handlers = {"react": self._react, "aide": self._aide, "mledojo": self._mledojo, "code": self._code}
        sub = stage[1] if len(stage) > 1 else ""
        if stage[0] not in handlers or (stage[0] == "aide" and sub not in _AIDE_STAGES):
            raise UnknownProtocolError(
                f"the baseline backend does not speak protocol {protocol!r}; it speaks "
                + "; ".join(f"{name!r} ({what})" for name, what in PROTOCOLS.items())
                + ". Pass one of them as complete(..., protocol=...), e.g. 'code' for a scaffold that "
                  "runs the ```python block of each reply")
        text, calls = handlers[stage[0]](messages, tools, sub, sampling)
        prompt_chars = sum(len(_content(m)) for m in messages)
        usage = Usage(prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4 + 1, llm_calls=1)
        return Completion(text=text, tool_calls=calls, usage=usage, finish_reason="stop")

    @staticmethod
    def _rng(sampling: Sampling | None, key: str) -> random.Random | None:
        """The sampler for one decision: None (greedy) at temperature 0, else seeded by the
        sampling seed and ``key`` (the prompt the decision answers)."""
        if sampling is None or sampling.temperature <= 0:
            return None
        digest = hashlib.sha256(f"{sampling.seed or 0}|{key}".encode()).hexdigest()
        return random.Random(digest)

    def _episode_choices(self, messages: list[dict[str, Any]], sampling: Sampling | None) -> tuple[Choices, Choices]:
        """First and second solution of an episode, fixed by the seed and the task prompt."""
        task_prompt = next((_content(m) for m in messages if m.get("role") == "user"), "")
        rng = self._rng(sampling, task_prompt)
        first = sample_choices(rng, self.config.first_model)
        return first, sample_choices(rng, self.config.first_model, avoid=first.model)

    def _program(self, choice: Choices | str) -> str:
        """The program of ``choice`` in this policy's style."""
        if self.config.style == "short":
            return short_program(choice if isinstance(choice, str) else choice.model)
        return solve_program(choice)

    def _describe(self, choice: Choices) -> str:
        return choice.model if self.config.style == "short" else choice.describe()

    # ------------------------------------------------------------------ react
    def _react(self, messages, tools, _stage, sampling) -> tuple[str, list[ToolCall]]:
        step = sum(m.get("role") == "assistant" for m in messages)
        obs = _last_user(messages) if step else ""
        native = bool(tools)
        if self.config.style == "short":
            step += 1  # no exploring call: the short program reads the files itself
        if step == 0:
            return self._react_call("Look at the files and the sample submission first.", "python",
                                    {"code": EXPLORE}, native)
        if step == 1:
            first, _ = self._episode_choices(messages, sampling)
            thought = (f"Fit {first.model}, write submission.csv." if self.config.style == "short" else
                       f"Fit a {first.describe()} pipeline, check it on a hold-out split, write submission.csv.")
            return self._react_call(thought, "python", {"code": self._program(first)}, native)
        if step == 2 and _failed(obs):
            return self._react_call("That failed; fall back to the training prior.", "python",
                                    {"code": self._program("constant")}, native)
        # Check the submission with each checking tool the scaffold offers, once, then answer.
        offered, called = offered_react_tools(messages, tools), called_react_tools(messages)
        for name, thought in _CHECKS:
            if name in offered and name not in called:
                args = {"competition_id": competition_id(messages)} if name == SCORE_TOOL else {}
                return self._react_call(thought, name, args, native)
        return "<think>The submission is written and checked.</think>\n<answer>submission</answer>", []

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
    def _aide(self, messages, tools, stage, sampling) -> tuple[str, list[ToolCall]]:
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
            choice, plan = Choices(model="constant"), "The previous code crashed; predict the training prior instead."
            if self.config.style == "short":
                plan = "The previous code crashed; use a linear model."
        elif stage == "improve":
            previous = _MODEL_IN_CODE.findall(prompt)
            choice = sample_choices(self._rng(sampling, prompt), self.config.first_model, avoid=previous[-1] if previous else None)
            plan = f"Replace the model with a {self._describe(choice)} pipeline, keeping the same validation split."
        else:
            choice = sample_choices(self._rng(sampling, prompt), self.config.first_model)
            plan = (f"Fit a {choice.model} model, write submission.csv." if self.config.style == "short" else
                    f"Infer the submission format from the sample, fit a {choice.describe()} pipeline, "
                    "print the hold-out metric and write submission.csv.")
        return f"{plan}\n\n```python\n{self._program(choice)}\n```", []

    # ------------------------------------------------------------------ code
    def _code(self, messages, tools, _stage, sampling) -> tuple[str, list[ToolCall]]:
        mine = sum(m.get("role") == "assistant" for m in messages)
        if mine and _failed(_last_user(messages)):
            choice, plan = Choices(model="constant"), "That failed; predict the training prior instead."
        else:
            first, second = self._episode_choices(messages, sampling)
            choice = first if not mine else second
            plan = (f"Infer the submission format from the sample, fit a {choice.describe()} pipeline, "
                    "print the hold-out metric and write submission.csv.")
        return f"{plan}\n\n```python\n{solve_program(choice)}\n```", []

    # ------------------------------------------------------------------ mledojo
    def _mledojo(self, messages, tools, _stage, sampling) -> tuple[str, list[ToolCall]]:
        mine = [_content(m) for m in messages if m.get("role") == "assistant"]
        obs = _last_user(messages) if mine else ""
        executed = [m for m in mine if '"execute_code"' in m]
        if not mine and self.config.style != "short":
            action = {"action": "request_info", "params": {"info_type": "overview"}}
        elif not executed:
            action = {"action": "execute_code", "params": {"code": self._program(self._episode_choices(messages, sampling)[0])}}
        elif "FAILED" in obs and len(executed) == 1:
            action = {"action": "execute_code", "params": {"code": self._program("constant")}}
        elif len(executed) == 1 and self.config.style != "short":
            action = {"action": "execute_code", "params": {"code": self._program(self._episode_choices(messages, sampling)[1])}}
        elif _END_ACTION in (_content(messages[0]) if messages else ""):
            action = {"action": "end", "params": {}}
        else:  # no `end` (preset paper, as MLE-Agent): keep trying other solutions; the best one is kept
            previous = _MODEL_IN_CODE.findall(executed[-1])
            rng = self._rng(sampling, f"{len(executed)}|{_content(messages[0])}")
            greedy = FAMILIES_CYCLE[len(executed) % len(FAMILIES_CYCLE)]
            choice = sample_choices(rng, greedy, avoid=previous[-1] if previous else None)
            action = {"action": "execute_code", "params": {"code": self._program(choice)}}
        return f"```json\n{json.dumps(action)}\n```", []


def make_baseline(config: BaselineConfig) -> BaselineBackend:
    """Registry factory for the ``baseline`` backend."""
    return BaselineBackend(config)
