"""One table of the throughput targets (issue 25) from the JSON the benchmarks wrote in one ``make bench``.

Reads ``sandbox_overhead.json``, ``rollout_throughput.json`` and ``micro_vs_full.json`` from the
folder given (``make bench`` writes them to ``runs/bench/``) and prints, side by side: the
trivial step and session start of the local warm pool (and the pipe-relay floor, what the
scheduler allows on this machine at this load), baseline episodes per hour per scaffold (warm
pool, and its ratio to cold processes), and the micro-vs-full medians per family, each against
its target, with the load average when the summary was made (the machine's load changes every
absolute figure; ratios measured side by side travel better).

    .venv/bin/python benchmarks/bench_summary.py runs/bench
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TARGETS = {"trivial": 2.0, "session-start": 10.0}  # ms p50, local warm pool
# Baseline episodes/hour on the quickstart mix: ReAct 12,000; AIDE and MLE-Dojo "in proportion",
# i.e. their figures when issue 25 was filed (1,126 and 3,354/h, beside ReAct's 4,895) times the
# same 12,000 / 4,895.
EPISODES_TARGET = {"react": 12_000, "aide": round(1_126 * 12_000 / 4_895), "mledojo": round(3_354 * 12_000 / 4_895)}
MICRO_VS_FULL_TARGET = 50.0


def _load(folder: Path, name: str):
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"{name}: not read ({exc})")
        return None


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bench")
    print(f"issue 25 targets, from {folder} (load average now {os.getloadavg()[0]:.1f}, 1 min)")
    print(f"{'figure':46}{'measured':>14}{'target':>12}  met")
    overhead = _load(folder, "sandbox_overhead.json")
    if overhead:
        rows = {(r["mode"], r["step"]): r for r in overhead["rows"]}
        for step, target in TARGETS.items():
            row = rows.get(("local warm pool", step))
            if row:
                print(f"{'local warm pool ' + step + ' p50':46}{row['p50_ms']:>11.1f} ms{target:>9.0f} ms  "
                      f"{'yes' if row['p50_ms'] <= target else 'no'}")
        floor = rows.get(("pipe relay (floor)", "trivial"))
        if floor:
            print(f"{'pipe relay host->A->B->A->host p50 (floor)':46}{floor['p50_ms']:>11.1f} ms{'':>12}  "
                  "(scheduler wake-ups alone)")
    rollout = _load(folder, "rollout_throughput.json")
    if rollout:
        cells = {(r["scaffold"], r["mode"]): r for r in rollout}
        for scaffold in dict.fromkeys(r["scaffold"] for r in rollout):
            warm, cold = cells.get((scaffold, "warm pool")), cells.get((scaffold, "cold processes"))
            if not warm:
                continue
            target = EPISODES_TARGET.get(scaffold)
            ratio = f" ({warm['per_hour'] / cold['per_hour']:.1f}x cold)" if cold else ""
            print(f"{scaffold + ' baseline episodes/h, warm' + ratio:46}{warm['per_hour']:>14,.0f}"
                  f"{target or 0:>12,.0f}  {'yes' if target and warm['per_hour'] >= target else 'no'}")
    mvf = _load(folder, "micro_vs_full.json") or _partial_micro_vs_full(folder)
    if mvf and mvf.get("rows"):
        scale = mvf["rows"][0].get("scale")
        for family, v in mvf["families"].items():
            # ">=": a full step stopped at --time-cap-s makes the figure a lower bound
            cold = (">=" if v.get("cold_lower_bound") else "") + f"{v['median_ratio_cold']:.1f}x"
            warm = "not run" if v.get("median_ratio_warm") is None else f"{v['median_ratio_warm']:.1f}x"
            print(f"{'micro vs full, ' + family:46}{cold:>14}{'':>12}  (warm vs warm {warm})")
        med = mvf["median_over_families_cold"]
        cold = (">=" if mvf.get("median_over_families_cold_lower_bound") else "") + f"{med:.1f}x"
        print(f"{'micro vs full, median over families':46}{cold:>14}{MICRO_VS_FULL_TARGET:>11.0f}x  "
              f"{'yes' if med >= MICRO_VS_FULL_TARGET else 'no'}" + (f"  (scale {scale}: not the full-scale figure)"
                                                                    if scale != 1.0 else ""))
        if mvf.get("partial"):
            print(f"  (from {mvf['partial']}: the {len(mvf['rows'])} seeds a full-scale run has finished so far; "
                  "a rerun resumes the rest)")


def _partial_micro_vs_full(folder: Path):
    """The seeds a stopped full-scale ``micro_vs_full`` run finished (its JSON summary is printed
    only at the end; every seed is a line of the results file as it finishes)."""
    path = folder / "micro_vs_full-scale1.0.jsonl"
    if not path.is_file():
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from micro_vs_full import summarize  # this folder's sibling script

    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut off by a kill
    rows = [r for r in rows if r.get("scale") == 1.0]
    return {"rows": rows, **summarize(rows), "partial": str(path)} if rows else None


if __name__ == "__main__":
    main()
