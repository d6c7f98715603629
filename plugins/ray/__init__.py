"""Integration with Ray: the ``ray`` executor, evaluation episodes on a pool of Ray actors
(local or cluster; extra ``sandmle[ray]``).

Uses ``core`` and ``evaluation`` (the episode runner each actor rebuilds from the recipe).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_executors(register: Any) -> None:
    from .executor import RayExecutorConfig, make_ray

    register("ray", make_ray, config=RayExecutorConfig,
             description="episodes on a pool of Ray actors (local or cluster); extra sandmle[ray]")
