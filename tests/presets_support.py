"""Helpers of the preset tests: a small real task with a leaderboard, a scripted backend, the
registered grader as the scaffolds' score callback.

The model is the one fake: a ``Replay`` backend returning fixed replies, because a real LLM cannot
be made to emit each reply a test needs on demand. Tasks, sandbox and grader are real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sandmle.core.interfaces import Backend
from sandmle.core.records import Completion, Grade, Usage
from sandmle.core.task import MedalThresholds, Task
from sandmle.graders.task_writer import write_task
from sandmle.graders.toy import toy_frames

# AUC of the constant sample submission is exactly 0.5: 3rd of these 5 scores (two beat it).
LEADERBOARD = [0.97, 0.9, 0.45, 0.4, 0.3]
GOOD = ("import numpy as np, pandas as pd\nt = pd.read_csv('test.csv')\n"
        "t.assign(target=1 / (1 + np.exp(-3 * t.x1)))[['id', 'target']].to_csv('submission.csv', index=False)\n")
SAMPLE = "import shutil\nshutil.copy('sample_submission.csv', 'submission.csv')\n"
GARBAGE = "open('submission.csv', 'w').write('nothing,useful\\n1,2\\n')\n"


def make_task(root: Path, task_id: str = "toy-binary-lb") -> Task:
    """The toy binary task (ROC AUC; predicting x1 scores ~0.98) with a 5-row leaderboard."""
    frames = toy_frames("binary")
    return write_task(root, task_id=task_id, description="# Toy binary task\nPredict `target`.\n",
                      metric="roc_auc", lower_is_better=False, id_column="id", target_columns=["target"],
                      thresholds=MedalThresholds(gold=0.95, silver=0.9, bronze=0.85, median=0.7),
                      leaderboard=LEADERBOARD, **frames)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Task:
    """Module fixture (import it into a test module): the task of :func:`make_task`."""
    return make_task(tmp_path_factory.mktemp("task") / "toy-binary-lb")


class Replay(Backend):
    """Returns the scripted replies in order (the last repeats); records protocol, messages and sampling."""

    name = "replay"

    def __init__(self, replies: list[Any]):
        self.replies, self.seen = list(replies), []

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None):
        self.seen.append({"protocol": protocol, "messages": [dict(m) for m in messages], "sampling": sampling})
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Completion):
            return reply
        return Completion(text=reply, usage=Usage(prompt_tokens=10, completion_tokens=5, llm_calls=1))


def grader():
    from sandmle.core.plugins import get_registry

    return get_registry().create("graders", "default", {"sample_baseline": False})


def run(scaffold, backend: Backend, sandbox, task: Task, with_score: bool = True):
    """One episode in a real session; returns (trajectory, grade of the final submission.csv)."""
    g = grader()

    async def go():
        session = await sandbox.open(task)
        try:
            score = (lambda p: g.grade(task, Path(p))) if with_score else None
            traj = await scaffold.run(task, backend, session, seed=7, score=score)
            final = g.grade(task, session.workdir / "submission.csv")
        finally:
            await session.close()
        return traj, final
    return asyncio.run(go())


def grade_file(task: Task, code: str, tmp: Path) -> Grade:
    """Grade what ``code`` would write, run here in a scratch copy of the public files."""
    import shutil
    import subprocess
    import sys

    work = tmp / "scratch"
    shutil.copytree(task.public_dir, work, dirs_exist_ok=True)
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True)
    return grader().grade(task, work / "submission.csv")


def py(code: str, think: str = "run it") -> str:
    return f"<think>{think}</think>\n<tool_call>\npython\n<code>\n{code}\n</code>\n</tool_call>"


def score_call(competition_id: str | None, think: str = "grade it") -> str:
    args = {} if competition_id is None else {"competition_id": competition_id}
    import json

    return f'<think>{think}</think>\n<tool_call>\n{json.dumps({"name": "Score", "arguments": args})}\n</tool_call>'
