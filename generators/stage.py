"""The recipe's generate stage (called by ``sandmle.core.runner``)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape

from sandmle.core.recipe import Recipe
from sandmle.core.registry import Registry

from .commands import run_generation, summary_table
from .resume import scan_output


def run_generate_stage(recipe: Recipe, registry: Registry, console: Console) -> None:
    """Generate every task set of the recipe that names a generator, into its task-set folder."""
    from sandmle.core.runner import task_set_dir

    for ts in recipe.tasks:
        if ts.generator is None:
            continue
        out = task_set_dir(recipe, ts)
        state = scan_output(out)  # verified folders only; invalid ones moved aside
        note = state.describe()
        if note:
            console.print(f"[yellow]task set {escape(ts.name)}: {escape(note)}[/]")
        if len(state.done) >= ts.n:  # a finished set: no sandbox, no generator needed
            console.print(f"task set [bold]{escape(ts.name)}[/]: {len(state.done)} of {ts.n} tasks already "
                          f"generated in {escape(str(out))}")
            continue
        generator = ts.generator.build(registry, "generators")
        console.print(f"task set [bold]{escape(ts.name)}[/]: {ts.n} tasks ({len(state.done)} already there) "
                      f"-> {escape(str(out))}")
        t0 = time.perf_counter()
        outcomes = run_generation(generator, out, ts.n, int(getattr(recipe, "seed", 0) or 0), ts.seeds, console)
        console.print(summary_table(outcomes, time.perf_counter() - t0))
        made = sum(o.accepted for o in outcomes)
        if made < ts.n:
            console.print(f"[yellow]task set {escape(ts.name)}: {made} of the {ts.n} tasks asked for (the "
                          "candidate budget ran out; see the rejections above)[/]")
