"""The in-episode Score grade runs off the event loop (issue 28).

Inside veRL every episode of an ``AgentLoopWorker`` shares one event loop. The path is the one the
``verl`` trainer runs: the shared episode runner (``training/rollout.py``) with the ``react``
scaffold under the ``sandmle-release`` preset, whose policy grades with the release's Score tool
(``scaffolds/react_release.py`` -> ``Episode.grade_off_loop`` in ``scaffolds/plumbing.py``), the
grader wrapped in the agent loop's ``TimedGrader`` (``plugins/verl/timeouts.py``). Real: generated
task, ``local`` sandbox, ``default`` grader, the scripted ``baseline`` policy (python -> Score ->
answer). The grader is made slow by waiting on an event before grading, so that what is asserted
is an order of events, never a duration.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from scaffolds_support import generate_tasks

from sandmle.core.interfaces import Grader
from sandmle.core.plugins import get_registry
from sandmle.core.records import Grade
from sandmle.core.task import Task
from sandmle.plugins.verl.timeouts import TimedGrader
from sandmle.training.rollout import run_episode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Task:
    return generate_tasks(tmp_path_factory.mktemp("grade_off_loop"), ["breast-cancer-binary"])[0]


class HeldGrader(Grader):
    """The real ``default`` grader, started only once ``release`` is set (or ``hold_s`` passed)."""

    def __init__(self, hold_s: float = 30.0):
        self.inner = get_registry().create("graders", "default")
        self.release, self.started, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.hold_s = hold_s
        self.in_episode: list[Path | None] = []

    def grade(self, task: Task, submission: Path | None) -> Grade:
        if not self.in_episode:  # the first call is the Score tool's, inside the episode
            self.in_episode.append(submission)
            self.started.set()
            self.release.wait(self.hold_s)
            grade = self.inner.grade(task, submission)
            self.finished.set()
            return grade
        return self.inner.grade(task, submission)


def episode(task: Task, grader: Grader):
    reg = get_registry()
    return run_episode(task, 0, scaffold=reg.create("scaffolds", "react", {"preset": "sandmle-release"}),
                       backend=reg.create("backends", "baseline"), sandbox=reg.create("sandboxes", "local"),
                       grader=TimedGrader(grader, 300.0), reward=reg.create("rewards", "milestone"))


def test_a_sibling_episode_keeps_running_while_one_is_graded(task):
    held = HeldGrader(hold_s=5.0)
    ticks: list[int] = []
    seen: dict[str, bool] = {}

    async def sibling():
        # Runs on the same loop; it can only release the grader if the loop is free while the
        # grade waits (a blocking grade would hold the loop until hold_s and fail the asserts).
        while not held.started.is_set():
            await asyncio.sleep(0.01)
        for i in range(20):
            ticks.append(i)
            await asyncio.sleep(0.01)
        seen["grade_finished_before_sibling"] = held.finished.is_set()
        held.release.set()

    async def main():
        outcome, _ = await asyncio.gather(episode(task, held), sibling())
        return outcome

    outcome = asyncio.run(main())
    assert held.in_episode and len(ticks) == 20
    assert seen == {"grade_finished_before_sibling": False}  # the sibling ran while the grade waited
    assert outcome.error is None and outcome.trajectory is not None
    # The Score reply the agent saw came from the grade the sibling waited for.
    replies = [o for t in outcome.trajectory.turns for o in t.observations]
    assert any(str(r).startswith("Submission OK.") for r in replies)
    assert outcome.grade.valid_submission


def test_the_episode_can_be_cancelled_while_the_grader_is_still_running(task):
    """The agent loop's hard episode timeout (``asyncio.wait_for`` around the episode in
    plugins/verl/agent_loop.py) cancels the episode; that can only happen while the grade is under
    way if the grade does not hold the loop."""
    held = HeldGrader(hold_s=10.0)
    state: dict[str, bool] = {}

    async def main():
        running = asyncio.ensure_future(episode(task, held))
        while not held.started.is_set():
            await asyncio.sleep(0.01)
        running.cancel()
        try:
            await running
        except asyncio.CancelledError:
            state["cancelled"] = True
        state["grade_finished_first"] = held.finished.is_set()
        held.release.set()

    asyncio.run(main())
    assert state == {"cancelled": True, "grade_finished_first": False}
