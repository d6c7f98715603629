"""The ``local`` executor: episodes as asyncio tasks on one event loop, with bounded concurrency.

Episodes spend their time waiting on sandbox executions (separate processes) and model calls, so
one event loop in a background thread drives them all; the bound defaults to the number of CPU
cores, since each running episode keeps about one core busy in its sandbox.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig, Executor
from sandmle.core.recipe import Concurrency

_DONE = object()


def auto_concurrency() -> int:
    """Episodes to run at once on this machine: one per usable core, at least 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores)


def resolve_concurrency(value: int | Literal["auto"] | None) -> int:
    """``"auto"``/None: one per core; else the count, which must be positive (0 never starts a job)."""
    if value in (None, "auto"):
        return auto_concurrency()
    if int(value) < 1:  # type: ignore[arg-type]
        raise ValueError(f"concurrency must be at least 1 or 'auto', got {value!r}")
    return int(value)  # type: ignore[arg-type]


class LocalExecutorConfig(ComponentConfig):
    """Settings of the ``local`` executor."""

    concurrency: Concurrency | None = Field(
        None, description="episodes at once (default: the recipe's evaluation.concurrency, else cores)")


class LocalExecutor(Executor):
    """Runs jobs concurrently on a private event loop; yields results in completion order.

    If ``fn`` has an ``aclose`` coroutine (e.g. an episode runner holding a warm sandbox pool),
    it is awaited on the same loop once every job is done.
    """

    def __init__(self, config: LocalExecutorConfig | None = None):
        self.config = config or LocalExecutorConfig()
        self.concurrency = resolve_concurrency(self.config.concurrency)

    def map_unordered(self, fn: Callable[[Any], Awaitable[Any] | Any],
                      jobs: Iterable[Any]) -> Iterator[Any]:
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        limit = self.concurrency

        async def one(job: Any, sem: asyncio.Semaphore) -> None:
            async with sem:
                if stop.is_set():
                    return
                result = fn(job)
                if inspect.isawaitable(result):
                    result = await result
                out.put(("result", result))

        async def main() -> None:
            sem = asyncio.Semaphore(limit)
            try:
                tasks = [asyncio.ensure_future(one(job, sem)) for job in jobs]
                for task in asyncio.as_completed(tasks):
                    try:
                        await task
                    except Exception as exc:  # noqa: BLE001 - handed to the consumer
                        out.put(("error", exc))
            finally:
                closer = getattr(fn, "aclose", None)
                if closer is not None:
                    await closer()

        def thread_main() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                out.put(("error", exc))
            finally:
                out.put(_DONE)

        thread = threading.Thread(target=thread_main, name="sandmle-local-executor", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    break
                kind, value = item
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()  # a consumer that stops early lets pending jobs drain without running
            thread.join()


def make_local_executor(config: LocalExecutorConfig) -> LocalExecutor:
    return LocalExecutor(config)
