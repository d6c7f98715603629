"""Writing a candidate to disk in the toolkit's task layout, and its public description.

Layout (``core/task.py``): ``task.yaml`` at the root, ``prepared/public/`` for the agent,
``prepared/private/{answers.csv, evaluator.py, rule.json}`` for the hidden parts. The hidden rule
is written only to ``private/rule.json``; ``task.yaml`` keeps the rule's signature, not the rule.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from sandmle.core.task import MedalThresholds, Task
from sandmle.graders.evaluator import evaluator_source
from sandmle.graders.metrics import get_metric

from .synth import Candidate

log = logging.getLogger(__name__)

_FORMATS = {
    "proba_binary": "the probability that `{col}` is 1",
    "proba_multi": "one probability per class column ({cols}); each row should sum to 1",
    "label": "the predicted `{col}` (one of the class names seen in train.csv)",
    "value": "the predicted numeric `{col}`",
}
_WHAT = {"tabular": "Each row describes one {entity} at {setting}.",
         "text": "Each row is one {entity} written at {setting}; the `text` column holds it.",
         "image": "Each row is one 8x8 grey {entity} from {setting}, flattened row by row into "
                  "`px0`..`px63` (intensities in [0, 1]).",
         "time_series": "Rows are consecutive time steps of the {entity} series of {setting}; "
                        "`lag_k` columns hold the value k steps earlier."}


def describe(c: Candidate, metric_direction: bool) -> str:
    """``description.md``: story, files, columns, metric, submission format; never the rule."""
    col = c.target_columns[0]
    fmt = _FORMATS[c.seed.submission].format(col=col, cols=", ".join(f"`{x}`" for x in c.target_columns))
    features = [x for x in c.test.columns if x != c.id_column]
    shown = ", ".join(f"`{x}`" for x in features[:20]) + (" ..." if len(features) > 20 else "")
    goal = {"binary": "classify", "multiclass": "classify", "regression": "predict",
            "forecasting": "forecast"}[c.seed.task_type]
    label_col = "label" if c.class_names else col
    return "\n".join([
        f"# {c.domain.entity.title()} {goal} task",
        "",
        _WHAT[c.seed.modality].format(entity=c.domain.entity, setting=c.domain.setting),
        f"Your goal is to {goal} `{label_col}` for the rows of `test.csv`.",
        "",
        "## Files",
        f"- `train.csv`: {len(c.train)} rows with the target column `{label_col}`.",
        f"- `test.csv`: {len(c.test)} rows without it.",
        "- `sample_submission.csv`: a valid submission in the required format.",
        "",
        f"Feature columns: {shown}. The id column is `{c.id_column}`.",
        "",
        "## Evaluation",
        f"Submissions are scored with **{c.seed.metric}** "
        f"({'lower' if metric_direction else 'higher'} is better).",
        "",
        "## Submission",
        f"Write `submission.csv` with columns `{c.id_column}` and {fmt}, one row per test id.",
        "",
    ])


def write_candidate(c: Candidate, root: Path, task_id: str, provenance: dict[str, Any],
                    thresholds: MedalThresholds | None = None,
                    leaderboard: list[float] | None = None) -> Task:
    """Write (or rewrite) the task files under ``root`` and return the Task."""
    lower = get_metric(c.seed.metric).lower_is_better
    public, private = root / "prepared" / "public", root / "prepared" / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    c.train.to_csv(public / "train.csv", index=False)
    c.test.to_csv(public / "test.csv", index=False)
    c.sample_submission.to_csv(public / "sample_submission.csv", index=False)
    (public / "description.md").write_text(c.description or describe(c, lower), encoding="utf-8")
    c.answers.to_csv(private / "answers.csv", index=False)
    (private / "rule.json").write_text(json.dumps(c.rule, indent=1, sort_keys=True, default=str),
                                       encoding="utf-8")
    write_thresholds(c, root, task_id, provenance, thresholds, leaderboard)
    return task_from_dir(root)


def write_thresholds(c: Candidate, root: Path, task_id: str, provenance: dict[str, Any],
                     thresholds: MedalThresholds | None, leaderboard: list[float] | None) -> None:
    """Write ``task.yaml`` and ``evaluator.py`` (both carry the thresholds)."""
    th = thresholds.model_dump() if thresholds else {}
    private = root / "prepared" / "private"
    (private / "evaluator.py").write_text(
        evaluator_source(c.seed.metric, c.target_columns, c.id_column, th), encoding="utf-8")
    meta = {"id": task_id, "metric": c.seed.metric, "lower_is_better": get_metric(c.seed.metric).lower_is_better,
            "id_column": c.id_column, "target_columns": c.target_columns, "modality": c.seed.modality,
            "task_type": c.seed.task_type, "thresholds": th or None, "leaderboard": leaderboard,
            "answers": "prepared/private/answers.csv", "evaluator": "prepared/private/evaluator.py",
            "provenance": provenance}
    (root / "task.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")


def task_from_dir(root: Path) -> Task:
    """Load a generated task (the core loader when present, else this writer's own reading)."""
    try:
        from sandmle.core.task import load_task  # helper A's validating loader
    except ImportError:
        load_task = None
    if load_task is not None:
        try:
            return load_task(root)
        except Exception as exc:  # noqa: BLE001 - keep generating; the mismatch is logged
            log.warning("core load_task rejected generated task %s (%s); using the writer's reader",
                        root, exc)
    meta = yaml.safe_load((root / "task.yaml").read_text(encoding="utf-8"))
    return Task(id=meta["id"], root=root, public_dir=root / "prepared" / "public",
                private_dir=root / "prepared" / "private", metric=meta["metric"],
                lower_is_better=meta["lower_is_better"], id_column=meta["id_column"],
                target_columns=meta["target_columns"], modality=meta["modality"], task_type=meta["task_type"],
                thresholds=MedalThresholds(**meta["thresholds"]) if meta.get("thresholds") else None,
                leaderboard=meta.get("leaderboard"), answers_path=root / meta["answers"],
                evaluator_path=root / meta["evaluator"], provenance=meta.get("provenance") or {})
