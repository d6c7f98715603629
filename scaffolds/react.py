"""``react``: SandMLE's ReAct loop (think, one tool call per reply, answer to finish).

Text protocol (SandMLE's): ``<think>…</think>`` then one ``<tool_call>`` holding either the line
``python`` and a ``<code>…</code>`` block, or a JSON ``{"name", "arguments"}`` call; observations
come back as user messages ``<tool_response>…</tool_response>``; ``<answer>submission</answer>``
ends the episode; an answer before any tool response is a format failure. An episode in which
more than 20% of the python executions time out stops with reason ``"timeout"`` (SandMLE's
TIMEOUT, masked out of training). ``tool_mode="native"`` offers the same tools as function calls.

``preset: sandmle-release`` switches every piece to the released code's behaviour (see
:class:`ReactConfig` and :mod:`sandmle.scaffolds.react_release`). Successful score calls are
recorded in ``Trajectory.extra["score_calls"]`` for the reward's ``reward_source: last_score``.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import Field

from sandmle.core.interfaces import Backend, SandboxSession, Scaffold, ScaffoldLimits, ScoreFn
from sandmle.core.records import Completion, Grade, Trajectory, Turn
from sandmle.core.task import Task
from sandmle.graders.rewards import release_format_ok

from .plumbing import (
    Episode, check_submission, estimate_tokens, folded_listing, killed_note, public_file_listing, tail_lines,
)
from .presets import PresetConfig, SamplingConfig
from .react_release import (SCORE_TOOL, agent_workdir, prune_release, release_score_tool, release_system_prompt,
                            release_user_prompt)


RELEASE_LIMITS = {"max_llm_calls": 15, "max_wall_s": 1200.0, "exec_timeout_s": 300.0}
RELEASE_STYLE = {"show_score": True, "validate_tool": False, "score_format": "release", "prompt": "release",
                 "format_rule": "release", "timeout_share": "tool_responses", "context_policy": "release",
                 "max_context_tokens": 32768, "output_lines": 20}


class ReactConfig(PresetConfig):
    """The ReAct loop's setup. Defaults are sandmle's evaluation defaults; each field says which
    source it follows. Presets (Tonyzhou98/SandMLE@0912362, ``examples/deepresearch/``):

    - ``sandmle-release``: the released *training* loop (``custom_train.py``: 15 calls, 1200 s,
      300 s per execution and per model call; tools PythonInterpreter + ``Score``; the release's
      prompts, format rule, TIMEOUT share and context pruning; sampling at temperature 1.0 with up
      to 32768 new tokens, ``train_mle_syn_qwen3_8b.sh``).
    - ``sandmle-release-eval``: the same loop with ``REPRODUCE.md``'s evaluation limits (20 calls,
      86400 s per episode and per execution; 1800 s per model call, ``custom_evaluate.py``) and the
      training script's validation sampling (temperature 1.0, top_p 0.95).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "sandmle-release": {**RELEASE_STYLE, "limits": RELEASE_LIMITS, "llm_timeout_s": 300.0,
                            "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 32768}},
        "sandmle-release-eval": {**RELEASE_STYLE, "llm_timeout_s": 1800.0,
                                 "limits": {"max_llm_calls": 20, "max_wall_s": 86400.0, "exec_timeout_s": 86400.0},
                                 "sampling": {"temperature": 1.0, "top_p": 0.95, "max_tokens": 32768}},
    }

    preset: Literal["sandmle-release", "sandmle-release-eval"] | None = Field(
        None, description="a named setup filling every field not set here (see the class docstring)")
    limits: ScaffoldLimits = Field(default_factory=ScaffoldLimits,
                                   description="release training limits (custom_train.py: 15 calls, 1200 s, 300 s)")
    tool_mode: Literal["text", "native"] = Field("text", description="text tags (release) or native function calls")
    show_score: bool = Field(False, description="offer the score tool; the release always does, sandmle's "
                                                "evaluation default hides test scores from the agent")
    validate_tool: bool = Field(True, description="offer `validate` (sandmle's; the release has no such tool)")
    score_format: Literal["sandmle", "release"] = Field(
        "sandmle", description="'release': the tool is `Score` with {competition_id}, its reply uses the "
                               "release's Details keys and bronze nudge; 'sandmle': `score`, no arguments")
    prompt: Literal["sandmle", "release"] = Field(
        "sandmle", description="'release': the release's system and user prompts (absolute data folder, "
                               "hardware line, rules); 'sandmle': ours (relative paths, no hardware claim)")
    format_rule: Literal["sandmle", "release"] = Field(
        "sandmle", description="'release': a reply is well formed when it opens with a non-empty <think> "
                               "(deepresearch_workflow.py); 'sandmle': it also needs a parsable tool call or an "
                               "answer, and an answer before any tool response is a failure")
    timeout_share: Literal["python_calls", "tool_responses"] = Field(
        "python_calls", description="TIMEOUT when timed-out executions exceed 20% of the python calls "
                                    "(sandmle) or of all tool responses left in the transcript (release)")
    context_policy: Literal["sandmle", "release"] = Field(
        "sandmle", description="'release': prune after each turn, chars/4 estimate, and keep the pruned "
                               "transcript; 'sandmle': fit the context before each call, never dropping the "
                               "latest exchange")
    max_context_tokens: int = Field(32768, ge=256, description="release: deepresearch_agent.py max_context_tokens")
    llm_timeout_s: float = Field(300.0, gt=0, description="release training: DEEPRESEARCH_CALL_SERVER_TIMEOUT_S")
    output_lines: int = Field(20, ge=1, description="release: last 20 lines of stdout/stderr")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="sandmle evaluation defaults")


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
    SCORE_TOOL: 'Score: grade submission.csv; arguments {"competition_id": the competition id}.',
}


def task_prompt(task: Task, limits: ScaffoldLimits) -> str:
    """The user message: description, files, rules (SandMLE's sections, in our words)."""
    files = "\n".join(f"- ./{f}" for f in folded_listing(public_file_listing(task)))
    return (f"Solve this task.\n\n## Description\n## Task ID: {task.id}\n{task.description}\n\n"
            f"## Files in the current directory\n{files}\n\n## Rules\n"
            f"- Each execution may run at most {limits.exec_timeout_s:g} seconds; you have "
            f"{limits.max_llm_calls} replies in total.\n"
            "- Look at the data before modelling; match the columns of sample_submission.csv.\n"
            "- Write submission.csv in the current directory. No package installs, no progress bars.")


_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_CODE = re.compile(r"<code>(.*?)</code>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

think_ok = release_format_ok  # one rule for the scaffold and the reward (deepresearch_workflow.py)


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
    params = {"python": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
              SCORE_TOOL: {"type": "object", "properties": {"competition_id": {"type": "string"}},
                           "required": ["competition_id"]}}
    return [{"type": "function", "function": {
        "name": n, "description": TOOL_DOCS[n],
        "parameters": params.get(n, {"type": "object", "properties": {}})}} for n in names]


class _Record:
    """What one episode keeps beside the transcript: tool responses (for the TIMEOUT share) and
    successful score calls (for the reward), tied to their messages so pruning is accounted for."""

    def __init__(self) -> None:
        self.responses: list[tuple[dict[str, Any], bool]] = []  # (message, python execution timed out)
        self.scores: list[tuple[dict[str, Any], int, Grade]] = []  # (message, turn index, grade)
        self.executions = self.timeouts = 0

    def timeout_rate(self, share: str, transcript: list[dict[str, Any]]) -> float:
        if share == "python_calls":
            return self.timeouts / self.executions if self.executions else 0.0
        kept = {id(m) for m in transcript}
        left = [timed_out for msg, timed_out in self.responses if id(msg) in kept]
        return sum(left) / len(left) if left else 0.0

    def score_calls(self, transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = {id(m) for m in transcript}
        return [{"turn": turn, "in_transcript": id(msg) in kept, "grade": grade.model_dump(mode="json")}
                for msg, turn, grade in self.scores]


class ReactScaffold(Scaffold):
    """SandMLE's ReAct loop on the shared :class:`Episode` plumbing."""

    name = "react"

    def __init__(self, config: ReactConfig | None = None):
        self.config = config or ReactConfig()

    def tools(self, score: ScoreFn | None) -> list[str]:
        """Names of the tools offered in this episode."""
        cfg = self.config
        score_tool = SCORE_TOOL if cfg.score_format == "release" else "score"
        return ["python"] + (["validate"] if cfg.validate_tool else []) + \
            ([score_tool] if cfg.show_score and score is not None else [])

    async def run(self, task: Task, backend: Backend, session: SandboxSession, *, seed: int = 0,
                  score: ScoreFn | None = None) -> Trajectory:
        cfg = self.config
        ep = Episode(task, backend, session, cfg.limits, scaffold=self.name, seed=seed,
                     sampling=cfg.sampling.for_episode(seed), llm_timeout_s=cfg.llm_timeout_s)
        tools = self.tools(score)
        release_io = cfg.prompt == "release" or cfg.score_format == "release"
        folder = await agent_workdir(session) if release_io else ""
        messages = self._opening(task, tools, folder)
        schemas = native_tools(tools) if cfg.tool_mode == "native" else None
        record = _Record()
        while True:
            if cfg.context_policy == "sandmle":
                messages = self._fit_context(messages)
            completion, turn = await ep.call(messages, protocol="react", stage="react", tools=schemas)
            if completion is None:
                break
            text = (completion.text or "").split("<tool_response>")[0]  # drop invented responses
            turn.text = text
            name, args, error, call_id = self._parse(completion, text)
            answer = _ANSWER.search(text)
            turn.format_ok, turn.format_error = self._judge(text, name, answer is not None, error,
                                                            bool(record.responses))
            messages.append(self._assistant_message(text, name, args, call_id))
            if name is not None:
                obs, grade = (error, None) if error else await self._run_tool(ep, turn, name, args, tools, task,
                                                                              score, folder)
                timed_out = name == "python" and not error and bool(turn.executions) and \
                    turn.executions[-1].killed == "timeout"
                if name == "python" and not error:
                    record.executions += 1
                    record.timeouts += timed_out
                turn.observations.append(obs)
                message = self._observation_message(obs, call_id)
                messages.append(message)
                record.responses.append((message, timed_out))
                if grade is not None:
                    record.scores.append((message, len(ep.traj.turns) - 1, grade))
            if answer is not None:
                ep.stop_reason = ep.stop_reason or "answer"
                break
            if cfg.context_policy == "release":
                messages = prune_release(messages, cfg.max_context_tokens)
        return self._finish(ep, messages, record)

    def _opening(self, task: Task, tools: list[str], folder: str) -> list[dict[str, Any]]:
        """System and user messages in the configured prompt style."""
        cfg = self.config
        if cfg.prompt == "release":
            extra = [TOOL_DOCS[t] for t in tools if t not in ("python", SCORE_TOOL)]
            system = release_system_prompt(extra)
            user = release_user_prompt(task, folder, cfg.limits.max_llm_calls)
        else:
            system = SYSTEM.format(tools="; ".join(TOOL_DOCS[t] for t in tools), today=date.today())
            user = task_prompt(task, cfg.limits)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _judge(self, text: str, name: str | None, answered: bool, error: str | None,
               responded: bool) -> tuple[bool, str | None]:
        """``(format_ok, format_error)`` of one reply under the configured format rule."""
        thought = think_ok(text) if self.config.tool_mode == "text" or self.config.format_rule == "release" \
            else True
        if self.config.format_rule == "release":  # only the <think> block counts
            return thought, None if thought else "reply must start with a non-empty <think>...</think>"
        if name is None and not answered:
            return False, "no tool call and no answer"
        if error:
            return False, error
        if answered and name is None and not responded:
            # SandMLE's system prompt: at least one tool response comes before the answer.
            return False, "answer before any tool response"
        if not thought:
            return False, "reply must start with a non-empty <think>...</think>"
        return True, None

    def _finish(self, ep: Episode, messages: list[dict[str, Any]], record: _Record) -> Trajectory:
        cfg = self.config
        rate = ep.traj.extra["python_timeout_rate"] = record.timeout_rate(cfg.timeout_share, messages)
        ep.traj.extra["timeout_share_of"] = cfg.timeout_share
        ep.traj.extra["score_calls"] = record.score_calls(messages)
        if cfg.preset:
            ep.traj.extra["preset"] = cfg.preset
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
        # The release stores a tool-calling reply stripped (deepresearch_agent.py: content.strip()).
        content = text.strip() if self.config.prompt == "release" and name is not None else text
        msg: dict[str, Any] = {"role": "assistant", "content": content}
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
                        task: Task, score: ScoreFn | None, folder: str) -> tuple[str, Grade | None]:
        """The observation, and the grade when the call was a successful score call."""
        if name not in tools:
            return f"Tool {name!r} not found; available tools: {', '.join(tools)}.", None
        if name == "python":
            code = args.get("code")
            if not isinstance(code, str) or not code.strip():
                return "[Error] the python tool needs non-empty code.", None
            result = await ep.execute(code, turn)
            return python_observation(result.stdout_tail, result.stderr_tail, killed_note(
                result, ep.limits.exec_timeout_s), ep.submission_exists(), self.config.output_lines), None
        if name == "validate":
            ok, detail = check_submission(ep.session.workdir, task.sample_submission_path)
            return ("Submission format OK: " if ok else "Submission format problem: ") + detail, None
        if name == SCORE_TOOL:
            return await release_score_tool(ep, task, args, score, folder)
        grade = await ep.grade_off_loop(score)
        if grade is None or not grade.submission_exists:
            return "[Error] submission file not found; write submission.csv first.", None
        if not grade.valid_submission:
            return f"Submission csv is invalid: {grade.reason}", None
        details = {"score_primary": grade.score, "metric_lower_is_better": grade.is_lower_better,
                   "threshold_gold": grade.gold_threshold, "threshold_silver": grade.silver_threshold,
                   "threshold_bronze": grade.bronze_threshold, "threshold_median": grade.median_threshold}
        nudge = "" if grade.any_medal else " Not at bronze yet; keep improving."
        return f"Submission OK.{nudge}\nDetails: {json.dumps(details)}", grade

    # ------------------------------------------------------------------ context
    def _fit_context(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Before each call: drop failed tool exchanges first (never the latest), else keep system,
        task and the last two messages."""
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
