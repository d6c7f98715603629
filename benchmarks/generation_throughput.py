"""Procedural generation throughput: verified tasks per minute, acceptance, difficulty figures.

Generates N tasks over all seeds (per-seed quotas, families alternating) into a temporary folder
with the real ``local`` sandbox, and prints wall time, verified tasks/min, acceptance rate,
rejection reasons, the family mix, and the headroom and metric-noise figures of the accepted
tasks. It also prints the CPU seconds spent per verified task by this process and the children
it reaped: on a shared machine that figure, not the wall time, says what 2 otherwise idle cores
would do (2 cores x 60 s / CPU seconds per task = tasks/min). The reference solvers' own CPU is
not in it: the local sandbox's pool forks them from its own long-lived process, never reaped
here (about 0.4-1.3 CPU s per task by the sandbox's own ``cpu_s``, measured for issue 24).
Targets: >= 60 verified tasks/min on 2 cores, >= 90% acceptance.

``--compare REF`` runs the generator of git revision REF (e.g. the commit before the ladder) on
the same n, seed and workers in the same invocation, one after the other, each in its own
process (REF's source extracted with ``git archive`` and put first on ``PYTHONPATH``), and prints
both results and their ratios: the side-by-side figure for a change to the generator.

    .venv/bin/python benchmarks/generation_throughput.py [--n 50] [--workers 2] [--seed 0] [--json]
    .venv/bin/python benchmarks/generation_throughput.py --n 30 --compare 5b56dc6
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator
from sandmle.generators.show import difficulty_summary


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_revision(ref: str, args: argparse.Namespace) -> dict:
    """This script's measurement with the generator of git revision ``ref``, in a child process."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="sandmle-genbench-ref-"))
    try:
        tree = work / "sandmle"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": str(work) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--n", str(args.n), "--workers", str(args.workers),
               "--seed", str(args.seed), "--json"]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(work))
        if res.returncode != 0:
            raise SystemExit(f"revision {ref} failed: {res.stderr[-2000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", metavar="REF", help="also measure the generator of git revision REF")
    args = ap.parse_args()
    if args.compare:
        old = _run_revision(args.compare, args)
        new = _measure(args)  # the working tree, in this process
        keys = ("verified_per_min", "verified_per_min_on_2_idle_cores", "cpu_s_per_verified_task", "acceptance_rate")
        print(json.dumps({"ref": args.compare, "before": old, "now": new,
                          "ratio_now_over_before": {k: round(new[k] / old[k], 3) if old[k] else None for k in keys}},
                         indent=None if args.json else 1))
        return
    print(json.dumps(_measure(args), indent=None if args.json else 1))


def _measure(args: argparse.Namespace) -> dict:
    """Generate ``args.n`` tasks with the generator this process imports; the figures."""
    out = Path(tempfile.mkdtemp(prefix="sandmle-genbench-"))
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    first = None
    outcomes = []
    for o in ProceduralGenerator(ProceduralConfig(workers=args.workers)).generate(out, args.n, seed=args.seed):
        first = first or time.perf_counter()
        outcomes.append(o)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    ok = [o for o in outcomes if o.accepted]
    result = {
        "n_requested": args.n, "accepted": len(ok), "candidates": len(outcomes), "wall_s": round(wall, 2),
        "startup_s": round((first or t0) - t0, 2),
        "verified_per_min": round(60 * len(ok) / wall, 1),
        "cpu_s_per_verified_task": round(cpu / max(1, len(ok)), 2),
        "verified_per_min_on_2_idle_cores": round(2 * 60 * len(ok) / max(cpu, 1e-9), 1),
        "acceptance_rate": round(len(ok) / max(1, len(outcomes)), 3),
        "rejections": dict(Counter(o.reason for o in outcomes if not o.accepted)),
        "family_mix": dict(Counter(o.family for o in ok)),
        "metric_mix": dict(Counter(o.metric for o in ok)),
        "mean_train_rows": round(sum(o.n_train for o in ok) / max(1, len(ok)), 1),
        "difficulty": dict(difficulty_summary([o.difficulty for o in ok])),
        "generator_source": str(Path(ProceduralGenerator.__module__ and __import__(ProceduralGenerator.__module__,
                                                                                    fromlist=["x"]).__file__).parent),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
