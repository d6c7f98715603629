"""Executor ``sequential``: runs a study's episodes one at a time, in the order they are planned.

Slower than the built-in ``local`` executor, but a failing episode's log is never interleaved with
another's, and the order is reproducible: the executor to debug a scaffold or a sandbox with.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from pydantic import Field

from sandmle.core import ComponentConfig, Executor, hookimpl


class SequentialConfig(ComponentConfig):
    """Settings of ``sequential``."""

    limit: int | None = Field(None, ge=1, description="run at most this many jobs (None: all)")


class SequentialExecutor(Executor):
    def __init__(self, config: SequentialConfig):
        self.config = config

    def map_unordered(self, fn: Callable[[Any], Awaitable[Any] | Any], jobs: Iterable[Any]) -> Iterator[Any]:
        """Run ``fn(job)`` for each job in turn and yield its result. One event loop serves every
        job, so an async ``fn`` may keep loop-bound resources (a warm sandbox) between jobs; if
        ``fn`` has an ``aclose()`` coroutine it is awaited at the end, as ``local`` does."""
        loop = asyncio.new_event_loop()
        try:
            for i, job in enumerate(jobs):
                if self.config.limit is not None and i >= self.config.limit:
                    break
                result = fn(job)
                if inspect.isawaitable(result):
                    result = loop.run_until_complete(result)
                yield result
        finally:
            closer = getattr(fn, "aclose", None)
            if closer is not None:
                loop.run_until_complete(closer())
            loop.close()


@hookimpl
def register_executors(register):
    register("sequential", SequentialExecutor, config=SequentialConfig,
             description="one episode at a time, in plan order (debugging)")
