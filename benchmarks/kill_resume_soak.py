"""Kill-and-resume soak: ``kill -9`` ``sandmle generate`` and ``sandmle eval`` at random moments,
rerun each until it finishes, and compare what is left with one uninterrupted run of each.

Kills land while work is left: when a resumed run finishes before its kill, that output folder's
cycle is compared and the next cycle starts on a fresh folder. For ``generate``: each cycle's
task set must hold exactly N tasks, every folder loading as a task, no
candidate index or hidden rule twice (0 lost, 0 duplicated), each task byte-identical to the
uninterrupted run's task of the same id. For ``eval`` (whose recipe generates its own tasks, so
kills land in the generation stage too): every planned episode has exactly one usable row in
``results.jsonl`` (0 lost, 0 duplicated) and the same grade and reward as the uninterrupted
run. Both: no sandbox folder of a killed run is left at the end.

    .venv/bin/python benchmarks/kill_resume_soak.py [--kills 20] [--tasks 4] [--seeds 2]
        [--scaffolds react,mledojo] [--only generate|eval] [--seed 0] [--json]

The test suite runs a short form (tests/test_reliability_soak.py: 2 kills of each, 2 tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

SEED_TASKS = "breast-cancer-binary,diabetes-regression"
FILES = ("task.yaml", "prepared/public/train.csv", "prepared/public/test.csv",
         "prepared/public/sample_submission.csv", "prepared/private/answers.csv")


def _sandmle(*args: str) -> list[str]:
    return [sys.executable, "-m", "sandmle.core.cli", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", COLUMNS="160")


def run_to_end(argv: list[str], log: Path) -> float:
    """Run ``argv`` uninterrupted; return its wall time (raises when it fails)."""
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=_env(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])} failed ({proc.returncode}); see {log}")
    return time.monotonic() - t0


def kill_and_resume(argv_for: Callable[[Path], list[str]], compare: Callable[[Path], dict[str, Any]],
                    folder: Path, kills: int, window: tuple[float, float], rng: random.Random,
                    log: Path) -> dict[str, Any]:
    """Start the command on a fresh output folder and SIGKILL it after a random delay in
    ``window``, again and again; a run that finishes first ends that folder's cycle (its output
    is compared) and the next cycle starts on a new folder, so every kill lands while work is
    left. After ``kills`` kills the last cycle runs to its end. Returns the summed comparison."""
    killed: list[int] = []
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def out() -> Path:
        return folder / f"cycle{len(results)}"

    while len(killed) < kills:
        with open(log, "ab") as fh:
            proc = subprocess.Popen(argv_for(out()), stdout=fh, stderr=subprocess.STDOUT, env=_env())
            try:
                proc.wait(timeout=rng.uniform(*window))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID`
                proc.wait()
                killed.append(proc.pid)
                continue
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv_for(out())[3:])} failed ({proc.returncode}); see {log}")
        results.append(compare(out()))  # this cycle finished between kills: the next starts afresh
    final = out()
    run_to_end(argv_for(final), log)
    results.append(compare(final))
    summed: dict[str, Any] = {"kills": len(killed), "cycles": len(results), "wall_s": round(time.monotonic() - t0, 1),
                              "leftover_sandbox_folders": leftover_folders(killed)}
    for key, value in results[0].items():
        if isinstance(value, bool):
            summed[key] = any(r[key] for r in results)
        elif isinstance(value, (int, float)):
            summed[key] = sum(r[key] for r in results)
        elif isinstance(value, list):
            summed[key] = [item for r in results for item in r[key]]
    return summed


def leftover_folders(pids: list[int]) -> list[str]:
    """Sandbox folders still present that belong to one of the killed runs."""
    tmp = Path(tempfile.gettempdir())
    return sorted(str(p) for pid in pids for p in tmp.glob(f"sandmle-sandbox-{pid}-*"))


def _task_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "task.yaml").is_file())


def compare_task_sets(ref: Path, soak: Path, n: int) -> dict[str, Any]:
    """Lost, duplicated, invalid and differing tasks of ``soak`` against ``ref``."""
    import yaml

    from sandmle.core.task import load_task

    invalid, indices, signatures, ids = [], [], [], []
    for folder in _task_dirs(soak):
        try:
            task = load_task(folder)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            invalid.append(f"{folder.name}: {exc}")
            continue
        ids.append(task.id)
        prov = yaml.safe_load((folder / "task.yaml").read_text())["provenance"]
        indices.append(prov.get("index"))
        signatures.append(prov.get("rule_signature"))
    duplicated = sum(c - 1 for c in Counter(indices).values()) + sum(c - 1 for c in Counter(signatures).values())
    ref_ids = {p.name for p in _task_dirs(ref)}
    same = [i for i in ids if i in ref_ids
            and all((ref / i / f).read_bytes() == (soak / i / f).read_bytes() for f in FILES[1:])]
    return {"tasks": len(ids), "expected": n, "lost": max(0, n - len(ids)), "duplicated": duplicated,
            "extra": max(0, len(ids) - n), "invalid": invalid, "same_as_uninterrupted": len(same),
            "ids_differ_from_uninterrupted": sorted(set(ids) ^ ref_ids),
            "staging_left": (soak / ".staging").exists()}


def compare_results(ref: Path, soak: Path) -> dict[str, Any]:
    """Lost, duplicated and differing episodes of ``soak/results.jsonl`` against ``ref``'s."""
    from sandmle.evaluation.store import read_results_checked, row_problem

    ref_rows = {r["key"]: r for r in read_results_checked(ref).rows}
    raw = Counter()
    torn = 0
    for line in (soak / "results.jsonl").read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            torn += 1
            continue
        if row_problem(row) is None:
            raw[row["key"]] += 1
    soak_rows = {r["key"]: r for r in read_results_checked(soak).rows}
    fields = ("status", "grade_score", "grade_valid_submission", "grade_any_medal", "reward_total", "task_id", "seed")
    differ = [k for k in ref_rows.keys() & soak_rows.keys()
              if any(ref_rows[k].get(f) != soak_rows[k].get(f) for f in fields)]
    return {"episodes": len(soak_rows), "expected": len(ref_rows), "lost": len(ref_rows.keys() - soak_rows.keys()),
            "duplicated": sum(c - 1 for c in raw.values()), "extra": len(soak_rows.keys() - ref_rows.keys()),
            "torn_lines": torn, "differ_from_uninterrupted": len(differ),
            "failed": sum(r.get("status") != "ok" for r in soak_rows.values())}


def soak_generate(work: Path, kills: int, n: int, rng: random.Random) -> dict[str, Any]:
    def argv_for(out: Path) -> list[str]:
        return _sandmle("generate", "--n", str(n), "--out", str(out), "--seeds", SEED_TASKS, "--workers", "1",
                        "--seed", "0")

    log = work / "generate.log"
    ref_wall = run_to_end(argv_for(work / "gen-ref"), log)
    report = kill_and_resume(argv_for, lambda out: compare_task_sets(work / "gen-ref", out, n), work / "gen-soak",
                             kills, (0.5, max(1.5, ref_wall)), rng, log)
    return report | {"uninterrupted_wall_s": round(ref_wall, 1)}


def soak_eval(work: Path, kills: int, n: int, seeds: int, scaffolds: str, rng: random.Random) -> dict[str, Any]:
    recipe = work / "soak.yaml"
    recipe.write_text(
        "name: soak\n"
        f"tasks: {{name: soak, generator: {{name: procedural, args: {{workers: 1}}}}, n: {n}, "
        f"seeds: [{SEED_TASKS}]}}\n"
        f"backend: baseline\nscaffolds: [{scaffolds}]\n"
        f"evaluation: {{seeds: {list(range(seeds))}, concurrency: 2}}\n", encoding="utf-8")

    def argv_for(out: Path) -> list[str]:
        return _sandmle("eval", str(recipe), "--out", str(out))

    def compare(out: Path) -> dict[str, Any]:
        report = compare_results(work / "eval-ref", out)
        tasks = compare_task_sets(work / "eval-ref" / "tasks" / "soak", out / "tasks" / "soak", n)
        return report | {"tasks_lost": tasks["lost"], "tasks_duplicated": tasks["duplicated"]}

    log = work / "eval.log"
    ref_wall = run_to_end(argv_for(work / "eval-ref"), log)
    report = kill_and_resume(argv_for, compare, work / "eval-soak", kills, (0.5, max(1.5, ref_wall)), rng, log)
    return report | {"uninterrupted_wall_s": round(ref_wall, 1)}


def passed(report: dict[str, Any]) -> bool:
    return all(not r["lost"] and not r["duplicated"] and not r.get("extra") and not r.get("invalid")
               and not r["leftover_sandbox_folders"] and not r.get("tasks_lost") and not r.get("tasks_duplicated")
               for r in report.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="kills of each command")
    ap.add_argument("--tasks", type=int, default=4, help="tasks generated (both soaks)")
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds of the eval soak")
    ap.add_argument("--scaffolds", default="react,mledojo", help="scaffolds of the eval soak")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    ap.add_argument("--only", choices=["generate", "eval"], default=None)
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a new temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="sandmle-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    report: dict[str, Any] = {}
    if args.only in (None, "generate"):
        report["generate"] = soak_generate(work, args.kills, args.tasks, rng)
    if args.only in (None, "eval"):
        report["eval"] = soak_eval(work, args.kills, args.tasks, args.seeds, args.scaffolds, rng)
    ok = passed(report)
    if args.json:
        print(json.dumps({"passed": ok, "work": str(work), **report}, indent=1))
    else:
        for name, r in report.items():
            what = "tasks" if name == "generate" else "episodes"
            print(f"{name}: {r['kills']} kills over {r['cycles']} complete runs, "
                  f"{r[what]}/{r['expected']} {what}, {r['lost']} lost, {r['duplicated']} duplicated, "
                  f"{len(r['leftover_sandbox_folders'])} sandbox folders left; {r['wall_s']} s "
                  f"(uninterrupted: {r['uninterrupted_wall_s']} s)")
        print("PASSED" if ok else "FAILED", f"(runs in {work})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
