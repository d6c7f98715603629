"""``mledojo``: MLE-Dojo's interactive environment driven by its MLE-Agent loop.

The model answers with JSON ``{"action": ..., "params": {...}}`` (bare or in a ```json fence).
Actions: ``request_info(info_type)``, ``validate_code(code)`` (runs, then deletes the submission,
no score), ``execute_code(code)`` (runs and, when a grader is given, reports the leaderboard
position), ``get_history``, ``reset`` (``history_actions``); plus ``end`` (ours, ``allow_end``) to stop early. Scores
appear only inside the feedback text; the step reward is the average position score. A reply
that is not valid JSON gets a separate "fix the JSON" prompt (kept out of the history) up to
``parse_attempts`` times, then the run ends.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from typing import ClassVar

from pydantic import Field

from sandmle.core.interfaces import Backend, SandboxSession, Scaffold, ScaffoldLimits, ScoreFn
from sandmle.core.records import Grade, Trajectory, Turn
from sandmle.core.task import Task
from sandmle.graders.medals import position_score

from .plumbing import Episode, check_submission, estimate_tokens, killed_note, public_file_listing
from .presets import PresetConfig, SamplingConfig

INFO_TYPES = ("overview", "sample_submission", "data_structure", "data_path", "output_path")
CODE_ACTIONS = ("validate_code", "execute_code")


class MledojoConfig(PresetConfig):
    """MLE-Dojo's MLE-Agent setup. Defaults follow MLE-Agent's own (``main.py``: 10 steps;
    ``mleagent/agent.py``: whole history, 30000 prompt tokens) plus sandmle's extras; each field
    says which source it follows. Preset ``paper``: the setup SandMLE's paper ran
    (``scaffolds/mle-dojo/run_dojo_competitions_parallel.sh``: ``--max-steps 30``;
    ``scaffolds/mle-dojo/mledojo/agent/mleagent/config.yaml``: temperature 0, top_p 1, 8192 new
    tokens, 50000 prompt tokens; MLE-Dojo's 43200 s execution timeout, both per execution and for
    the run): only the three actions MLE-Agent accepts, the original reply kept in the history
    after up to three JSON repairs, and a missing or invalid submission is a FAILED step.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"max_steps": 30, "history": "all", "allow_end": False, "history_actions": False,
                  "parse_attempts": 4, "keep_original_reply": True, "missing_submission_fails": True,
                  "max_prompt_tokens": 50000,
                  "limits": {"max_llm_calls": 120, "max_wall_s": 43200.0, "exec_timeout_s": 43200.0},
                  "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8192}},
    }

    preset: Literal["paper"] | None = Field(
        None, description="a named setup filling every field not set here (see the class docstring)")
    limits: ScaffoldLimits = Field(default_factory=lambda: ScaffoldLimits(max_llm_calls=30),
                                   description="sandmle micro-scale budget (MLE-Dojo: 43200 s per execution and run)")
    max_steps: int = Field(10, ge=1, description="MLE-Dojo main.py default 10; the paper: 30")
    history: Literal["all"] | int = Field("all", description="'all' (MLE-Agent) or N: first 2 messages + last 2N")
    allow_end: bool = Field(True, description="accept {'action': 'end'} (sandmle's; MLE-Agent has no such action)")
    history_actions: bool = Field(True, description="offer get_history and reset (MLE-Dojo's env has them; "
                                                    "MLE-Agent does not accept them)")
    parse_attempts: int = Field(3, ge=1, description="replies per step: the first plus JSON repairs "
                                                     "(MLE-Agent: 1 + 3 repairs)")
    keep_original_reply: bool = Field(False, description="keep the unparsable original reply in the history "
                                                         "(MLE-Agent) instead of the repaired one")
    missing_submission_fails: bool = Field(False, description="execute_code without a valid graded submission "
                                                              "is a FAILED step (MLE-Dojo's env)")
    max_prompt_tokens: int = Field(30000, ge=256, description="MLE-Agent default 30000; the paper's config 50000")
    llm_timeout_s: float = Field(300.0, gt=0)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="sandmle evaluation defaults "
                                                                                 "(MLE-Agent: temperature 0)")

    def actions(self) -> tuple[str, ...]:
        """The actions the agent may take."""
        return ("request_info", *CODE_ACTIONS) + (("get_history", "reset") if self.history_actions else ()) + \
            (("end",) if self.allow_end else ())


def intro_prompt(task: Task, cfg: MledojoConfig) -> str:
    actions = ("- request_info: params {\"info_type\": one of " + ", ".join(INFO_TYPES) + "}; returns "
               "task information.\n- validate_code: params {\"code\": ...}; runs the code and reports "
               "errors, without scoring (its submission.csv is deleted).\n- execute_code: params "
               "{\"code\": ...}; runs the code and scores submission.csv on the leaderboard.")
    if cfg.history_actions:
        actions += ("\n- get_history: params {}; summarises your actions so far.\n- reset: params {}; "
                    "restarts the environment.")
    if cfg.allow_end:
        actions += "\n- end: params {}; stop, keeping your best submission."
    return (f"You are a data scientist competing on task {task.id}. Maximise the Position Score of "
            f"your submission on the leaderboard.\nYou have {cfg.max_steps} actions and "
            f"{cfg.limits.max_wall_s:g} seconds in total; each execution may take "
            f"{cfg.limits.exec_timeout_s:g} seconds.\n\nActions:\n{actions}\n\nCode rules: request "
            "information first; read the data from the data path and write submission.csv to the "
            "output path; do not modify the data; print what you need to see; no plots; follow "
            "the sample submission; every program is self-contained. Only execute_code is scored.\n\n"
            "Reply with JSON only, exactly these keys:\n```json\n{\"action\": \"request_info\", "
            "\"params\": {\"info_type\": \"overview\"}}\n```\n```json\n{\"action\": "
            "\"execute_code\", \"params\": {\"code\": \"...\"}}\n```")


_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


def parse_action(text: str, known: tuple[str, ...]) -> tuple[dict[str, Any] | None, str | None]:
    """``(action, None)`` for a valid reply, ``(None, error)`` otherwise."""
    fenced = _FENCE.findall(text or "")
    raw = fenced[-1] if fenced else (text or "").strip()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, f"reply is not valid JSON ({exc})"
    if not isinstance(data, dict) or set(data) != {"action", "params"} or not isinstance(data["params"], dict):
        return None, 'reply must be an object with exactly the keys "action" and "params"'
    action, params = data["action"], data["params"]
    if action not in known:
        return None, f"unknown action {action!r}; known: {', '.join(known)}"
    if action == "request_info" and params.get("info_type") not in INFO_TYPES:
        return None, f"request_info needs info_type in {INFO_TYPES}"
    if action in CODE_ACTIONS and not isinstance(params.get("code"), str):
        return None, f"{action} needs a string 'code'"
    return data, None


def position(score: float, board: list[float], lower_is_better: bool) -> tuple[int, int, float]:
    """``(p, N, (N - p + 1) / N)`` of ``score`` on a leaderboard of N scores, as MLE-Dojo's
    ``_calculate_leaderboard_position``: p is 1 + the number of scores strictly better."""
    score_n = position_score(score, board, lower_is_better)
    n = len(board)
    return n + 1 - round(score_n * n), n, score_n


class MledojoScaffold(Scaffold):
    """MLE-Dojo's environment + MLE-Agent loop on the shared :class:`Episode` plumbing."""

    name = "mledojo"

    def __init__(self, config: MledojoConfig | None = None):
        self.config = config or MledojoConfig()

    async def run(self, task: Task, backend: Backend, session: SandboxSession, *, seed: int = 0,
                  score: ScoreFn | None = None) -> Trajectory:
        cfg = self.config
        ep = Episode(task, backend, session, cfg.limits, scaffold=self.name, seed=seed,
                     sampling=cfg.sampling.for_episode(seed), llm_timeout_s=cfg.llm_timeout_s)
        messages: list[dict[str, Any]] = [{"role": "user", "content": intro_prompt(task, cfg)}]
        state = {"actions": [], "best_raw": None, "best_pos": 0.0, "rewards": []}
        stop = "max_steps"
        for step in range(cfg.max_steps):
            view = self._history(messages)
            if estimate_tokens(view) >= cfg.max_prompt_tokens:
                stop = "context_full"
                break
            action, turn, original = await self._next_action(ep, view)
            if turn is None:
                break
            if action is None:
                stop = "format_error"
                break
            # MLE-Agent keeps its original reply in the history even when a repair parsed instead.
            messages.append({"role": "assistant", "content": original if cfg.keep_original_reply else turn.text})
            if action["action"] == "end":
                stop = "end"
                break
            status, feedback, reward = await self._step(ep, task, action, state, turn, score, step)
            turn.observations.append(feedback)
            state["actions"].append(action["action"])
            state["rewards"].append(reward)
            messages.append({"role": "user", "content": self._next_prompt(status, feedback, cfg.max_steps - step - 1, ep)})
        ep.restore_best_submission()
        ep.traj.extra.update(step_rewards=state["rewards"], best_raw_score=state["best_raw"],
                             best_position_score=state["best_pos"])
        if cfg.preset:
            ep.traj.extra["preset"] = cfg.preset
        return ep.finish(stop, messages)

    def _history(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        n = self.config.history
        if n == "all" or len(messages) <= 2 + 2 * int(n):
            return messages
        return messages[:2] + messages[-2 * int(n):]

    async def _next_action(self, ep: Episode, view: list[dict[str, Any]]
                           ) -> tuple[dict[str, Any] | None, Turn | None, str]:
        """``(action, last turn, original reply text)``; the action is ``None`` when every repair
        failed and the turn is ``None`` when the budget ran out."""
        completion, turn = await ep.call(view, protocol="mledojo", stage="action")
        if completion is None:
            return None, None, ""
        known = self.config.actions()
        action, error = parse_action(turn.text, known)
        first = turn
        for _ in range(self.config.parse_attempts - 1 if error else 0):
            first.format_ok, first.format_error = False, error
            fix = [{"role": "user", "content": f"Your reply was not valid ({error}). Rewrite it as JSON "
                    f"with exactly the keys \"action\" and \"params\", nothing else:\n{turn.text[-4000:]}"}]
            completion, turn = await ep.call(fix, protocol="mledojo", stage="fix_json")
            if completion is None:
                return None, None, ""
            action, error = parse_action(turn.text, known)
            if not error:
                break
            turn.format_ok, turn.format_error = False, error
        if error:
            turn.format_ok, turn.format_error = False, error
            return None, turn, first.text
        return action, turn, first.text

    # ------------------------------------------------------------------ environment
    async def _step(self, ep: Episode, task: Task, action: dict[str, Any], state: dict[str, Any],
                    turn: Turn, score: ScoreFn | None, step: int) -> tuple[str, str, float]:
        name, params = action["action"], action["params"]
        if name == "request_info":
            return "SUCCESS", "=== Competition Info ===\n" + self._info(task, params["info_type"]), 0.0
        if name == "get_history":
            last = state["actions"][-1] if state["actions"] else "none"
            return "SUCCESS", f"Total Actions: {len(state['actions'])}, Last Action: {last}", 0.0
        if name == "reset":
            await ep.remove_submission()
            state.update(best_raw=None, best_pos=0.0)
            return "SUCCESS", "Environment reset.", 0.0
        await ep.remove_submission()
        result = await ep.execute(params["code"], turn)
        status = "SUCCESS" if result.ok else "FAILED"
        out = (result.stdout_tail + result.stderr_tail).rstrip()
        note = killed_note(result, ep.limits.exec_timeout_s)
        if name == "validate_code":
            await ep.remove_submission()
            return status, (f"=== Code Validation Results ===\nStatus: {status}\n"
                            + (f"Errors:\n{out}\n{note}" if not result.ok else f"Output:\n{out}")), 0.0
        text = (f"=== Code Execution Results ===\nStatus: {status}\nExecution time: {result.wall_s:.2f} s\n"
                f"Code output:\n{out}\n{note}".rstrip())
        if not result.ok:
            return status, text, 0.0
        evaluation, reward, valid = self._evaluate(ep, task, state, score, step)
        if not valid and self.config.missing_submission_fails:
            status = "FAILED"  # MLE-Dojo: a missing or unprocessable submission fails the step
        return status, f"{text}\n\n{evaluation}", reward

    def _evaluate(self, ep: Episode, task: Task, state: dict[str, Any], score: ScoreFn | None,
                  step: int) -> tuple[str, float, bool]:
        """Feedback, step reward (the average position score) and whether the submission is valid."""
        ok, detail = check_submission(ep.session.workdir, task.sample_submission_path)
        if not ok:
            return f"=== Submission Evaluation ===\nInvalid submission: {detail}", 0.0, False
        grade: Grade | None = ep.grade(score)
        if grade is not None and grade.score is None:
            return f"=== Submission Evaluation ===\nInvalid submission: {grade.reason or 'not gradable'}", 0.0, False
        boards = {name: board for name, board in (("Private", task.leaderboard), ("Public", task.public_leaderboard))
                  if board}
        if grade is None or not boards:
            ep.offer_submission(float(step))  # no scores here: keep the latest valid submission
            reason = "no grader" if grade is None else "no leaderboard available"
            return f"=== Submission Evaluation ===\nSubmission is valid; not scored ({reason}).", 0.0, True
        lower = task.lower_is_better if grade.is_lower_better is None else grade.is_lower_better
        lines, scores = ["=== Submission Evaluation ==="], []
        raw = grade.unrounded_score  # MLE-Dojo ranks the metric's value as computed
        for board_name, board in boards.items():  # MLE-Dojo: the boards that exist, averaged
            pos, n, board_score = position(raw, board, lower)
            scores.append(board_score)
            lines.append(f"{board_name} Leaderboard: Position {pos} / {n}")
        avg = sum(scores) / len(scores)
        better = state["best_raw"] is None or (raw < state["best_raw"] if lower else raw > state["best_raw"])
        if better:
            state["best_raw"] = raw
        state["best_pos"] = max(state["best_pos"], avg)
        ep.offer_submission(avg + (1e-9 * step if better else 0.0))
        lines += [f"Raw Score: {raw:.6g}", f"Average Position Score: {avg:.4f}",
                  f"Best Raw Score: {state['best_raw']:.6g}", f"Best Position Score: {state['best_pos']:.4f}"]
        return "\n".join(lines), avg, True

    @staticmethod
    def _info(task: Task, info_type: str) -> str:
        files = public_file_listing(task)
        if info_type == "overview":
            return task.description
        if info_type == "sample_submission":
            path = task.sample_submission_path
            return "\n".join(path.read_text(errors="replace").splitlines()[:6]) if path.is_file() else "none"
        if info_type == "data_structure":
            return "\n".join(files)
        return "the current working directory (use relative paths such as ./train.csv)"

    @staticmethod
    def _next_prompt(status: str, feedback: str, steps_left: int, ep: Episode) -> str:
        head = "Your last action FAILED." if status == "FAILED" else "Results of your last action:"
        tail = "Fix the error and continue." if status == "FAILED" else \
            "Use the feedback to optimise your solution further."
        return (f"{head}\n<<<FEEDBACK START>>>\n{feedback}\n<<<FEEDBACK END>>>\n"
                f"Actions left: {steps_left}; seconds left: {max(ep.time_left, 0):.0f}. {tail}\n"
                "Reply with the next action as JSON.")


def make_mledojo(config: MledojoConfig) -> MledojoScaffold:
    """Registry factory for ``mledojo``."""
    return MledojoScaffold(config)
