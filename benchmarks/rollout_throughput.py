"""Rollout throughput: baseline-policy episodes per hour for each scaffold, warm pool vs cold.

One run, side by side, same tasks and concurrency: the ``local`` sandbox with its defaults (sessions
forked ahead of need from a mother that has imported pandas/sklearn; every step a fork of its
session) against cold processes (``pool_size: 0``, no preloaded modules and
``fresh_interpreter: true``: every step is a new ``python`` process that imports what it uses,
as SandMLE's tool runs ``python main.py``; the isolation is the same in both modes).
Each cell runs ``--episodes`` episodes through the real study machinery (executor, episode runner,
grader, reward, trajectory files). The ratio column is warm / cold (higher is better).

    .venv/bin/python benchmarks/rollout_throughput.py [--tasks DIR] [--episodes 24] [--json]

Without ``--tasks`` it first generates 6 procedural tasks into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandmle.core.plugins import get_manager
from sandmle.core.recipe import parse_recipe, resolve
from sandmle.evaluation.episode import EpisodeRunner
from sandmle.evaluation.study import build_executor, plan_episodes

MODES = {"warm pool": {}, "cold processes": {"pool_size": 0, "preload": [], "fresh_interpreter": True}}


def make_recipe(tasks: Path, out: Path, scaffold: str, sandbox_args: dict, seeds: int) -> dict:
    return {"name": "throughput", "output_dir": str(out),
            "tasks": {"name": "bench", "source": {"name": "directory", "args": {"path": str(tasks)}}},
            "sandbox": {"name": "local", "args": sandbox_args}, "backend": "baseline",
            "scaffolds": [scaffold], "evaluation": {"seeds": list(range(seeds)), "executor": "local"}}


def measure(tasks: Path, scaffold: str, sandbox_args: dict, episodes: int, registry) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        n_tasks = sum(1 for _ in tasks.glob("*/task.yaml"))
        recipe = resolve(parse_recipe(make_recipe(tasks, Path(tmp), scaffold, sandbox_args,
                                                  seeds=-(-episodes // n_tasks))), registry)
        jobs = plan_episodes(recipe, registry)[:episodes]
        executor = build_executor(recipe, registry)
        runner = EpisodeRunner(recipe, registry, Path(tmp))
        start = time.perf_counter()
        rows = list(executor.map_unordered(runner, jobs))
        elapsed = time.perf_counter() - start  # includes pool start-up and shutdown
    ok = [r for r in rows if r["status"] == "ok"]
    return {"scaffold": scaffold, "episodes": len(rows), "failed": len(rows) - len(ok),
            "valid": sum(bool(r["grade_valid_submission"]) for r in rows), "seconds": elapsed,
            "per_hour": 3600 * len(rows) / elapsed, "concurrency": executor.concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--scaffolds", default="react,aide,mledojo")
    parser.add_argument("--plugin", action="append", default=[],
                        help="extra plugin module or .py file to load (e.g. a third-party scaffold)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=args.json)
    manager = get_manager()
    manager.fill_registry()
    for spec in args.plugin:
        manager.load_module(spec)
    with tempfile.TemporaryDirectory() as tmp:
        tasks = args.tasks
        if tasks is None:
            tasks = Path(tmp) / "tasks"
            subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", "6",
                            "--out", str(tasks)], check=True, capture_output=True)
        results = []
        for scaffold in args.scaffolds.split(","):
            for mode, sandbox_args in MODES.items():
                res = measure(tasks, scaffold, sandbox_args, args.episodes, manager.registry)
                res["mode"] = mode
                results.append(res)
                console.print(f"{scaffold:8s} {mode:15s} {res['per_hour']:8.0f} episodes/hour "
                              f"({res['episodes']} in {res['seconds']:.1f}s, {res['valid']} valid, "
                              f"{res['failed']} failed)")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"baseline episodes per hour ({results[0]['concurrency']} at once)")
    for col in ("scaffold", "warm pool /h", "cold processes /h", "warm / cold", "valid (warm)"):
        table.add_column(col, justify="right")
    for scaffold in args.scaffolds.split(","):
        warm, cold = (next(r for r in results if r["scaffold"] == scaffold and r["mode"] == m)
                      for m in MODES)
        table.add_row(scaffold, f"{warm['per_hour']:.0f}", f"{cold['per_hour']:.0f}",
                      f"{warm['per_hour'] / cold['per_hour']:.2f}x",
                      f"{warm['valid']}/{warm['episodes']}")
    console.print(table)


if __name__ == "__main__":
    main()
