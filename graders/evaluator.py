"""The self-contained ``evaluator.py`` written with every task, and running one.

SandMLE's contract: ``python evaluator.py --submission_path X`` prints one JSON object with
``score`` (the raw metric value; ``null`` for an invalid submission), ``is_lower_better`` and the
``gold/silver/bronze/median_threshold`` values. The file embeds :data:`METRIC_SOURCE` (the same
code the toolkit grades with) and reads the answers file that sits next to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .metrics import METRIC_SOURCE, get_metric

EVALUATOR_TEMPLATE = '''"""SandMLE-compatible evaluator (written by sandmle). Usage:
    python evaluator.py --submission_path submission.csv
Prints JSON: score, is_lower_better and the gold/silver/bronze/median thresholds."""
import argparse, json, os
{metric_source}
CONFIG = {config}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--submission_path", required=True)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    answers = read_csv_for(CONFIG["metric"], os.path.join(here, CONFIG["answers_file"]))
    error = None
    try:
        sub = read_csv_for(CONFIG["metric"], args.submission_path)
        value = compute_score(CONFIG["metric"], answers, sub, CONFIG["target_columns"], CONFIG["id_column"])
    except Exception as exc:
        value, error = None, f"{{type(exc).__name__}}: {{exc}}"
    out = {{"score": value, "is_lower_better": CONFIG["lower_is_better"]}}
    out.update({{k + "_threshold": (CONFIG["thresholds"] or {{}}).get(k) for k in ("gold", "silver", "bronze", "median")}})
    if error:
        out["error"] = error
    print(json.dumps(out))

if __name__ == "__main__":
    main()
'''


def evaluator_source(metric: str, target_columns: list[str], id_column: str,
                     thresholds: dict[str, float] | None, lower_is_better: bool | None = None,
                     answers_file: str = "answers.csv") -> str:
    """The text of a self-contained ``evaluator.py`` for one task."""
    m = get_metric(metric)
    config = {"metric": m.name, "lower_is_better": m.lower_is_better if lower_is_better is None else lower_is_better,
              "target_columns": list(target_columns), "id_column": id_column,
              "thresholds": dict(thresholds or {}), "answers_file": answers_file}
    return EVALUATOR_TEMPLATE.format(metric_source=METRIC_SOURCE, config=repr(config))


def release_number(value: Any) -> float | None:
    """A number of the evaluator's JSON as SandMLE's release reads it: ``float(value)``, None when
    it is missing or ``float()`` refuses it (``SynScoreTool.call``'s ``parse_number``,
    ``examples/deepresearch/deepresearch_tools.py:868-875`` at 0912362). So ``"0.5"`` is 0.5."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def release_bool(value: Any) -> bool | None:
    """``is_lower_better`` as SandMLE's release reads it (``parse_bool``,
    ``examples/deepresearch/deepresearch_tools.py:877-884`` at 0912362): a bool as is, a number
    ``!= 0``, a string ``true``/``1``/``yes`` (any case, trimmed) is True and any other string
    False; anything else (missing, a list) is None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return None


class EvaluatorError(RuntimeError):
    """The evaluator crashed, timed out or printed no JSON."""


def run_evaluator(evaluator: Path, submission: Path, timeout: float = 120.0) -> dict[str, Any]:
    """Run ``python evaluator.py --submission_path X`` in its folder; return its JSON."""
    try:
        proc = subprocess.run([sys.executable, str(Path(evaluator).resolve()), "--submission_path",
                               str(Path(submission).resolve())], capture_output=True, text=True,
                              timeout=timeout, cwd=Path(evaluator).resolve().parent)
    except subprocess.TimeoutExpired as exc:
        raise EvaluatorError(f"evaluator timed out after {timeout:g}s") from exc
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise EvaluatorError(f"evaluator exited {proc.returncode} without JSON: {proc.stderr.strip()[-400:]}")
