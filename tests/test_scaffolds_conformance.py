"""The scaffold conformance checks pass for every built-in scaffold and catch broken ones."""

from __future__ import annotations

import asyncio

import pytest

from sandmle.core.interfaces import Scaffold
from sandmle.core.plugins import get_registry
from sandmle.core.records import Trajectory
from sandmle.core.testing import run_checks


@pytest.fixture(scope="module")
def sandbox():
    sb = get_registry().create("sandboxes", "local")
    yield sb
    asyncio.run(sb.shutdown())


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
