"""CLI start-up: wall time of ``sandmle --help`` and ``sandmle list scaffolds`` in fresh
interpreters, side by side with the floor every command pays (a fresh interpreter importing
click, pluggy, pydantic, rich and yaml and building one model) and a bare interpreter.

Runs are interleaved (floor, --help, list, bare, floor, ...) so machine load hits each alike;
the ratio to the floor is the number to compare between machines. Median of ``--reps`` runs.

    .venv/bin/python benchmarks/cli_startup.py [--reps 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FLOOR = ("import importlib.metadata, click, pluggy, pydantic, rich.console, rich.table, yaml\n"
         "class Model(pydantic.BaseModel):\n    x: int = 1\n")
CLI = "import sys\nfrom sandmle.core.cli import main\nmain(sys.argv[1:])\n"
CASES = {
    "bare interpreter": ["-c", "pass"],
    "libraries' floor": ["-c", FLOOR],
    "sandmle --help": ["-c", CLI, "--help"],
    "sandmle list scaffolds": ["-c", CLI, "list", "scaffolds"],
}


def once(argv: list[str]) -> float:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, env=env, timeout=120)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for name, argv in CASES.items():  # warm the file cache once
        once(argv)
    for _ in range(args.reps):
        for name, argv in CASES.items():
            times[name].append(once(argv))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    floor = medians["libraries' floor"]
    rows = [{"case": name, "median_s": round(m, 3), "min_s": round(min(times[name]), 3),
             "x_floor": round(m / floor, 2)} for name, m in medians.items()]
    if args.json:
        print(json.dumps({"reps": args.reps, "load_avg": os.getloadavg(), "rows": rows}, indent=2))
        return
    print(f"{args.reps} interleaved runs each; load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':<24}{'median s':>10}{'min s':>8}{'x floor':>9}")
    for r in rows:
        print(f"{r['case']:<24}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{r['x_floor']:>9.2f}")


if __name__ == "__main__":
    main()
