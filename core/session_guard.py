"""Catches a scaffold that forgets ``await`` on a sandbox session method.

Every :class:`~sandmle.core.interfaces.SandboxSession` method is ``async``. Written without
``await``, ``session.write_file("submission.csv", data)`` returns a coroutine object and does
nothing: the file is never written and the episode fails silently. :class:`AwaitGuard` wraps a
session, remembers every coroutine its methods hand out together with the line that asked for
it, and :meth:`AwaitGuard.unawaited` names those that never ran. The episode runners (``sandmle
rollout``, evaluation studies) and the scaffold conformance checks use it; the runners warn with
:class:`UnawaitedSessionCall` and record the calls in ``Trajectory.extra["unawaited_session_calls"]``.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from .interfaces import SandboxSession
from .records import ExecResult


class UnawaitedSessionCall(RuntimeWarning):
    """A sandbox session method was called without ``await``; it never ran."""


class AwaitGuard(SandboxSession):
    """A session that forwards to ``session`` and tracks whether each call was awaited."""

    def __init__(self, session: SandboxSession):
        self._session = session
        self._calls: list[tuple[str, str, Coroutine[Any, Any, Any]]] = []

    def _track(self, method: str, coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
        caller = sys._getframe(2)  # the scaffold's line: above this helper and the method
        where = f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}"
        # Finished calls are forgotten so a long episode keeps a short list.
        self._calls = [c for c in self._calls if inspect.getcoroutinestate(c[2]) != inspect.CORO_CLOSED]
        self._calls.append((method, where, coro))
        return coro

    def exec(self, code: str | None = None, *, command: Sequence[str] | None = None,
             timeout: float | None = None) -> Coroutine[Any, Any, ExecResult]:
        return self._track("exec", self._session.exec(code, command=command, timeout=timeout))

    def read_file(self, path: str) -> Coroutine[Any, Any, bytes]:
        return self._track("read_file", self._session.read_file(path))

    def write_file(self, path: str, data: bytes | str) -> Coroutine[Any, Any, None]:
        return self._track("write_file", self._session.write_file(path, data))

    def list_files(self, path: str = ".") -> Coroutine[Any, Any, list[str]]:
        return self._track("list_files", self._session.list_files(path))

    def close(self) -> Coroutine[Any, Any, None]:
        return self._track("close", self._session.close())

    @property
    def workdir(self) -> Path:
        return self._session.workdir

    def __getattr__(self, name: str) -> Any:  # sandbox-specific extras stay reachable
        return getattr(self._session, name)

    def unawaited(self) -> list[str]:
        """``"write_file() at my_scaffold.py:42"`` for every call that never ran. Each such
        coroutine is closed, so Python's own "never awaited" warning does not repeat it later."""
        found = []
        for method, where, coro in self._calls:
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()
                found.append(f"{method}() at {where}")
        self._calls = []
        return found


def report_unawaited(guard: AwaitGuard, extra: dict[str, Any] | None = None) -> list[str]:
    """Warn about unawaited calls (and record them in a trajectory's ``extra``); returns them."""
    calls = guard.unawaited()
    if calls:
        if extra is not None:
            extra["unawaited_session_calls"] = calls
        warnings.warn(
            "scaffold called sandbox session method(s) without await, so they never ran: "
            + ", ".join(calls), UnawaitedSessionCall, stacklevel=2)
    return calls
