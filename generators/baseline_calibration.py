"""Calibration of a generated task set against the scripted ``baseline`` policy.

Thresholds are placed so that a standard scikit-learn model lands around bronze or the median
(:mod:`~sandmle.generators.calibration`). This checks it where it matters: the ``baseline`` policy
runs in each scaffold on every task of the set (a real evaluation study with the ``local``
sandbox and the ``default`` grader, written under ``OUT/calibration/``), and its any-medal and
valid-submission rates per scaffold are reported and saved to ``OUT/calibration.json``. The
target band for the any-medal rate is 20-50%: above it the tasks leave a trained policy little
room to show a gain, below it the baseline is no reference point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

TARGET_BAND = (0.20, 0.50)
SCAFFOLDS = ("react", "aide", "mledojo")
RESULT = "calibration.json"


def calibration_recipe(task_dir: Path, scaffolds: tuple[str, ...] = SCAFFOLDS, seed: int = 0,
                       concurrency: int | str = "auto") -> dict[str, Any]:
    """The study that calibrates ``task_dir``: baseline x scaffolds x the tasks, one seed."""
    return {"name": "baseline-calibration", "output_dir": str(Path(task_dir) / "calibration"), "seed": seed,
            "tasks": {"name": Path(task_dir).name or "tasks",
                      "source": {"name": "directory", "args": {"path": str(Path(task_dir).resolve())}}},
            "sandbox": "local", "backend": "baseline", "scaffolds": list(scaffolds), "grader": "default",
            "evaluation": {"seeds": [seed], "concurrency": concurrency, "executor": "local"}}


def calibrate(task_dir: Path, console: Console, scaffolds: tuple[str, ...] = SCAFFOLDS, seed: int = 0,
              concurrency: int | str = "auto") -> dict[str, Any]:
    """Run the calibration study (resumable) and return ``{scaffold: {any_medal, valid, ...}}``."""
    from sandmle.core.plugins import get_registry
    from sandmle.core.recipe import parse_recipe, resolve
    from sandmle.evaluation.study import run_study

    recipe = resolve(parse_recipe(calibration_recipe(task_dir, scaffolds, seed, concurrency)), get_registry())
    run_study(recipe, get_registry(), console)
    rows = [json.loads(line) for line in (recipe.out / "results.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    result = summarize(rows)
    (Path(task_dir) / RESULT).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-scaffold rates from evaluation rows (``grade_*`` fields)."""
    out: dict[str, Any] = {}
    for scaffold in sorted({r["scaffold"] for r in rows}):
        mine = [r for r in rows if r["scaffold"] == scaffold]
        rate = lambda key: sum(bool(r.get(key)) for r in mine) / len(mine)  # noqa: E731
        out[scaffold] = {"episodes": len(mine), "any_medal": rate("grade_any_medal"),
                         "gold": rate("grade_gold_medal"), "above_median": rate("grade_above_median"),
                         "valid": rate("grade_valid_submission"),
                         "in_target_band": TARGET_BAND[0] <= rate("grade_any_medal") <= TARGET_BAND[1]}
    return out


def calibration_table(result: dict[str, Any]) -> Table:
    """The per-scaffold calibration figures."""
    table = Table(title=f"baseline calibration (target any-medal {TARGET_BAND[0]:.0%}-{TARGET_BAND[1]:.0%})")
    for col in ("scaffold", "episodes", "any medal", "gold", "above median", "valid", "in band"):
        table.add_column(col, justify="right")
    for scaffold, r in result.items():
        table.add_row(scaffold, str(r["episodes"]), f"{r['any_medal']:.0%}", f"{r['gold']:.0%}",
                      f"{r['above_median']:.0%}", f"{r['valid']:.0%}", "yes" if r["in_target_band"] else "NO")
    return table
