"""Conformance checks every executor must pass (``run_checks("executors", executor)``).

They use plain picklable callables, so a distributed executor (Ray) runs them as it would run
episodes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sandmle.core.testing import check


class _SlowSquare:
    """Async job function: sleeps ``job`` hundredths of a second, returns ``job ** 2``."""

    def __init__(self) -> None:
        self.closed = False

    async def __call__(self, job: int) -> int:
        await asyncio.sleep(job / 100)
        return job * job

    async def aclose(self) -> None:
        self.closed = True


def _square(job: int) -> int:
    return job * job


@check("executors")
def every_job_once(executor: Any) -> None:
    """Each job's result comes back exactly once (async job function)."""
    results = sorted(executor.map_unordered(_SlowSquare(), [3, 1, 2, 0, 5, 4]))
    assert results == [0, 1, 4, 9, 16, 25], results


@check("executors")
def sync_functions(executor: Any) -> None:
    """A plain (non-async) job function works too."""
    assert sorted(executor.map_unordered(_square, range(5))) == [0, 1, 4, 9, 16]


@check("executors")
def no_jobs(executor: Any) -> None:
    """An empty job list yields nothing and returns."""
    assert list(executor.map_unordered(_square, [])) == []


@check("executors")
def completion_order(executor: Any) -> None:
    """With concurrency > 1, a short job finishes before a long one queued ahead of it."""
    if (getattr(executor, "concurrency", None) or 1) < 2:
        return
    # The long job sleeps 3 s: a distributed executor starts one worker per job, and on a busy
    # 2-core machine a second Ray actor can come up over a second after the first.
    order = list(executor.map_unordered(_SlowSquare(), [300, 1]))
    assert order == [1, 90000], order
