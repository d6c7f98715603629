"""The recipe's generate stage (called by ``sandmle.core.runner``)."""

from __future__ import annotations

import time

from rich.console import Console

from sandmle.core.recipe import Recipe
from sandmle.core.registry import Registry

from .commands import run_generation, summary_table


def run_generate_stage(recipe: Recipe, registry: Registry, console: Console) -> None:
    """Generate every task set of the recipe that names a generator, into its task-set folder."""
    from sandmle.core.runner import task_set_dir

    for ts in recipe.tasks:
        if ts.generator is None:
            continue
        generator = ts.generator.build(registry, "generators")
        out = task_set_dir(recipe, ts)
        console.print(f"task set [bold]{ts.name}[/]: {ts.n} tasks -> {out}")
        t0 = time.perf_counter()
        outcomes = run_generation(generator, out, ts.n, int(getattr(recipe, "seed", 0) or 0), ts.seeds, console)
        console.print(summary_table(outcomes, time.perf_counter() - t0))
