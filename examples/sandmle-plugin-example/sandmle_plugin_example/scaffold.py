"""Scaffold ``one-shot``: one model call, one execution, written only against sandmle's public API."""

from __future__ import annotations

import re
import time

from sandmle.core import Backend, Sampling, SandboxSession, Scaffold, Task, Trajectory, Turn

from .config import OneShotConfig

_CODE_BLOCK = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


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
                                            protocol="code")  # the baseline's one-```python-block replies
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
        traj.messages = [*messages, {"role": "assistant", "content": completion.text}]  # for training
        traj.usage = completion.usage
        submission = session.workdir / "submission.csv"
        traj.submission = submission if submission.exists() else None
        traj.stop_reason = "answer" if traj.submission else "no_submission"
        traj.wall_s = time.perf_counter() - t0
        return traj
