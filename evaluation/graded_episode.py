"""One graded episode, shared by ``sandmle rollout`` and evaluation studies.

open a session (wrapped in an :class:`~sandmle.core.session_guard.AwaitGuard`) -> scaffold run
-> grade the final ``submission.csv`` -> keep what the user needs before the session (and its
folder) is gone: the final submission and, for AIDE, the best node's solution code.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandmle.core.interfaces import Grader, Sandbox, Scaffold
from sandmle.core.records import Grade, Trajectory
from sandmle.core.session_guard import AwaitGuard, report_unawaited
from sandmle.core.task import Task

SUBMISSION = "submission.csv"
BEST_SOLUTION = "best_solution.py"


class KeepPolicy(BaseModel):
    """Which files of an episode outlive its session (on by default, each file size-capped)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_mb: float = Field(20.0, ge=0, description="largest file kept, in MiB; bigger ones are skipped")


def best_solution_code(traj: Trajectory) -> str | None:
    """The code of the best node of an AIDE-style journal (``extra["journal"]`` + ``best_node``)."""
    journal, best = traj.extra.get("journal"), traj.extra.get("best_node")
    if not isinstance(journal, list) or best is None:
        return None
    for node in journal:
        if isinstance(node, dict) and node.get("id") == best and isinstance(node.get("code"), str):
            return node["code"]
    return None


def keep_files(workdir: Path, traj: Trajectory, dest: Path, policy: KeepPolicy) -> dict[str, str]:
    """Copy the episode's final submission (and best solution code) to ``dest``.

    Returns ``{file name: path relative to dest's parent}`` for kept files and
    ``{file name: "skipped: why"}`` for files over the cap; absent files are not mentioned.
    """
    from sandmle.sandboxes.files import safe_submission

    cap = int(policy.max_mb * 2**20)
    kept: dict[str, str] = {}

    def put(name: str, size: int, write: Any) -> None:
        if size > cap:
            kept[name] = f"skipped: {size / 2**20:.1f} MiB is over the {policy.max_mb:g} MiB cap"
            return
        dest.mkdir(parents=True, exist_ok=True)
        write(dest / name)
        kept[name] = f"{dest.name}/{name}"

    submission = safe_submission(workdir)  # never follows a symlink planted by agent code
    if submission is not None:
        put(SUBMISSION, submission.stat().st_size, lambda target: shutil.copyfile(submission, target))
    code = best_solution_code(traj)
    if code is not None:
        data = code.encode("utf-8")
        put(BEST_SOLUTION, len(data), lambda target: target.write_bytes(data))
    return kept


async def run_graded_episode(task: Task, scaffold: Scaffold, backend: Any, sandbox: Sandbox,
                             grader: Grader, *, seed: int, keep: KeepPolicy,
                             keep_dir: Path) -> tuple[Trajectory, Grade]:
    """Run one episode in a fresh session and grade it; kept files go to ``keep_dir`` and are
    listed in ``Trajectory.extra["kept_files"]``."""
    from sandmle.sandboxes.files import safe_submission

    # A scaffold that needs a notebook-like interpreter says so with ``stateful = True``.
    session = await sandbox.open(task, stateful=bool(getattr(scaffold, "stateful", False)))
    guard = AwaitGuard(session)
    try:
        def score(path: Path) -> Grade:
            return grader.grade(task, safe_submission(Path(path).parent, Path(path).name))

        try:
            traj = await scaffold.run(task, backend, guard, seed=seed, score=score)
        except Exception as exc:
            calls = guard.unawaited()
            if calls:  # the usual cause of "'coroutine' object has no attribute ...": say so
                raise RuntimeError(f"{type(exc).__name__}: {exc} (the scaffold called "
                                   f"{', '.join(calls)} without await)") from exc
            raise
        report_unawaited(guard, traj.extra)
        grade = await asyncio.to_thread(grader.grade, task, safe_submission(session.workdir))
        if keep.enabled:
            kept = await asyncio.to_thread(keep_files, session.workdir, traj, keep_dir, keep)
            if kept:
                traj.extra["kept_files"] = kept
    finally:
        await session.close()
    return traj, grade
