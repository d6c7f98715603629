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
    "proba_multi": "one probability per class column ({cols}); each row must sum to 1",
    "label": "the predicted `{col}` (one of the class names seen in train.csv)",
    "value": "the predicted numeric `{col}`",
    "multilabel": "one probability per label column ({cols}), each the probability that the label is 1",
    "multi_value": "one predicted number per target column ({cols})",
}
_WHAT = {"tabular": "Each row describes one {entity} at {setting}.",
         "multimodal": "Each row is one {entity} at {setting}: a free-text `text` column and metadata columns.",
         "text": "Each row is one {entity} written at {setting}; the `text` column holds it.",
         "image": "Each example is one {entity} from {setting}, stored as an image file named by its id.",
         "audio": "Each example is one {entity} from {setting}, stored as a sound file named by its id.",
         "time_series": "Rows are daily values of the {entity} of several series at {setting} (`series` "
                        "names the series); `promo` is known in advance for every date."}
_GOAL = {"binary": "classify", "multiclass": "classify", "multilabel": "tag", "regression": "predict",
         "multitarget": "predict", "forecasting": "forecast"}


def _files_section(c: Candidate) -> list[str]:
    label_cols = ", ".join(f"`{x}`" for x in c.train_columns)
    lines = [f"- `train.csv`: {len(c.train)} rows with the target column(s) {label_cols}.",
             f"- `test.csv`: {len(c.test)} rows without them."]
    if c.files:
        ext = next(iter(c.files)).rsplit(".", 1)[-1]
        n_train = sum(k.startswith("train/") for k in c.files)
        lines += [f"- `train/<id>.{ext}`: {n_train} {c.media_note} (one per `train.csv` row).",
                  f"- `test/<id>.{ext}`: {len(c.files) - n_train} files (one per `test.csv` row)."]
    if c.seed.task_type == "forecasting":
        lines.append("- The test rows are the dates that follow the last training date of each series.")
    lines.append("- `sample_submission.csv`: a valid submission in the required format.")
    return lines


def describe(c: Candidate, metric_direction: bool) -> str:
    """``description.md``: story, files, columns, metric, submission format; never the rule."""
    col = c.target_columns[0]
    fmt = _FORMATS[c.seed.submission].format(col=col, cols=", ".join(f"`{x}`" for x in c.target_columns))
    features = [x for x in c.test.columns if x != c.id_column]
    shown = ", ".join(f"`{x}`" for x in features[:20]) + (" ..." if len(features) > 20 else "")
    goal = _GOAL[c.seed.task_type]
    what = ", ".join(f"`{x}`" for x in c.train_columns)
    columns = (f"Feature columns: {shown}. " if features else "") + f"The id column is `{c.id_column}`."
    return "\n".join([
        f"# {c.domain.entity.title()} {goal} task",
        "",
        _WHAT[c.seed.modality].format(entity=c.domain.entity, setting=c.domain.setting),
        f"Your goal is to {goal} {what} for the rows of `test.csv`.",
        "",
        "## Files",
        *_files_section(c),
        "",
        columns,
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
    for rel, data in c.files.items():
        (public / rel).parent.mkdir(parents=True, exist_ok=True)
        (public / rel).write_bytes(data)
    (public / "description.md").write_text(c.description or describe(c, lower), encoding="utf-8")
    c.answers.to_csv(private / "answers.csv", index=False)
    if c.oracle is not None:
        c.oracle.to_csv(private / "oracle.csv", index=False)
    (private / "rule.json").write_text(json.dumps(c.rule, indent=1, sort_keys=True, default=str),
                                       encoding="utf-8")
    write_thresholds(c, root, task_id, provenance, thresholds, leaderboard)
    return task_from_dir(root)


def layout(c: Candidate) -> dict[str, Any]:
    """What an agent meets, for ``task.yaml`` and ``sandmle tasks show``: files, target format."""
    folders: dict[str, int] = {}
    for rel in c.files:
        folders[rel.split("/", 1)[0] + "/"] = folders.get(rel.split("/", 1)[0] + "/", 0) + 1
    return {"family": c.seed.family, "files": ["train.csv", "test.csv", "sample_submission.csv", "description.md"],
            "folders": folders, "media": c.media_note or None, "submission": c.seed.submission,
            "train_target_columns": c.train_columns, "pitfalls": c.pitfalls}


def write_thresholds(c: Candidate, root: Path, task_id: str, provenance: dict[str, Any],
                     thresholds: MedalThresholds | None, leaderboard: list[float] | None,
                     difficulty: dict[str, Any] | None = None) -> None:
    """Write ``task.yaml`` and ``evaluator.py`` (both carry the thresholds)."""
    th = thresholds.model_dump() if thresholds else {}
    private = root / "prepared" / "private"
    (private / "evaluator.py").write_text(
        evaluator_source(c.seed.metric, c.target_columns, c.id_column, th), encoding="utf-8")
    meta = {"id": task_id, "metric": c.seed.metric, "lower_is_better": get_metric(c.seed.metric).lower_is_better,
            "id_column": c.id_column, "target_columns": c.target_columns, "modality": c.seed.modality,
            "task_type": c.seed.task_type, "thresholds": th or None, "leaderboard": leaderboard,
            "answers": "prepared/private/answers.csv", "evaluator": "prepared/private/evaluator.py",
            "layout": layout(c), "difficulty": difficulty or None, "provenance": provenance}
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
