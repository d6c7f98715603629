"""The ``ray`` executor (``pip install sandmle[ray]``).

Runs evaluation episodes on a pool of Ray actors. Each actor rebuilds the episode runner from its
pickled recipe (plugins loaded and components resolved inside the actor) and keeps one event loop
and one warm sandbox for all the episodes it runs. Results come back to the driver, which alone
appends them to ``results.jsonl``; resume and the results format are therefore identical to the
``local`` executor. Trajectory files are written by the actors under the study's output directory,
so on a multi-node cluster that directory must be on a shared filesystem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig, Executor
from sandmle.core.registry import require


class RayExecutorConfig(ComponentConfig):
    """Settings of the ``ray`` executor."""

    address: str | None = Field(None, description="Ray cluster address (default: connect to a "
                                "running local instance or start one)")
    concurrency: int | None = Field(None, ge=1, description="actors (default: the cluster's CPUs)")
    num_cpus_per_episode: float = Field(1.0, gt=0, description="CPUs reserved per actor")
    max_in_flight_per_actor: int = Field(2, ge=1, description="episodes queued on each actor")


class _EpisodeActor:
    """Holds one event loop and one (warm) episode runner per actor process."""

    def __init__(self, fn: Any):
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.fn = fn

    def run(self, job: Any) -> Any:
        import inspect

        result = self.fn(job)
        if inspect.isawaitable(result):
            result = self.loop.run_until_complete(result)
        return result

    def close(self) -> None:
        closer = getattr(self.fn, "aclose", None)
        if closer is not None:
            self.loop.run_until_complete(closer())


class RayExecutor(Executor):
    """``map_unordered`` over Ray actors, at most ``concurrency`` at once."""

    def __init__(self, config: RayExecutorConfig):
        self.config = config
        self.concurrency = config.concurrency

    def _ensure_ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.config.address, ignore_reinit_error=True,
                     include_dashboard=False, log_to_driver=False)
        return ray

    def map_unordered(self, fn: Callable[[Any], Awaitable[Any] | Any],
                      jobs: Iterable[Any]) -> Iterator[Any]:
        ray = self._ensure_ray()
        jobs = list(jobs)
        if not jobs:
            return
        n_actors = self.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)
                                                   // self.config.num_cpus_per_episode))
        n_actors = min(n_actors, len(jobs))
        actor_cls = ray.remote(num_cpus=self.config.num_cpus_per_episode)(_EpisodeActor)
        fn_ref = ray.put(fn)
        actors = [actor_cls.remote(fn_ref) for _ in range(n_actors)]
        pending: dict[Any, Any] = {}
        queue = list(reversed(jobs))

        def submit(actor: Any) -> None:
            if queue:
                pending[actor.run.remote(queue.pop())] = actor

        try:
            for _ in range(self.config.max_in_flight_per_actor):
                for actor in actors:  # round-robin: every actor gets a job before any gets two
                    submit(actor)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                actor = pending.pop(done[0])
                result = ray.get(done[0])
                submit(actor)
                yield result
        finally:
            try:
                ray.get([a.close.remote() for a in actors], timeout=60)
            except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                pass
            for actor in actors:
                ray.kill(actor)


def make_ray(config: RayExecutorConfig) -> RayExecutor:
    require("ray", "ray")
    return RayExecutor(config)
