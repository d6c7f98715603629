"""Turning what a sandbox reports about one execution into an :class:`ExecResult`, checked.

A sandbox's report is assembled from measurements agent code cannot reach (wait status, the
kernel's rusage and /proc), but it still crosses a process boundary as JSON; a value of the
wrong type or out of range (``cpu_s=-1e308``, ``peak_mem_mb=NaN``, an exit code of ``"x"``)
must become a recorded error, never an exception in the harness or a number in a report.
"""

from __future__ import annotations

import math
from typing import Any, get_args

from sandmle.core.records import ExecResult, KillReason

_KILL_REASONS = set(get_args(KillReason))
_NUMBERS = ("wall_s", "cpu_s", "peak_mem_mb")
_TEXTS = ("stdout_tail", "stderr_tail", "detail")


def _problem(reply: dict[str, Any]) -> str | None:
    code = reply.get("exit_code")
    if code is not None and (type(code) is not int or not -255 <= code <= 255):
        return f"exit_code={code!r}"
    for key in _NUMBERS:
        value = reply.get(key, 0.0)
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            return f"{key}={value!r}"
    if reply.get("killed") is not None and reply.get("killed") not in _KILL_REASONS:
        return f"killed={reply.get('killed')!r}"
    for key in _TEXTS:
        if not isinstance(reply.get(key, ""), str):
            return f"{key} is not text"
    return None


def exec_result_from_reply(reply: Any) -> ExecResult:
    """An :class:`ExecResult` from a sandbox's reply mapping; a malformed reply becomes
    ``killed="error"`` naming the bad field (the tails are kept when they are text)."""
    if not isinstance(reply, dict):
        return ExecResult(killed="error", detail=f"malformed execution report ({type(reply).__name__})")
    problem = _problem(reply)
    if problem is None:
        return ExecResult(**{k: reply[k] for k in ExecResult.model_fields if k in reply})
    texts = {k: reply[k] for k in ("stdout_tail", "stderr_tail") if isinstance(reply.get(k), str)}
    return ExecResult(killed="error", detail=f"malformed execution report: {problem}"[:500], **texts)
