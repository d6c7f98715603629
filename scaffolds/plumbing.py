"""The plumbing every scaffold shares: backend calls, sandbox executions, turn records, limits.

A scaffold builds an :class:`Episode` and keeps only its control loop, prompts and parsers:

    ep = Episode(task, backend, session, limits, scaffold="react", seed=seed)
    completion, turn = await ep.call(messages, protocol="react", stage="react")
    result = await ep.execute(code)              # per-execution timeout from the limits
    turn.observations.append(react_observation(result, ep.submission_exists()))
    return ep.finish("answer", messages)

``call`` never raises: an exhausted budget or a backend failure returns ``(None, turn)`` with
the reason in ``ep.stop_reason``. Executions never raise either (sandbox faults are results).
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

from sandmle.core.errors import ContextLengthError
from sandmle.core.interfaces import Backend, SandboxSession, ScaffoldLimits, ScoreFn
from sandmle.core.records import Completion, ExecResult, Grade, Sampling, Trajectory, Turn
from sandmle.core.task import Task
from sandmle.sandboxes.files import read_regular, write_regular

SUBMISSION = "submission.csv"


class Episode:
    """One running episode: budget, turns, usage, and the best submission seen so far."""

    def __init__(self, task: Task, backend: Backend, session: SandboxSession, limits: ScaffoldLimits,
                 *, scaffold: str, seed: int = 0, sampling: Sampling | None = None,
                 llm_timeout_s: float | None = None):
        self.task, self.backend, self.session, self.limits = task, backend, session, limits
        self.seed = seed
        self.sampling = sampling or Sampling(seed=seed)
        self.llm_timeout_s = llm_timeout_s
        self.traj = Trajectory(task_id=task.id, scaffold=scaffold,
                               backend=getattr(backend, "name", type(backend).__name__), seed=seed)
        self.t0 = time.monotonic()
        self.stop_reason: str | None = None
        self._best: tuple[float, bytes] | None = None  # (higher-is-better key, csv bytes)

    # ------------------------------------------------------------------ budget
    @property
    def llm_calls(self) -> int:
        return self.traj.usage.llm_calls

    @property
    def calls_left(self) -> int:
        return self.limits.max_llm_calls - self.llm_calls

    @property
    def time_left(self) -> float:
        return self.limits.max_wall_s - (time.monotonic() - self.t0)

    def out_of_budget(self) -> str | None:
        """``"max_llm_calls"`` or ``"timeout"`` when the episode must stop, else ``None``."""
        if self.calls_left <= 0:
            return "max_llm_calls"
        if self.time_left <= 0:
            return "timeout"
        return None

    # ------------------------------------------------------------------ model calls
    async def call(self, messages: list[dict[str, Any]], *, protocol: str, stage: str | None = None,
                   tools: list[dict[str, Any]] | None = None, record: bool = True,
                   sampling: Sampling | None = None) -> tuple[Completion | None, Turn]:
        """Ask the backend for the next message and record the turn (unless ``record=False``).

        ``sampling`` overrides the episode's sampling for this call (AIDE's review call).

        Returns ``(None, turn)`` when the budget is spent, the call times out or the backend
        fails for good; ``self.stop_reason`` then says why.
        """
        turn = Turn(messages_in=len(messages), text="", stage=stage)
        reason = self.out_of_budget()
        if reason:
            self.stop_reason = reason
            return None, turn
        t0 = time.monotonic()
        timeout = min(self.time_left, self.llm_timeout_s or self.time_left)
        try:
            completion = await asyncio.wait_for(
                self.backend.complete(messages, tools=tools, sampling=sampling or self.sampling, protocol=protocol),
                timeout=max(timeout, 0.001))
        except asyncio.TimeoutError:
            self.stop_reason = "timeout"
            return None, turn
        except ContextLengthError as exc:  # the conversation outgrew the model: the policy's doing
            self.stop_reason = "max_length"
            self.traj.extra["backend_error"] = f"{type(exc).__name__}: {exc}"
            return None, turn
        except Exception as exc:  # noqa: BLE001 - a dead backend ends the episode, not the study
            self.stop_reason = "backend_error"
            self.traj.extra["backend_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            return None, turn
        usage = completion.usage.model_copy()
        usage.llm_calls = max(usage.llm_calls, 1)
        turn.text = completion.text or ""
        turn.tool_calls = list(completion.tool_calls)
        turn.token_ids, turn.prompt_token_ids = completion.token_ids, completion.prompt_token_ids
        turn.logprobs, turn.usage = completion.logprobs, usage
        turn.wall_s = time.monotonic() - t0
        self.traj.usage = self.traj.usage + usage
        if record:
            self.traj.turns.append(turn)
        return completion, turn

    # ------------------------------------------------------------------ executions
    async def execute(self, code: str, turn: Turn | None = None, timeout: float | None = None) -> ExecResult:
        """Run ``code`` in the session (timeout: the smaller of the limit and the time left)."""
        limit = min(timeout or self.limits.exec_timeout_s, self.limits.exec_timeout_s,
                    max(self.time_left, 1.0))
        t0 = time.monotonic()
        try:
            result = await self.session.exec(code, timeout=limit)
        except Exception as exc:  # noqa: BLE001 - a broken sandbox is an observation
            result = ExecResult(killed="error", detail=f"sandbox error: {type(exc).__name__}: {exc}",
                                wall_s=time.monotonic() - t0)
        if turn is not None:
            turn.executions.append(result)
            turn.wall_s += result.wall_s
        return result

    def submission_path(self) -> Path:
        return Path(self.session.workdir) / SUBMISSION

    def submission_exists(self) -> bool:
        path = self.submission_path()
        return path.is_file() and not path.is_symlink()

    async def remove_submission(self) -> None:
        path = self.submission_path()
        if path.is_file() or path.is_symlink():
            path.unlink()

    def grade(self, score: ScoreFn | None) -> Grade | None:
        """Grade the current ``submission.csv`` with the scaffold's callback (``None`` if absent)."""
        if score is None:
            return None
        try:
            return score(self.submission_path())
        except Exception as exc:  # noqa: BLE001 - a grader crash is reported, not raised
            return Grade(task_id=self.task.id, reason=f"grader error: {type(exc).__name__}: {exc}")

    async def grade_off_loop(self, score: ScoreFn | None) -> Grade | None:
        """:meth:`grade` in a worker thread: a grader can take minutes (it trains nothing, but it
        reads and scores the whole submission), and inside veRL's worker every other episode of
        the process shares this event loop; awaiting keeps them running and lets the episode's
        own ``asyncio.wait_for`` timeout fire while the grade is under way."""
        if score is None:
            return None
        return await asyncio.to_thread(self.grade, score)

    # ------------------------------------------------------------------ best submission
    def offer_submission(self, key: float) -> bool:
        """Keep the current submission if ``key`` (higher is better) beats the best one kept."""
        if not self.submission_exists():
            return False
        if self._best is not None and key <= self._best[0]:
            return False
        try:  # one descriptor, no links: agent code may swap the file for a link to the answers
            self._best = (key, read_regular(Path(self.session.workdir), SUBMISSION))
        except (OSError, ValueError):
            return False
        return True

    def restore_best_submission(self) -> None:
        """Put the best kept submission back as ``submission.csv`` (AIDE, MLE-Dojo)."""
        if self._best is not None:  # replaces a planted link instead of writing through it
            write_regular(Path(self.session.workdir), SUBMISSION, self._best[1],
                          owner=getattr(self.session, "file_owner", None))

    # ------------------------------------------------------------------ finish
    def finish(self, stop_reason: str, messages: list[dict[str, Any]] | None = None) -> Trajectory:
        """Close the record: stop reason (a budget reason wins), transcript, submission, time."""
        self.traj.stop_reason = self.stop_reason or stop_reason
        self.traj.messages = list(messages or [])
        self.traj.submission = self.submission_path() if self.submission_exists() else None
        self.traj.wall_s = time.monotonic() - self.t0
        return self.traj


# ---------------------------------------------------------------------- observations
def tail_lines(text: str, n: int = 20) -> str:
    """The last ``n`` lines, with a note saying how many were cut (SandMLE's tool output)."""
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= n:
        return "\n".join(lines)
    return f"...[truncated {len(lines) - n} lines]...\n" + "\n".join(lines[-n:])


def head_tail_chars(text: str, limit: int = 5100, keep: int = 2500) -> str:
    """AIDE's term_out cut: first and last ``keep`` characters around a count of what was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:keep]}\n ... [{len(text) - 2 * keep} characters truncated] ... \n{text[-keep:]}"


def killed_note(result: ExecResult, timeout: float) -> str:
    """One line for an execution the sandbox stopped (empty when it was not stopped)."""
    if result.killed == "timeout":
        return f"[Timeout] Python execution timed out after {timeout:g}s; make the code faster."
    if result.killed:
        return f"[Killed: {result.killed}] {result.detail}".strip()
    return ""


# ---------------------------------------------------------------------- submission checks
def check_submission(workdir: Path, sample_path: Path | None) -> tuple[bool, str]:
    """Compare ``submission.csv`` with the task's sample submission (columns, ids, NaNs).

    ``sample_path`` is :attr:`Task.sample_submission_path` (it need not be called
    ``sample_submission.csv``, nor sit in ``public/``: MLE-bench names it per competition). It
    uses only public files, so its verdict may be shown to the agent.
    """
    import pandas as pd

    sub_path = Path(workdir) / SUBMISSION
    if not sub_path.is_file() or sub_path.is_symlink():
        return False, "submission.csv not found in the current directory"
    try:
        sub = pd.read_csv(io.BytesIO(read_regular(Path(workdir), SUBMISSION)))
    except Exception as exc:  # noqa: BLE001
        return False, f"submission.csv is not a readable CSV: {exc}"
    if sample_path is None or not Path(sample_path).is_file():
        return True, f"submission.csv has {len(sub)} rows (no sample submission to compare with)"
    sample = pd.read_csv(sample_path)
    if list(sub.columns) != list(sample.columns):
        return False, f"columns {list(sub.columns)} differ from the sample's {list(sample.columns)}"
    if len(sub) != len(sample):
        return False, f"{len(sub)} rows, the sample has {len(sample)}"
    idc = sample.columns[0]
    if set(sub[idc].astype(str)) != set(sample[idc].astype(str)):
        return False, f"the `{idc}` values differ from the sample's"
    if sub.isna().any().any():
        return False, "submission has missing values"
    return True, f"submission.csv matches the sample format ({len(sub)} rows, columns {list(sub.columns)})"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """Rough token count (characters / 4, as SandMLE's counter falls back to)."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + 4 * len(messages)


def public_file_listing(task: Task) -> list[str]:
    """Relative paths of the task's public files (what the agent finds in its directory)."""
    return [str(p.relative_to(task.public_dir)) for p in task.public_files()]


def folded_listing(paths: list[str], keep: int = 4, fold_over: int = 8) -> list[str]:
    """``paths`` with every folder of more than ``fold_over`` files cut to its first ``keep`` and a
    count: a media task's ~1,000 ``test/<id>.png`` names are ~17,000 tokens, twice a small model's
    context window, and say nothing the description's ``train/<id>.png`` line does not."""
    folders: dict[str, list[str]] = {}
    for path in paths:
        folders.setdefault(path.rpartition("/")[0], []).append(path)
    out: list[str] = []
    for folder, names in folders.items():
        if len(names) <= fold_over:
            out += names
        else:
            out += names[:keep] + [f"{folder}/... and {len(names) - keep} other files ({len(names)} in all)"]
    return out
