"""The scaffold conformance checks pass for every built-in scaffold and catch broken ones."""

from __future__ import annotations

import asyncio

import pytest

from sandmle.core.interfaces import Scaffold
from sandmle.core.plugins import get_registry
from sandmle.core.records import Trajectory
from sandmle.core.testing import run_checks


@pytest.mark.parametrize("name,args", [("react", {}), ("aide", {"steps": 2, "num_drafts": 1}),
                                       ("mledojo", {})])
def test_builtin_scaffolds_pass(name, args, sandbox, sandmle_conformance):
    results = sandmle_conformance("scaffolds", get_registry().create("scaffolds", name, args), sandbox=sandbox)
    assert {r.name for r in results} >= {"runs_an_episode_with_the_baseline_backend",
                                         "survives_a_backend_that_returns_garbage"}


class Crashy(Scaffold):
    """Raises on any reply it cannot parse: what the garbage check exists to catch."""

    name = "crashy"

    async def run(self, task, backend, session, *, seed=0, score=None):
        c = await backend.complete([{"role": "user", "content": task.description}], protocol="react")
        if "<tool_call>" not in c.text:
            raise ValueError("unparseable reply")
        return Trajectory(task_id=task.id, scaffold=self.name, backend=backend.name, stop_reason="answer")


class WrongId(Scaffold):
    name = "wrong-id"

    async def run(self, task, backend, session, *, seed=0, score=None):
        return Trajectory(task_id="other", scaffold=self.name, backend=backend.name)


def test_checks_fail_broken_scaffolds(sandbox):
    crashy = {r.name: r for r in run_checks("scaffolds", Crashy(), sandbox=sandbox)}
    assert crashy["runs_an_episode_with_the_baseline_backend"].passed is False  # no turns recorded
    assert "unparseable reply" in crashy["survives_a_backend_that_returns_garbage"].detail
    wrong = run_checks("scaffolds", WrongId(), sandbox=sandbox)
    assert all(not r.passed and "task_id" in r.detail for r in wrong)


class ForgetsAwait(Scaffold):
    """Writes its submission without ``await``: the coroutine is dropped and nothing is written."""

    name = "forgets-await"

    async def run(self, task, backend, session, *, seed=0, score=None):
        from sandmle.core.records import Turn, Usage

        c = await backend.complete([{"role": "user", "content": task.description}], protocol="react")
        sample = await session.read_file("sample_submission.csv")
        session.write_file("submission.csv", sample)  # the bug under test  # LINE-MARK
        return Trajectory(task_id=task.id, scaffold=self.name, backend=backend.name, stop_reason="answer",
                          turns=[Turn(messages_in=1, text=c.text)], usage=Usage(llm_calls=1))


class UsesCoroutineAsData(Scaffold):
    name = "uses-coroutine"

    async def run(self, task, backend, session, *, seed=0, score=None):
        result = session.exec("print(1)")  # missing await
        return Trajectory(task_id=task.id, scaffold=self.name, backend=backend.name,
                          stop_reason=result.stdout_tail)


def _line_of(marker: str) -> int:
    import inspect

    lines = inspect.getsource(inspect.getmodule(ForgetsAwait)).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "def " not in line)


def test_a_forgotten_await_fails_the_checks_naming_method_and_line(sandbox, recwarn):
    where = f"write_file() at test_scaffolds_conformance.py:{_line_of('# LINE-MARK')}"
    results = run_checks("scaffolds", ForgetsAwait(), sandbox=sandbox)
    assert all(not r.passed for r in results)
    assert all(f"called without await, so they never ran: {where}" in r.detail for r in results), results
    crashed = run_checks("scaffolds", UsesCoroutineAsData(), sandbox=sandbox, only=["runs_an_episode_with_the_baseline_backend"])
    assert "called without await: exec() at" in crashed[0].detail
    assert "'coroutine' object has no attribute 'stdout_tail'" in crashed[0].detail
    # the guard closed the dropped coroutines: Python's own "never awaited" warning stays silent
    import gc

    gc.collect()
    assert not [w for w in recwarn if "was never awaited" in str(w.message)]


def test_a_forgotten_await_is_warned_and_recorded_at_run_time(sandbox, tmp_path):
    from sandmle.core.session_guard import UnawaitedSessionCall
    from sandmle.evaluation.graded_episode import KeepPolicy, run_graded_episode
    from sandmle.graders.toy import make_toy_task
    from sandmle.scaffolds.baseline import BaselineBackend

    task = make_toy_task(tmp_path / "toy", "binary")
    grader = get_registry().create("graders", "default")

    async def go(scaffold):
        return await run_graded_episode(task, scaffold, BaselineBackend(), sandbox, grader, seed=0,
                                        keep=KeepPolicy(), keep_dir=tmp_path / "kept")

    with pytest.warns(UnawaitedSessionCall, match="write_file"):
        traj, grade = asyncio.run(go(ForgetsAwait()))
    assert traj.extra["unawaited_session_calls"] == [
        f"write_file() at test_scaffolds_conformance.py:{_line_of('# LINE-MARK')}"]
    assert not grade.valid_submission  # the write never happened
    with pytest.raises(RuntimeError, match=r"'coroutine' object has no attribute 'stdout_tail' \(the scaffold "
                                           r"called exec\(\) at test_scaffolds_conformance.py:\d+ without await\)"):
        asyncio.run(go(UsesCoroutineAsData()))
