"""Timeouts around the sandbox and the grader, so that one slow episode fails alone.

The shared episode runner (:func:`sandmle.training.rollout.run_episode`) opens the sandbox and
grades without time limits; inside veRL a hung ``open`` or grader would hold a whole GRPO group
(and veRL's step) hostage. These wrappers bound both: a sandbox that does not open in time raises
(the runner records a harness failure), a grade that does not finish in time comes back as an
invalid grade whose reason is :attr:`TimedGrader.TIMED_OUT` (the agent loop masks the episode).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import Grader, Sandbox, SandboxSession
from sandmle.core.records import Grade
from sandmle.core.task import Task


class TimedSandbox(Sandbox):
    """``inner`` whose ``open`` must finish within ``timeout_s``."""

    def __init__(self, inner: Sandbox, timeout_s: float):
        self.inner, self.timeout_s = inner, timeout_s

    async def open(self, task: Task, *, stateful: bool = False) -> SandboxSession:
        try:
            return await asyncio.wait_for(self.inner.open(task, stateful=stateful), self.timeout_s)
        except asyncio.TimeoutError:
            raise SandmleError(f"sandbox did not open within {self.timeout_s:g} s") from None


class TimedGrader(Grader):
    """``inner`` whose ``grade`` must finish within ``timeout_s`` (it keeps running in its thread,
    which is left behind: a grader cannot be interrupted, only stopped being waited for)."""

    TIMED_OUT = "grading timed out"

    def __init__(self, inner: Grader, timeout_s: float):
        self.inner, self.timeout_s = inner, timeout_s

    def grade(self, task: Task, submission: Path | None) -> Grade:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="grade")
        try:
            return pool.submit(self.inner.grade, task, submission).result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            return Grade(task_id=task.id, reason=self.TIMED_OUT)
        finally:
            pool.shutdown(wait=False)
