"""Conformance checks every scaffold must pass (``run_checks("scaffolds", scaffold, task=..., sandbox=...)``).

Without a ``task`` the checks build a toy task; without a ``sandbox`` they open the ``local`` one.
Both run a real episode in a real sandbox session: one with the scripted ``baseline`` backend,
one with a backend that answers garbage. The session is wrapped in an
:class:`~sandmle.core.session_guard.AwaitGuard`, so a session method called without ``await``
fails both checks, naming the method and the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

from sandmle.core.interfaces import Backend, Sandbox, Scaffold
from sandmle.core.records import Completion, ToolCall, Trajectory, Usage
from sandmle.core.session_guard import AwaitGuard
from sandmle.core.task import Task
from sandmle.core.testing import check

EPISODE_TIMEOUT_S = 300.0


@contextlib.asynccontextmanager
async def _setting(task: Task | None, sandbox: Sandbox | None) -> AsyncIterator[tuple[Task, Sandbox]]:
    with tempfile.TemporaryDirectory() as tmp:
        if task is None:
            from sandmle.graders.toy import make_toy_task

            task = make_toy_task(Path(tmp) / "toy", "binary")
        own = sandbox is None
        if own:
            from sandmle.core.plugins import get_registry

            sandbox = get_registry().create("sandboxes", "local")
        try:
            yield task, sandbox
        finally:
            if own:
                await sandbox.shutdown()


async def _episode(scaffold: Scaffold, backend: Backend, task: Task, sandbox: Sandbox) -> Trajectory:
    session = await sandbox.open(task, stateful=bool(getattr(scaffold, "stateful", False)))
    guard = AwaitGuard(session)
    try:
        traj = await asyncio.wait_for(scaffold.run(task, backend, guard, seed=0, score=None),
                                      EPISODE_TIMEOUT_S)
    except Exception as exc:
        unawaited = guard.unawaited()
        if unawaited:
            raise AssertionError(f"session method(s) called without await: {', '.join(unawaited)} "
                                 f"(then {type(exc).__name__}: {exc})") from exc
        raise
    finally:
        await session.close()
    unawaited = guard.unawaited()
    assert not unawaited, f"session method(s) called without await, so they never ran: {', '.join(unawaited)}"
    assert isinstance(traj, Trajectory), f"run() returned {type(traj).__name__}, not a Trajectory"
    assert traj.task_id == task.id, f"trajectory task_id {traj.task_id!r} != {task.id!r}"
    assert traj.stop_reason and traj.stop_reason != "unknown", "stop_reason was not set"
    assert Trajectory.model_validate_json(traj.model_dump_json()).task_id == task.id, "not JSON round-trippable"
    return traj


@check("scaffolds")
async def runs_an_episode_with_the_baseline_backend(scaffold: Scaffold, task: Task | None = None,
                                                    sandbox: Sandbox | None = None) -> None:
    """An episode with the scripted baseline backend records turns, usage and a stop reason,
    and executes code (a scaffold whose protocol the baseline does not speak never would)."""
    from .baseline import BaselineBackend

    async with _setting(task, sandbox) as (t, sb):
        traj = await _episode(scaffold, BaselineBackend(), t, sb)
    assert traj.turns, "no turns recorded"
    if not any(turn.executions for turn in traj.turns):
        why = traj.extra.get("backend_error") or next(
            (turn.format_error for turn in traj.turns if turn.format_error), "")
        raise AssertionError(
            "the episode never executed code: the baseline's replies were not understood or not run"
            + (f" ({why})" if why else "") + ". Pass complete(..., protocol=...) a protocol the baseline "
            "speaks ('code' for one ```python block per reply; see docs/plugins/backends.md) and record "
            "each execution in turn.executions")
    assert all(turn.messages_in >= 1 for turn in traj.turns), "a turn records no input messages"
    assert traj.usage.llm_calls >= 1, "usage.llm_calls was not accounted"


class GarbageBackend(Backend):
    """Replies that follow no scaffold's protocol: empty, noise, broken tags, bogus tool calls."""

    name = "garbage"
    REPLIES: list[Any] = [
        "", "lorem ipsum " * 400, "<tool_call>{\"name\": ", "```python\nthis is not python(\n```",
        "{\"action\": 42}", Completion(tool_calls=[ToolCall(name="??", arguments={"__invalid_json__": "{"})]),
        "<answer>", "\x00\x01\x02",
    ]

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None) -> Completion:
        reply = self.REPLIES[self.calls % len(self.REPLIES)]
        self.calls += 1
        if isinstance(reply, Completion):
            return reply.model_copy(update={"usage": Usage(llm_calls=1)})
        return Completion(text=reply, usage=Usage(llm_calls=1))


@check("scaffolds")
async def survives_a_backend_that_returns_garbage(scaffold: Scaffold, task: Task | None = None,
                                                  sandbox: Sandbox | None = None) -> None:
    """Garbage replies end the episode cleanly (no exception, bounded calls, a stop reason)."""
    backend = GarbageBackend()
    async with _setting(task, sandbox) as (t, sb):
        traj = await _episode(scaffold, backend, t, sb)
    assert backend.calls <= 1000, f"{backend.calls} model calls: the loop does not stop on garbage"
    assert all(isinstance(turn.text, str) for turn in traj.turns)
