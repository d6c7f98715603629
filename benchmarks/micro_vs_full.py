"""What a user gains per agent step: the same task at micro scale vs at its real seeds' size.

For each seed family, one task is synthesized twice from the same seed and RNG key (same hidden
rule, same columns, same file layout): at micro scale (its generated size, 50-200 training rows)
and at full scale (the real MLE-bench-lite competitions' training-set sizes, listed in FULL_ROWS
with the competitions they come from; capped where noted so the benchmark fits a 2-core machine).
The same solution, the scripted baseline's greedy first program (reads every file, featurizes,
checks a 100-tree random forest on a hold-out split, refits, writes submission.csv), then runs as
one agent step on each side, as each side runs it:

- full scale: one fresh ``python solution.py`` process in the task folder, as an MLE-bench-style
  agent step does (interpreter start and imports included);
- micro scale: one ``exec`` in a warm ``local`` sandbox session (pre-imported worker, forked).

It reports the wall time of each step, their ratio per family and the median ratio (goal >= 50x
on 2 cores; SandMLE reports 13.7x per step), and both sides' peak memory.

    .venv/bin/python benchmarks/micro_vs_full.py [--families a,b] [--scale 1.0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sandmle.core.plugins import get_registry
from sandmle.generators.seeds import all_seeds
from sandmle.generators.synth import synthesize
from sandmle.generators.writer import write_candidate
from sandmle.scaffolds.baseline_programs import Choices, solve_program

# Training rows at full scale per family, with the lite competitions they stand for.
FULL_ROWS = {
    "tabular-binary": (200_000, "tabular-playground-series-may-2022: 900,000 rows (capped at 200,000)"),
    "tabular-multiclass": (990, "leaf-classification: 990 rows"),
    "tabular-regression": (200_000, "new-york-city-taxi-fare-prediction: 55M rows (capped at 200,000)"),
    "tabular-multitarget": (2_400, "nomad2018-predict-transparent-conductors: 2,400 rows"),
    "tabular-pitfalls": (200_000, "tabular-playground-series-dec-2021: 4M rows (capped at 200,000)"),
    "text": (19_579, "spooky-author-identification: 19,579 texts"),
    "text-multilabel": (20_000, "jigsaw-toxic-comment-classification: 159,571 texts (capped at 20,000)"),
    "text-meta": (4_040, "random-acts-of-pizza: 4,040 requests"),
    "image-classification": (17_500, "aerial-cactus-identification: 17,500 images (same 32 px size)"),
    "image-multilabel": (15_000, "plant-pathology (1,821) / ranzcr (30,083) images: 15,000"),
    "image-regression": (144, "denoising-dirty-documents: 144 images (kept at 32-48 px)"),
    "audio": (30_000, "the-icml-2013-whale-challenge: 30,000 clips (0.5 s instead of 2 s)"),
    "time-series": (50_000, "no lite seed: 50,000 rows of daily series"),
}
SOLUTION = Choices()  # the scripted baseline's greedy first solution: a 100-tree random forest


def _peak_step(folder: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh ``python solution.py`` in ``folder``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "solution.py"], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"full-scale step failed in {folder}: {proc.stderr.read().decode()[-800:]}")
    return wall, usage.ru_maxrss / 1024


async def _micro_steps(tasks: list, reps: int) -> list[tuple[float, float]]:
    """Median wall seconds and peak MB of the solution as one step in a warm sandbox session."""
    sandbox = get_registry().create("sandboxes", "local", {"pool_size": 1})
    out = []
    try:
        for task in tasks:
            session = await sandbox.open(task)
            runs = []
            try:
                for _ in range(reps):
                    res = await session.exec(solve_program(SOLUTION), timeout=600)
                    if not res.ok:
                        raise RuntimeError(f"micro step failed on {task.id}: {res.stderr_tail[-800:]}")
                    runs.append((res.wall_s, res.peak_mem_mb))
            finally:
                await session.close()
            out.append((statistics.median(r[0] for r in runs), max(r[1] for r in runs)))
    finally:
        await sandbox.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="", help="comma-separated families (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every full size (quick trial runs)")
    ap.add_argument("--reps", type=int, default=3, help="micro steps per family (median)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    wanted = set(filter(None, args.families.split(",")))
    seeds = {}
    for seed in all_seeds():
        if seed.family in FULL_ROWS and (not wanted or seed.family in wanted):
            seeds.setdefault(seed.family, seed)
    work = Path(tempfile.mkdtemp(prefix="sandmle-microfull-"))
    rows, micro_tasks = [], []
    try:
        for family, seed in seeds.items():
            full_rows = max(200, int(FULL_ROWS[family][0] * args.scale))
            key = [0, 1]
            micro = synthesize(seed, np.random.default_rng(key), 150, 150)
            full = synthesize(seed, np.random.default_rng(key), full_rows, max(100, full_rows // 4))
            micro_tasks.append(write_candidate(micro, work / family / "micro", f"{family}-micro", {}))
            write_candidate(full, work / family / "full", f"{family}-full", {})
            folder = work / family / "full" / "prepared" / "public"
            (folder / "solution.py").write_text(solve_program(SOLUTION))
            full_s, full_mb = _peak_step(folder)
            rows.append({"family": family, "seed": seed.name, "micro_train_rows": len(micro.train),
                         "full_train_rows": len(full.train), "full_size_source": FULL_ROWS[family][1],
                         "full_step_s": round(full_s, 3), "full_peak_mb": round(full_mb, 1)})
            shutil.rmtree(work / family / "full", ignore_errors=True)
            # Progress on stderr: a full-scale run takes long, and a cut-off run still shows its rows.
            print(f"full {family}: {len(full.train)} rows, {full_s:.1f} s, {full_mb:.0f} MB", file=sys.stderr, flush=True)
        for row, (micro_s, micro_mb) in zip(rows, asyncio.run(_micro_steps(micro_tasks, args.reps))):
            row.update(micro_step_s=round(micro_s, 3), micro_peak_mb=round(micro_mb, 1),
                       speedup=round(row["full_step_s"] / max(micro_s, 1e-6), 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median_ratio = statistics.median(r["speedup"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "median_speedup": median_ratio}))
        return
    print(f"{'family':22} {'micro rows':>10} {'full rows':>10} {'micro s':>8} {'full s':>8} {'ratio':>7} "
          f"{'micro MB':>9} {'full MB':>9}")
    for r in rows:
        print(f"{r['family']:22} {r['micro_train_rows']:10d} {r['full_train_rows']:10d} {r['micro_step_s']:8.3f} "
              f"{r['full_step_s']:8.2f} {r['speedup']:6.1f}x {r['micro_peak_mb']:9.0f} {r['full_peak_mb']:9.0f}")
    print(f"median ratio: {median_ratio:.1f}x  (full sizes: " + "; ".join(v[1] for v in FULL_ROWS.values()) + ")")


if __name__ == "__main__":
    main()
