"""``react``: SandMLE's ReAct loop (think, one tool call per reply, answer to finish).

Text protocol (SandMLE's): ``<think>…</think>`` then one ``<tool_call>`` holding either the line
``python`` and a ``<code>…</code>`` block, or a JSON ``{"name", "arguments"}`` call; observations
come back as user messages ``<tool_response>…</tool_response>``; ``<answer>submission</answer>``
ends the episode; an answer before any tool response is a format failure. An episode in which
more than 20% of the python executions time out stops with reason ``"timeout"`` (SandMLE's
TIMEOUT, masked out of training). ``tool_mode="native"`` offers the same tools as function calls.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import Backend, ComponentConfig, SandboxSession, Scaffold, ScaffoldLimits, ScoreFn
from sandmle.core.records import Completion, Trajectory, Turn
from sandmle.core.task import Task

from .plumbing import Episode, check_submission, estimate_tokens, killed_note, public_file_listing, tail_lines


class ReactConfig(ComponentConfig):
    """SandMLE's training limits by default (15 calls, 1200 s, 300 s per execution)."""

    limits: ScaffoldLimits = Field(default_factory=ScaffoldLimits)
    tool_mode: Literal["text", "native"] = "text"
    show_score: bool = False  # offer the Score tool (SandMLE's training reveals it)
    max_context_tokens: int = Field(32768, ge=256)
    llm_timeout_s: float = Field(300.0, gt=0)
    output_lines: int = Field(20, ge=1)


SYSTEM = """You are an experienced Kaggle competitor solving a machine-learning task alone.
Work in small steps with the python tool: every call runs a fresh Python process in the task's \
directory, so each program must load what it needs. Do not install packages. Keep improving \
your solution while you have turns left.
Reply with your reasoning inside <think></think>, then exactly one tool call:
<tool_call>
python
<code>
# your program
</code>
</tool_call>
Other tools take a JSON call: <tool_call>{{"name": "validate", "arguments": {{}}}}</tool_call>
Tools: {tools}
When submission.csv is final, reply <answer>submission</answer>.
Today is {today}."""

TOOL_DOCS = {
    "python": "python: run a Python program; you see the tail of its output.",
    "validate": "validate: check submission.csv against the sample submission's format.",
    "score": "score: grade submission.csv and report the metric and medal thresholds.",
}


def task_prompt(task: Task, limits: ScaffoldLimits) -> str:
    """The user message: description, files, rules (SandMLE's sections, in our words)."""
    files = "\n".join(f"- ./{f}" for f in public_file_listing(task))
    return (f"Solve this task.\n\n## Description\n## Task ID: {task.id}\n{task.description}\n\n"
            f"## Files in the current directory\n{files}\n\n## Rules\n"
            f"- Each execution may run at most {limits.exec_timeout_s:g} seconds; you have "
            f"{limits.max_llm_calls} replies in total.\n"
            "- Look at the data before modelling; match the columns of sample_submission.csv.\n"
            "- Write submission.csv in the current directory. No package installs, no progress bars.")


_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_CODE = re.compile(r"<code>(.*?)</code>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def think_ok(text: str) -> bool:
    """SandMLE's format rule: starts with <think>, closes it, and the thought is not blank."""
    stripped = text.lstrip()
    if not stripped.startswith("<think>") or "</think>" not in stripped:
        return False
    return bool(stripped[len("<think>"):stripped.index("</think>")].strip())


def parse_text_call(text: str) -> tuple[str | None, dict[str, Any], str | None]:
    """``(tool name, arguments, error)`` of the reply's tool call; name ``None`` when there is none."""
    match = _TOOL_CALL.search(text)
    if not match:
        return None, {}, None
    inner = match.group(1)
    if "python" in inner.lower() or "<code>" in inner:
        blocks = _CODE.findall(text)  # the last <code> block anywhere in the reply, as SandMLE
        if not blocks:
            return "python", {}, "python call without a <code>...</code> block"
        return "python", {"code": blocks[-1].strip("\n")}, None
    try:
        import json5

        call = json5.loads(inner.strip())
        if not isinstance(call, dict) or "name" not in call:
            raise ValueError("not an object with a name")
        args = call.get("arguments") or {}
        return str(call["name"]), args if isinstance(args, dict) else {}, None
    except Exception:  # noqa: BLE001 - any malformed call is a format failure
        return "invalid", {}, 'invalid tool call: give JSON with "name" and "arguments"'


def native_tools(names: list[str]) -> list[dict[str, Any]]:
    """OpenAI function schemas of the offered tools."""
    params = {"python": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}
    return [{"type": "function", "function": {
        "name": n, "description": TOOL_DOCS[n],
        "parameters": params.get(n, {"type": "object", "properties": {}})}} for n in names]


class ReactScaffold(Scaffold):
    """SandMLE's ReAct loop on the shared :class:`Episode` plumbing."""

    name = "react"

    def __init__(self, config: ReactConfig | None = None):
        self.config = config or ReactConfig()

    async def run(self, task: Task, backend: Backend, session: SandboxSession, *, seed: int = 0,
                  score: ScoreFn | None = None) -> Trajectory:
        cfg = self.config
        ep = Episode(task, backend, session, cfg.limits, scaffold=self.name, seed=seed,
                     llm_timeout_s=cfg.llm_timeout_s)
        tools = ["python", "validate"] + (["score"] if cfg.show_score and score is not None else [])
        system = SYSTEM.format(tools="; ".join(TOOL_DOCS[t] for t in tools), today=date.today())
        messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                          {"role": "user", "content": task_prompt(task, cfg.limits)}]
        schemas = native_tools(tools) if cfg.tool_mode == "native" else None
        timeouts = executions = responses = 0
        while True:
            messages = self._fit_context(messages)
            completion, turn = await ep.call(messages, protocol="react", stage="react", tools=schemas)
            if completion is None:
                break
            text = (completion.text or "").split("<tool_response>")[0]  # drop invented responses
            turn.text = text
            name, args, error, call_id = self._parse(completion, text)
            answer = _ANSWER.search(text)
            turn.format_ok = (name is not None or answer is not None) and error is None and \
                (think_ok(text) if cfg.tool_mode == "text" else True)
            if name is None and answer is None:
                turn.format_error = "no tool call and no answer"
            elif error:
                turn.format_error = error
            elif cfg.tool_mode == "text" and not think_ok(text):
                turn.format_error = "reply must start with a non-empty <think>...</think>"
            if answer is not None and name is None and not responses:
                # SandMLE's format: at least one tool response comes before the answer.
                turn.format_ok, turn.format_error = False, "answer before any tool response"
            messages.append(self._assistant_message(text, name, args, call_id))
            if name is not None:
                obs = error or await self._run_tool(ep, turn, name, args, tools, task, score)
                if name == "python" and not error:
                    executions += 1
                    timeouts += turn.executions[-1].killed == "timeout"
                turn.observations.append(obs)
                messages.append(self._observation_message(obs, call_id))
                responses += 1
            if answer is not None:
                ep.stop_reason = ep.stop_reason or "answer"
                break
        rate = ep.traj.extra["python_timeout_rate"] = timeouts / executions if executions else 0.0
        if rate > 0.2:  # SandMLE (rLLM) marks such an episode TIMEOUT, which training masks out
            ep.stop_reason = "timeout"
        return ep.finish(ep.stop_reason or "max_llm_calls", messages)

    # ------------------------------------------------------------------ parsing
    def _parse(self, completion: Completion, text: str) -> tuple[str | None, dict[str, Any], str | None, str | None]:
        if self.config.tool_mode == "native" and completion.tool_calls:
            call = completion.tool_calls[0]
            err = "one tool call per reply" if len(completion.tool_calls) > 1 else None
            if "__invalid_json__" in call.arguments:
                err = "invalid tool call: arguments must be a JSON object"
            return call.name, call.arguments, err, call.id or "call_0"
        name, args, err = parse_text_call(text)
        return name, args, err, None

    def _assistant_message(self, text: str, name: str | None, args: dict[str, Any],
                           call_id: str | None) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": text}
        if call_id is not None and name is not None:
            msg["tool_calls"] = [{"id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}]
        return msg

    @staticmethod
    def _observation_message(obs: str, call_id: str | None) -> dict[str, Any]:
        if call_id is not None:
            return {"role": "tool", "tool_call_id": call_id, "content": obs}
        return {"role": "user", "content": f"<tool_response>\n{obs}\n</tool_response>"}

    # ------------------------------------------------------------------ tools
    async def _run_tool(self, ep: Episode, turn: Turn, name: str, args: dict[str, Any], tools: list[str],
                        task: Task, score: ScoreFn | None) -> str:
        if name not in tools:
            return f"Tool {name!r} not found; available tools: {', '.join(tools)}."
        if name == "python":
            code = args.get("code")
            if not isinstance(code, str) or not code.strip():
                return "[Error] the python tool needs non-empty code."
            result = await ep.execute(code, turn)
            return python_observation(result.stdout_tail, result.stderr_tail, killed_note(
                result, ep.limits.exec_timeout_s), ep.submission_exists(), self.config.output_lines)
        if name == "validate":
            ok, detail = check_submission(ep.session.workdir, task.public_dir)
            return ("Submission format OK: " if ok else "Submission format problem: ") + detail
        grade = ep.grade(score)
        if grade is None or not grade.submission_exists:
            return "[Error] submission file not found; write submission.csv first."
        if not grade.valid_submission:
            return f"Submission csv is invalid: {grade.reason}"
        details = {"score_primary": grade.score, "metric_lower_is_better": grade.is_lower_better,
                   "threshold_gold": grade.gold_threshold, "threshold_silver": grade.silver_threshold,
                   "threshold_bronze": grade.bronze_threshold, "threshold_median": grade.median_threshold}
        nudge = "" if grade.any_medal else " Not at bronze yet; keep improving."
        return f"Submission OK.{nudge}\nDetails: {json.dumps(details)}"

    # ------------------------------------------------------------------ context
    def _fit_context(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """SandMLE's policy: drop failed tool exchanges first, else keep system, task, last two."""
        if estimate_tokens(messages) <= self.config.max_context_tokens:
            return messages
        kept = messages[:2]
        i = 2
        while i < len(messages):
            pair = messages[i:i + 2]
            failed = len(pair) == 2 and pair[0]["role"] == "assistant" and \
                "error" in str(pair[1].get("content", "")).lower()
            if failed and i + 2 < len(messages):
                i += 2
                continue
            kept.append(messages[i])
            i += 1
        if len(kept) == len(messages) or estimate_tokens(kept) > self.config.max_context_tokens:
            kept = messages[:2] + messages[-2:]
        return kept


def python_observation(stdout: str, stderr: str, killed: str, submission: bool, lines: int = 20) -> str:
    """SandMLE's python tool observation: output and stderr tails, then a note on the submission."""
    parts = []
    if stdout.strip():
        parts.append("[Output]\n" + tail_lines(stdout, lines))
    if stderr.strip():
        parts.append("[Stderr]\n" + tail_lines(stderr, lines))
    if killed:
        parts.append(killed)
    if not parts:
        parts.append("No stdout or stderr; print what you want to see.")
    note = ("Note: submission.csv was found in the current directory." if submission
            else "Note: submission.csv was not found in the current directory.")
    note += " Stderr was empty." if not stderr.strip() else ""
    return "\n".join(parts + [note])


def make_react(config: ReactConfig) -> ReactScaffold:
    """Registry factory for ``react``."""
    return ReactScaffold(config)
