"""Headroom study: does careful feature work climb the ladder where the scripted baseline does not?

On a procedural task set from a seed the tests do not use, it compares per task (paired):

- the scripted ``baseline`` policy in react, aide and mledojo (the calibration study that
  ``sandmle generate`` runs on sets of 20 or more tasks; ``OUT/tasks/calibration/``), and
- the "careful" solution of ``benchmarks/careful_solution.py`` (public files only), graded
  with each task's own thresholds (MLE-bench's comparisons, ``graders/medals.py``).

It prints and writes ``OUT/headroom.json`` and ``OUT/per_task.csv``: any-medal and gold rates,
the paired difference careful - baseline (the baseline's per-task rate averaged over scaffolds)
with its standard error, and per-family figures. Targets (issue 24): a gain of >= 25 points,
careful gold on >= 20% of tasks, the baseline's gold on none or almost none.

    nice -n 10 .venv/bin/python benchmarks/headroom_study.py --n 40 --seed 2027 --out runs/headroom
    .venv/bin/python benchmarks/headroom_study.py --tasks runs/headroom/tasks --out runs/headroom  # reuse a set
    # the careful solution while the set's calibration still runs in the generating process:
    .venv/bin/python benchmarks/headroom_study.py --tasks runs/h/tasks --out runs/h2 --wait-calibration 3600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from careful_solution import solve  # noqa: E402

from sandmle.core.task import MedalThresholds  # noqa: E402
from sandmle.graders.medals import medals  # noqa: E402
from sandmle.graders.metrics import compute_score  # noqa: E402


def grade(task_dir: Path, sub: pd.DataFrame) -> dict:
    meta = yaml.safe_load((task_dir / "task.yaml").read_text(encoding="utf-8"))
    answers = pd.read_csv(task_dir / meta["answers"])
    score = compute_score(meta["metric"], answers, sub, meta["target_columns"], meta["id_column"])
    m = medals(score, MedalThresholds(**meta["thresholds"]), meta["lower_is_better"])
    return {"score": score, "gold": m.gold, "any_medal": m.gold or m.silver or m.bronze, "silver": m.silver,
            "bronze": m.bronze, "above_median": m.above_median}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--out", type=Path, default=Path("runs/headroom"))
    ap.add_argument("--tasks", type=Path, help="an existing calibrated task set (skips generation)")
    ap.add_argument("--wait-calibration", type=float, default=0.0,
                    help="seconds to wait for TASKS/calibration.json (a set still calibrating elsewhere)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = args.tasks or args.out / "tasks"
    t0 = time.perf_counter()
    if args.tasks is None:  # the user's path: generate (which calibrates the baseline on >= 20 tasks)
        subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", str(args.n), "--seed",
                        str(args.seed), "--out", str(tasks), "--json"], check=True,
                       stdout=open(args.out / "generate.jsonl", "w"))
    gen_s = time.perf_counter() - t0
    careful = {}
    for path in sorted(tasks.glob("*/task.yaml")):  # the careful solution needs only the tasks
        task_dir = path.parent
        t1 = time.perf_counter()
        try:
            g = grade(task_dir, solve(task_dir))
            err = ""
        except Exception as exc:  # noqa: BLE001 - a failing solution is a result, not a crash
            g, err = {"score": None, "gold": False, "any_medal": False}, f"{type(exc).__name__}: {exc}"[:200]
        careful[path] = (g, err, round(time.perf_counter() - t1, 2))
        print(json.dumps({"task": task_dir.name, "careful_score": g["score"], "error": err}), flush=True)
    # A set whose calibration still runs (``sandmle generate`` in another process): wait for it.
    deadline = time.monotonic() + args.wait_calibration
    while not (tasks / "calibration.json").exists() and time.monotonic() < deadline:
        time.sleep(10)
    rows = [json.loads(x) for x in (tasks / "calibration" / "results.jsonl").read_text().splitlines() if x.strip()]
    base: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        base[r["task_id"]].append(r)
    per_task = []
    for path, (g, err, seconds) in careful.items():
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
        b = base.get(meta["id"], [])
        per_task.append({
            "task": meta["id"], "family": (meta.get("layout") or {}).get("family"), "metric": meta["metric"],
            "careful_score": g["score"], "careful_any_medal": bool(g["any_medal"]), "careful_gold": bool(g["gold"]),
            "careful_error": err, "careful_s": seconds,
            "baseline_any_medal": float(np.mean([bool(x.get("grade_any_medal")) for x in b])) if b else np.nan,
            "baseline_gold": float(np.mean([bool(x.get("grade_gold_medal")) for x in b])) if b else np.nan,
            "baseline_valid": float(np.mean([bool(x.get("grade_valid_submission")) for x in b])) if b else np.nan,
            "informed_gain_se": (meta.get("difficulty") or {}).get("informed_gain_se")})
        print(json.dumps(per_task[-1]), flush=True)
    df = pd.DataFrame(per_task)
    df.to_csv(args.out / "per_task.csv", index=False)
    paired = df.dropna(subset=["baseline_any_medal"])
    diff = paired["careful_any_medal"].astype(float) - paired["baseline_any_medal"]
    scaffolds = sorted({r["scaffold"] for r in rows})
    summary = {
        "tasks": len(df), "seed": args.seed, "generation_and_baseline_s": round(gen_s, 1),
        "careful_any_medal": round(df["careful_any_medal"].mean(), 3), "careful_gold": round(df["careful_gold"].mean(), 3),
        "careful_errors": int((df["careful_error"] != "").sum()),
        "baseline_any_medal": round(paired["baseline_any_medal"].mean(), 3),
        "baseline_gold": round(paired["baseline_gold"].mean(), 3),
        "baseline_valid": round(paired["baseline_valid"].mean(), 3),
        "baseline_by_scaffold": {s: {"any_medal": round(np.mean([bool(r.get("grade_any_medal")) for r in rows if r["scaffold"] == s]), 3),
                                     "gold": round(np.mean([bool(r.get("grade_gold_medal")) for r in rows if r["scaffold"] == s]), 3)}
                                 for s in scaffolds},
        "paired_gain_any_medal": round(float(diff.mean()), 3),
        "paired_gain_se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 3) if len(diff) > 1 else None,
        "by_family": {f: {"n": int(len(g)), "careful_any_medal": round(g["careful_any_medal"].mean(), 2),
                          "careful_gold": round(g["careful_gold"].mean(), 2),
                          "baseline_any_medal": round(g["baseline_any_medal"].mean(), 2)}
                      for f, g in df.groupby("family")},
    }
    (args.out / "headroom.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
