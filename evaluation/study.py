"""An evaluation study: policies x scaffolds x task sets x seeds -> results.jsonl -> report.

Resumable: episodes whose key is already in ``results.jsonl`` are skipped, the rest (including
any a killed run left unfinished) run again. Only this process appends to the store.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)

from sandmle.core.errors import SandmleError
from sandmle.core.recipe import Recipe
from sandmle.core.registry import Registry
from sandmle.core.runner import load_task_set
from sandmle.core.task import Task

from .episode import EpisodeRunner
from .executors import resolve_concurrency
from .report import build_report
from .store import Episode, ResultsStore


class EvaluationError(SandmleError):
    """The evaluation cannot start (no tasks, no evaluation section, ...)."""


def plan_episodes(recipe: Recipe, registry: Registry) -> list[tuple[Episode, Task]]:
    """Every (episode, task) of the study, in a deterministic order (seed-major, so a partial run
    covers every scaffold evenly)."""
    if recipe.evaluation is None:
        raise EvaluationError("the recipe has no 'evaluation' section")
    if not recipe.tasks:
        raise EvaluationError("the recipe has no 'tasks' to evaluate on")
    task_sets = [(ts.name, load_task_set(recipe, ts, registry)) for ts in recipe.tasks]
    for name, tasks in task_sets:
        if not tasks:
            raise EvaluationError(f"task set {name!r} has no tasks")
    jobs = []
    for seed in recipe.evaluation.seeds:
        for name, tasks in task_sets:
            for task in tasks:
                for pi, policy in enumerate(recipe.policies()):
                    for si, scaffold in enumerate(recipe.eval_scaffolds()):
                        ep = Episode(task_set=name, task_id=task.id, task_root=str(task.root),
                                     policy=policy.label, policy_index=pi, scaffold=scaffold.label,
                                     scaffold_index=si, seed=seed)
                        jobs.append((ep, task))
    return jobs


def expected_task_notes(recipe: Recipe, jobs: list[tuple[Episode, Task]]) -> list[str]:
    """One line per generated task set: how many tasks it has against how many were asked for
    (a study on fewer tasks than planned says so instead of silently shrinking)."""
    notes = []
    for ts in recipe.tasks:
        if ts.generator is None:
            continue
        expected = min(ts.n, ts.limit) if ts.limit else ts.n
        found = len({ep.task_id for ep, _ in jobs if ep.task_set == ts.name})
        style = "" if found >= expected else "[yellow]"
        notes.append(f"{style}task set {escape(ts.name)}: {found} tasks of {expected} expected"
                     f"{'' if found >= expected else ' (generation came up short: rerun to retry)'}{'[/]' if style else ''}")
    return notes


def build_executor(recipe: Recipe, registry: Registry) -> Any:
    """The recipe's executor; the recipe's ``evaluation.concurrency`` applies unless the executor's
    own config set one."""
    assert recipe.evaluation is not None
    executor = recipe.evaluation.executor.build(registry, "executors")
    if getattr(getattr(executor, "config", None), "concurrency", 0) is None:
        executor.concurrency = resolve_concurrency(recipe.evaluation.concurrency)
    return executor


class _LiveStatus:
    """Progress with ETA plus the running medal rate of every scaffold."""

    def __init__(self, total: int, done: int):
        self.progress = Progress(TextColumn("[bold]episodes"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        self.task = self.progress.add_task("episodes", total=total, completed=done)
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, medal, valid, failed

    def add(self, row: dict[str, Any]) -> None:
        c = self.counts[row["scaffold"]]
        c[0] += 1
        c[1] += bool(row.get("grade_any_medal"))
        c[2] += bool(row.get("grade_valid_submission"))
        c[3] += row.get("status") != "ok"
        self.progress.advance(self.task)

    def __rich__(self) -> Group:
        lines = [f"{escape(s)}: medal {100 * m / n:.0f}%  valid {100 * v / n:.0f}%  "
                 f"failed {f}  ({n} this run)" for s, (n, m, v, f) in sorted(self.counts.items())]
        return Group(self.progress, *lines)


def run_study(recipe: Recipe, registry: Registry, console: Console,
              out_dir: Path | None = None, max_episodes: int | None = None) -> Path:
    """Run (or resume) the study into ``out_dir`` (default: the recipe's output dir); write the
    report; return the report.md path. ``max_episodes`` stops after that many new episodes."""
    out = Path(out_dir or recipe.out)
    store = ResultsStore(out)
    if store.read.describe():
        console.print(f"[yellow]{escape(store.read.describe())}[/]")
    jobs = plan_episodes(recipe, registry)
    todo = [job for job in jobs if job[0].key not in store.finished]
    if max_episodes is not None:
        todo = todo[:max_episodes]
    done_before = len(jobs) - len([j for j in jobs if j[0].key not in store.finished])
    executor = build_executor(recipe, registry)
    for line in expected_task_notes(recipe, jobs):
        console.print(line)
    console.print(f"{len(jobs)} episodes planned, {done_before} already finished, "
                  f"{len(todo)} to run with executor {recipe.evaluation.executor.name!r} "  # type: ignore[union-attr]
                  f"(concurrency {getattr(executor, 'concurrency', '?')}); results: "
                  f"{escape(str(store.path))}")
    started = time.monotonic()
    if todo:
        runner = EpisodeRunner(recipe, registry, out)
        status = _LiveStatus(total=len(jobs), done=done_before)
        with Live(status, console=console, refresh_per_second=4, transient=False):
            for row in executor.map_unordered(runner, todo):
                store.append(row)
                status.add(row)
        console.print()
    elapsed = time.monotonic() - started
    if todo:
        console.print(f"ran {len(todo)} episodes in {elapsed:.1f}s "
                      f"({3600 * len(todo) / max(elapsed, 1e-9):.0f} episodes/hour)")
        record_generation(out, runner.generation_stats(), len(todo), elapsed, console)
    report = build_report(out, console, title=f"{recipe.name}: evaluation")
    console.print(f"report: [bold]{escape(str(report))}[/] and "
                  f"{escape(str(report.with_suffix('.html')))}; plots in {escape(str(out / 'plots'))}")
    return report


def record_generation(out: Path, stats: dict[str, dict[str, float]], episodes: int, elapsed: float,
                      console: Console) -> None:
    """Print what each policy's backend generated in this run and append it to
    ``generation.jsonl``: where an evaluation's time went, and what limited the engine."""
    if not stats:
        return
    for name, st in stats.items():
        rate = st["generated_tokens"] / st["generate_s"] if st.get("generate_s") else 0.0
        console.print(f"{escape(name)}: {st['calls']:.0f} replies in {st['batches']:.0f} batches (largest "
                      f"{st['largest_batch']:.0f}), {st['generated_tokens']:.0f} tokens in {st['generate_s']:.0f} s "
                      f"of generation ({rate:.1f} tokens/s); {st['prompt_tokens']:.0f} prompt tokens"
                      + (f" ({st['stepped_prompt_tokens']:.0f} fed one step at a time, "
                         f"{st['shared_prompt_tokens']:.0f} shared)"
                         if st.get("stepped_prompt_tokens") or st.get("shared_prompt_tokens") else ""))
    with (out / "generation.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"episodes": episodes, "wall_s": round(elapsed, 3), "policies": stats}) + "\n")


def run_evaluate_stage(recipe: Recipe, registry: Registry, console: Console) -> None:
    """The ``evaluate`` stage of ``sandmle run`` (called by :mod:`sandmle.core.runner`)."""
    run_study(recipe, registry, console)
