"""Grading limits: what a normal grade costs with the pre-parse checks and with the worker, and
what a wide-header submission costs with and without the width check, measured side by side.

Rows (median of ``--reps`` grades each, one process, the toy 40-row roc_auc task):

- ``normal, inline``: the default config (a small submission is checked, then scored in-process);
- ``normal, worker``: the same submission through the bounded worker (``worker_min_bytes: 0``);
- ``wide, refused``: a header of ``--columns`` columns, refused by ``max_columns`` before parsing;
- ``wide, parsed``: the same file with the width check off (``max_columns`` raised), parsed
  in-process as before the limits existed (once: it is slow).

Ratios are against ``normal, inline``.

    .venv/bin/python benchmarks/grading_limits.py [--reps 30] [--columns 50000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sandmle.graders.configs import DefaultGraderConfig
from sandmle.graders.grader import DefaultGrader
from sandmle.graders.toy import make_toy_task


def _median_s(grader: DefaultGrader, task, path: Path, reps: int) -> tuple[float, str | None]:
    grader.grade(task, path)  # warm caches (the sample's score, imports)
    times, reason = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        grade = grader.grade(task, path)
        times.append(time.perf_counter() - t0)
        reason = grade.reason
    return statistics.median(times), reason


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--columns", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task = make_toy_task(Path(tmp) / "toy", "binary")
        normal = task.sample_submission_path
        wide = Path(tmp) / "wide.csv"
        header = ",".join([task.id_column, *task.target_columns] + [f"c{i}" for i in range(args.columns)])
        wide.write_text(header + "\n" + "".join(f"{i},0\n" for i in range(10)))
        rows = {
            "normal, inline": _median_s(DefaultGrader(), task, normal, args.reps),
            "normal, worker": _median_s(DefaultGrader(DefaultGraderConfig(worker_min_bytes=0)), task, normal, args.reps),
            "wide, refused": _median_s(DefaultGrader(), task, wide, args.reps),
            "wide, parsed": _median_s(DefaultGrader(DefaultGraderConfig(max_columns=10**8)), task, wide, 1),
        }
    base = rows["normal, inline"][0]
    out = [{"case": k, "median_ms": round(v * 1000, 2), "ratio_to_normal_inline": round(v / base, 2),
            "reason": (r or "")[:80]} for k, (v, r) in rows.items()]
    if args.json:
        print(json.dumps({"columns": args.columns, "reps": args.reps, "rows": out}, indent=2))
    else:
        print(f"{'case':<16} {'median ms':>10} {'x normal':>9}  reason")
        for row in out:
            print(f"{row['case']:<16} {row['median_ms']:>10} {row['ratio_to_normal_inline']:>9}  {row['reason']}")


if __name__ == "__main__":
    main()
