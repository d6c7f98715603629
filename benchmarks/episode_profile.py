"""Where an episode's time goes: the quickstart's task mix, the baseline policy, each scaffold.

Episodes run one at a time through the real study machinery (episode runner, ``local`` sandbox,
grader, reward, trajectory files), with timers wrapped around the boundaries between the parts:

- session start: ``Sandbox.open`` (fork of a warm session, staging the task's public files);
- program (inside): each ``exec``'s own wall time as the sandbox reports it (the agent's code);
- exec overhead: the rest of each ``exec`` call (request, fork, result transfer);
- files: ``read_file`` / ``write_file`` / ``list_files`` on the session;
- session close, grading (``Grader.grade``), reward, policy (``Backend.complete``: the scripted
  baseline's own time), records (the trajectory file);
- scaffold + harness: whatever is left of the episode's wall time.

    .venv/bin/python benchmarks/episode_profile.py [--episodes 8] [--scaffolds react,aide,mledojo] [--json]

Shares are of the summed episode wall time per scaffold. The time of a part is measured where it
is awaited, so with one episode at a time nothing overlaps.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from sandmle.core.plugins import get_manager
from sandmle.core.recipe import parse_recipe, resolve
from sandmle.evaluation import episode as episode_module
from sandmle.evaluation.episode import EpisodeRunner
from sandmle.evaluation.study import plan_episodes

PARTS = ["session start", "program (inside)", "exec overhead", "files", "session close", "grading",
         "reward", "policy", "records", "scaffold + harness"]


class Timers:
    """Seconds per part, summed; ``wrap`` times a sync or async callable under one part name.

    Wrapped methods report to :data:`ACTIVE` at call time, so a class patched while profiling
    one scaffold reports to the next scaffold's timers (each method is wrapped once)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.program_cpu_s = 0.0  # CPU time of the agent's programs, as the sandbox measured it

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] += seconds
        self.calls[part] += 1

    def wrap(self, part: str, fn: Callable[..., Any],
             split: Callable[[Any, float], None] | None = None) -> Callable[..., Any]:
        if getattr(fn, "_profiled", False):
            return fn
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                result = await fn(*args, **kwargs)
                ACTIVE._record(part, time.perf_counter() - start, result, split)
                return result
            timed_async._profiled = True  # type: ignore[attr-defined]
            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            ACTIVE._record(part, time.perf_counter() - start, result, split)
            return result
        timed._profiled = True  # type: ignore[attr-defined]
        return timed

    def _record(self, part: str, seconds: float, result: Any, split: Callable[[Any, float], None] | None) -> None:
        if split is None:
            self.add(part, seconds)
        else:
            split(result, seconds)


ACTIVE = Timers()


def instrument(runner: EpisodeRunner, timers: Timers) -> None:
    """Wrap the parts' boundaries on the runner's live components (after its set-up)."""
    global ACTIVE
    ACTIVE = timers
    asyncio.run(runner._setup())  # builds sandbox, grader and reward once, as the first episode would
    sandbox, grader, reward = runner._sandbox, runner._grader, runner._reward

    def exec_split(result: Any, seconds: float) -> None:
        inside = min(float(getattr(result, "wall_s", 0.0) or 0.0), seconds)
        ACTIVE.add("program (inside)", inside)
        ACTIVE.program_cpu_s += float(getattr(result, "cpu_s", 0.0) or 0.0)
        ACTIVE.add("exec overhead", seconds - inside)

    def patch_session_class(session: Any) -> None:
        cls = type(session)
        cls.exec = timers.wrap("exec", cls.exec, split=exec_split)
        for name in ("read_file", "write_file", "list_files"):
            setattr(cls, name, timers.wrap("files", getattr(cls, name)))
        cls.close = timers.wrap("session close", cls.close)

    original_open = type(sandbox).open
    if not getattr(original_open, "_profiled", False):
        async def open_and_patch(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            session = await original_open(self, *args, **kwargs)
            ACTIVE.add("session start", time.perf_counter() - start)
            patch_session_class(session)
            return session

        open_and_patch._profiled = True  # type: ignore[attr-defined]
        type(sandbox).open = open_and_patch
    type(grader).grade = timers.wrap("grading", type(grader).grade)
    type(reward).score = timers.wrap("reward", type(reward).score)
    backend = runner._backend(0)
    type(backend).complete = timers.wrap("policy", type(backend).complete)
    episode_module._write_atomic = timers.wrap("records", episode_module._write_atomic)


def profile_scaffold(tasks: Path, scaffold: str, episodes: int, registry: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        n_tasks = sum(1 for _ in tasks.glob("*/task.yaml"))
        data = {"name": "profile", "output_dir": tmp,
                "tasks": {"name": "bench", "source": {"name": "directory", "args": {"path": str(tasks)}}},
                "sandbox": "local", "backend": "baseline", "scaffolds": [scaffold],
                "evaluation": {"seeds": list(range(-(-episodes // n_tasks))), "executor": "local"}}
        recipe = resolve(parse_recipe(data), registry)
        jobs = plan_episodes(recipe, registry)[:episodes]
        runner = EpisodeRunner(recipe, registry, Path(tmp))
        timers = Timers()
        instrument(runner, timers)

        async def run_all() -> tuple[list[dict[str, Any]], float]:
            # Start the warm pool first (a mother process that imports pandas/sklearn): a study pays
            # that once, not per episode, so it is left out of the per-episode figures.
            warm_up = await runner._sandbox.open(jobs[0][1])
            await warm_up.close()
            for part in list(ACTIVE.seconds):
                ACTIVE.seconds[part], ACTIVE.calls[part] = 0.0, 0
            ACTIVE.program_cpu_s = 0.0
            rows, wall = [], 0.0
            for job in jobs:  # one at a time, so the parts never overlap
                start = time.perf_counter()
                rows.append(await runner(job))
                wall += time.perf_counter() - start
            await runner._sandbox.shutdown()
            return rows, wall

        rows, wall = asyncio.run(run_all())
    measured = sum(timers.seconds.values())
    timers.seconds["scaffold + harness"] = max(0.0, wall - measured)
    return {"scaffold": scaffold, "episodes": len(rows), "wall_s": wall,
            "valid": sum(bool(r["grade_valid_submission"]) for r in rows),
            "failed": sum(r["status"] != "ok" for r in rows),
            "seconds": {p: timers.seconds.get(p, 0.0) for p in PARTS},
            "calls": {p: timers.calls.get(p, 0) for p in PARTS}, "program_cpu_s": timers.program_cpu_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=None,
                        help="a task folder; default: the quickstart's 8 procedural tasks (seed 0)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--scaffolds", default="react,aide,mledojo")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=args.json)
    manager = get_manager()
    manager.fill_registry()
    with tempfile.TemporaryDirectory() as tmp:
        tasks = args.tasks
        if tasks is None:  # the quickstart recipe's task set: procedural, n=8, seed 0
            tasks = Path(tmp) / "tasks"
            subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", "8", "--seed", "0",
                            "--out", str(tasks)], check=True, capture_output=True)
        results = [profile_scaffold(tasks, s, args.episodes, manager.registry) for s in args.scaffolds.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title="where an episode's time goes (ms per episode, share of wall time)")
    table.add_column("part")
    for res in results:
        table.add_column(f"{res['scaffold']} ({res['episodes']} ep, {res['valid']} valid)", justify="right")
    for part in PARTS + ["episode wall"]:
        cells = []
        for res in results:
            n = max(res["episodes"], 1)
            seconds = res["wall_s"] if part == "episode wall" else res["seconds"][part]
            share = "" if part == "episode wall" else f" ({100 * seconds / res['wall_s']:4.1f}%)"
            calls = "" if part in ("episode wall", "scaffold + harness") else f" x{res['calls'][part] / n:.1f}"
            cells.append(f"{1000 * seconds / n:7.1f}{share}{calls}")
        table.add_row(part, *cells)
    console.print(table)
    cores = os.cpu_count() or 1
    for res in results:
        cpu = res["program_cpu_s"] / max(res["episodes"], 1)
        console.print(f"{res['scaffold']}: the agent's programs use {1000 * cpu:.0f} ms of CPU an episode, so they "
                      f"alone allow at most {cores * 3600 / max(cpu, 1e-9):,.0f} episodes/hour on {cores} cores "
                      f"(load average {os.getloadavg()[0]:.1f})")
    console.print("x N: calls per episode. Episodes run one at a time; concurrency changes the totals "
                  "(benchmarks/rollout_throughput.py), not where a single episode's time goes.")


if __name__ == "__main__":
    main()
