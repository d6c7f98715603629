"""Rollout throughput: baseline-policy episodes per hour for each scaffold, warm pool vs cold.

One run, side by side, same tasks and concurrency: the ``local`` sandbox with its defaults (sessions
forked ahead of need from a mother that has imported pandas/sklearn; every step a fork of its
session) against cold processes (``pool_size: 0``, no preloaded modules and
``fresh_interpreter: true``: every step is a new ``python`` process that imports what it uses,
as SandMLE's tool runs ``python main.py``; the isolation is the same in both modes).
Each cell runs ``--episodes`` episodes through the real study machinery (executor, episode runner,
grader, reward, trajectory files). The ratio column is warm / cold (higher is better).

    .venv/bin/python benchmarks/rollout_throughput.py [--tasks DIR] [--episodes 24] [--json]
    .venv/bin/python benchmarks/rollout_throughput.py --compare REF [--rounds 2] [--modes warm]

Without ``--tasks`` it first generates the quickstart's task set (``procedural``, 8 tasks, seed 0:
tables, text, image and sound files, time series) into a temporary directory.
``--compare REF`` runs the same cells with the code of git revision REF and of the working tree
in alternating child processes (REF's source from ``git archive``, first on ``PYTHONPATH``) on
the same tasks, ``--rounds`` times each, and prints the median episodes/hour of each and their
ratio: the side-by-side figure for a change to the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox_overhead import tree_cpu_s  # this folder's sibling script
from sandmle.core.plugins import get_manager
from sandmle.core.recipe import parse_recipe, resolve
from sandmle.evaluation.episode import EpisodeRunner
from sandmle.evaluation.study import build_executor, plan_episodes

MODES = {"warm pool": {}, "cold processes": {"pool_size": 0, "preload": [], "fresh_interpreter": True}}
MODE_KEYS = {"warm": "warm pool", "cold": "cold processes"}


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
        # Start-up (grader, reward, the sandbox's mother importing its preload modules, the
        # first pooled sessions) happens once per run, not per episode: it is timed apart, so the
        # rate is the hourly one an hour-long run sees (24 episodes took ~9 s, ~1.5 s of it start-up).
        start = time.perf_counter()
        pool = _start(runner)
        startup_s = time.perf_counter() - start
        tree0 = tree_cpu_s(pool.mother().proc.pid) if pool is not None else 0.0
        cpu0, start = _cpu_s(), time.perf_counter()
        rows = list(executor.map_unordered(runner, jobs))
        elapsed = time.perf_counter() - start  # includes the sandbox's shutdown
        cpu = host_cpu = _cpu_s() - cpu0
        if pool is not None:  # the local sandbox's mother, sessions and workers, read before they go
            try:
                cpu += tree_cpu_s(pool.mother().proc.pid) - tree0
            finally:
                asyncio.run(runner._sandbox.shutdown())
        program_cpu = _program_cpu_s(Path(tmp), rows)
    ok = [r for r in rows if r["status"] == "ok"]
    return {"scaffold": scaffold, "episodes": len(rows), "failed": len(rows) - len(ok),
            "valid": sum(bool(r["grade_valid_submission"]) for r in rows), "seconds": elapsed,
            "per_hour": 3600 * len(rows) / elapsed, "concurrency": executor.concurrency, "startup_s": startup_s,
            "per_hour_with_startup": 3600 * len(rows) / (elapsed + startup_s),
            # What the same work would give on idle cores: the harness, the sandbox and the
            # agent's programs together used ``cpu_s``; wall time on a loaded machine is longer.
            "cpu_s": cpu, "host_cpu_s": host_cpu, "program_cpu_s": program_cpu, "per_hour_on_idle_cores": 3600 * len(rows) * (os.cpu_count() or 1) / max(cpu, 1e-9)}


def _start(runner: EpisodeRunner):
    """Build the runner's grader, reward and sandbox and, for the ``local`` sandbox, wait until
    its mother runs and its pool holds its sessions; returns the pool (None for other sandboxes)."""
    asyncio.run(runner._setup())
    pool = getattr(runner._sandbox, "pool", None)
    if pool is not None:
        pool.wait_warm()
    return pool


def _program_cpu_s(out: Path, rows: list[dict]) -> float:
    """CPU seconds of the agent's programs (every execution's ``cpu_s``, as its sandbox measured
    it) over the episodes' trajectory files."""
    total = 0.0
    for row in rows:
        if row.get("trajectory"):
            with open(out / row["trajectory"], encoding="utf-8") as fh:
                record = json.loads(fh.readline())
            total += sum(e.get("cpu_s", 0.0) for t in record["trajectory"]["turns"] for e in t.get("executions", []))
    return total


def _cpu_s() -> float:
    """CPU seconds of this process and of the child processes it has waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def compare(args: argparse.Namespace, tasks: Path) -> None:
    """Alternate child processes running REF's harness and the working tree's (see --compare)."""
    import shutil
    import statistics

    repo = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="sandmle-rollout-ref-"))
    runs: dict[str, list[list[dict]]] = {args.compare: [], "now": []}
    try:
        (work / "sandmle").mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", args.compare], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work / "sandmle")], input=archive, check=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--tasks", str(tasks), "--episodes", str(args.episodes),
               "--scaffolds", args.scaffolds, "--modes", args.modes, "--json"]
        for _ in range(args.rounds):
            for label, path in ((args.compare, str(work)), ("now", "")):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")]))}
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(work))
                if res.returncode != 0:
                    raise SystemExit(f"{label} failed: {res.stderr[-2000:]}")
                runs[label].append(json.loads(res.stdout))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'scaffold':10}{'mode':16}{args.compare + ' /h':>14}{'now /h':>10}{'now/ref':>9}"
          f"{'idle-core /h: ref':>20}{'now':>8}{'now/ref':>9}  (median of {args.rounds} alternated rounds, "
          f"{args.episodes} episodes each; load average {os.getloadavg()[0]:.1f})")
    for i, cell in enumerate(runs["now"][0]):
        before, now = (statistics.median(r[i]["per_hour"] for r in runs[k]) for k in (args.compare, "now"))
        idle_before, idle_now = (statistics.median(r[i].get("per_hour_on_idle_cores", 0.0) for r in runs[k])
                                 for k in (args.compare, "now"))
        print(f"{cell['scaffold']:10}{cell['mode']:16}{before:14.0f}{now:10.0f}{now / before:8.2f}x"
              f"{idle_before:20.0f}{idle_now:8.0f}{idle_now / max(idle_before, 1e-9):8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--scaffolds", default="react,aide,mledojo")
    parser.add_argument("--plugin", action="append", default=[],
                        help="extra plugin module or .py file to load (e.g. a third-party scaffold)")
    parser.add_argument("--modes", default="warm,cold", help="warm, cold or both")
    parser.add_argument("--compare", metavar="REF", help="also measure git revision REF, alternated")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of --compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = {MODE_KEYS[m]: MODES[MODE_KEYS[m]] for m in args.modes.split(",")}
    console = Console(stderr=args.json)
    manager = get_manager()
    manager.fill_registry()
    for spec in args.plugin:
        manager.load_module(spec)
    with tempfile.TemporaryDirectory() as tmp:
        tasks = args.tasks
        if tasks is None:
            tasks = Path(tmp) / "tasks"
            subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", "8", "--seed", "0",
                            "--out", str(tasks)], check=True, capture_output=True)
        if args.compare:
            compare(args, tasks)
            return
        results = []
        for scaffold in args.scaffolds.split(","):
            for mode, sandbox_args in modes.items():
                res = measure(tasks, scaffold, sandbox_args, args.episodes, manager.registry)
                res["mode"] = mode
                results.append(res)
                console.print(f"{scaffold:8s} {mode:15s} {res['per_hour']:8.0f} episodes/hour "
                              f"({res['episodes']} in {res['seconds']:.1f}s after {res['startup_s']:.1f}s of start-up: "
                              f"{res['per_hour_with_startup']:.0f}/h with it; {res['valid']} valid, "
                              f"{res['failed']} failed; CPU {res['cpu_s']:.1f}s ({res['host_cpu_s']:.1f}s in this process, {res['program_cpu_s']:.1f}s "
                              f"the agent's programs): "
                              f"{res['per_hour_on_idle_cores']:.0f}/h on {os.cpu_count()} idle cores; "
                              f"load average {os.getloadavg()[0]:.1f})")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if len(modes) < 2:
        return
    table = Table(title=f"baseline episodes per hour ({results[0]['concurrency']} at once)")
    for col in ("scaffold", "warm pool /h", "cold processes /h", "warm / cold", "valid (warm)",
                "warm /h on idle cores (CPU)"):
        table.add_column(col, justify="right")
    for scaffold in args.scaffolds.split(","):
        warm, cold = (next(r for r in results if r["scaffold"] == scaffold and r["mode"] == m)
                      for m in MODES)
        table.add_row(scaffold, f"{warm['per_hour']:.0f}", f"{cold['per_hour']:.0f}",
                      f"{warm['per_hour'] / cold['per_hour']:.2f}x",
                      f"{warm['valid']}/{warm['episodes']}", f"{warm['per_hour_on_idle_cores']:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
