"""The example plugin's components, written only against sandmle's public core API."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
from pydantic import Field

from sandmle.core import (
    Backend, ComponentConfig, Grade, Grader, Sampling, SandboxSession, Scaffold, Task, Trajectory, Turn,
)

_CODE_BLOCK = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


class OneShotConfig(ComponentConfig):
    exec_timeout_s: float = Field(120.0, gt=0)
    max_tokens: int = Field(1024, ge=16)


class OneShotScaffold(Scaffold):
    """One model call, one execution: the simplest scaffold that still produces a Trajectory."""

    name = "one-shot"

    def __init__(self, config: OneShotConfig):
        self.config = config

    async def run(self, task: Task, backend: Backend, session: SandboxSession, *, seed: int = 0,
                  score=None) -> Trajectory:
        messages = [
            {"role": "system", "content": "Reply with one ```python block that trains a model on "
             "train.csv and writes submission.csv in the current directory."},
            {"role": "user", "content": task.description},
        ]
        traj = Trajectory(task_id=task.id, scaffold=self.name, backend=backend.name, seed=seed)
        t0 = time.perf_counter()
        completion = await backend.complete(messages, sampling=Sampling(max_tokens=self.config.max_tokens, seed=seed),
                                            protocol="one-shot")
        match = _CODE_BLOCK.search(completion.text)
        turn = Turn(messages_in=len(messages), text=completion.text, format_ok=match is not None,
                    token_ids=completion.token_ids, logprobs=completion.logprobs, usage=completion.usage)
        if match:
            result = await session.exec(match.group(1), timeout=self.config.exec_timeout_s)
            turn.executions.append(result)
            turn.observations.append(result.stdout_tail + result.stderr_tail)
        else:
            turn.format_error = "no ```python block in the reply"
        turn.wall_s = time.perf_counter() - t0
        traj.turns.append(turn)
        traj.usage = completion.usage
        submission = session.workdir / "submission.csv"
        traj.submission = submission if submission.exists() else None
        traj.stop_reason = "answer" if traj.submission else "no_submission"
        traj.wall_s = time.perf_counter() - t0
        return traj


class ExactMatchConfig(ComponentConfig):
    case_sensitive: bool = True


class ExactMatchGrader(Grader):
    """Exact-match accuracy over every target column; invalid files become invalid grades."""

    def __init__(self, config: ExactMatchConfig):
        self.config = config

    def grade(self, task: Task, submission: Path | None) -> Grade:
        if submission is None or not Path(submission).is_file():
            return Grade(task_id=task.id, reason="submission file not found")
        try:
            sub = pd.read_csv(submission, dtype=str)
            ans = pd.read_csv(task.answers_path, dtype=str)
            merged = ans.merge(sub, on=task.id_column, suffixes=("_true", "_pred"), validate="1:1")
            if len(merged) != len(ans):
                return Grade(task_id=task.id, submission_exists=True, reason="ids do not match the answers")
            hits = pd.Series(True, index=merged.index)
            for col in task.target_columns:
                a, b = merged[f"{col}_true"].astype(str), merged[f"{col}_pred"].astype(str)
                if not self.config.case_sensitive:
                    a, b = a.str.lower(), b.str.lower()
                hits &= a == b
        except Exception as exc:  # noqa: BLE001 - any unreadable submission is an invalid grade
            return Grade(task_id=task.id, submission_exists=True, reason=f"{type(exc).__name__}: {exc}")
        return Grade(task_id=task.id, score=float(hits.mean()), valid_submission=True,
                     submission_exists=True, is_lower_better=False)
