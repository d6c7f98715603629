"""Writing a candidate to disk in the toolkit's task layout, and its public description.

Layout (``core/task.py``), written by :mod:`sandmle.graders.task_writer`: ``task.yaml`` at the
root, ``prepared/public/`` for the agent, ``prepared/private/{answers.csv, evaluator.py}``; this
module adds the generator's own hidden files (``oracle.csv``, ``rule.json``) and ``task.yaml``'s
``layout`` and ``difficulty`` keys. The hidden rule
is written only to ``private/rule.json``; ``task.yaml`` keeps the rule's signature, not the rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandmle.core.task import MedalThresholds, Task, load_task
from sandmle.graders.metrics import get_metric
from sandmle.graders.task_writer import update_thresholds, write_task

from .synth import Candidate

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
        lines.append("- The test rows are every date that follows the last date of `train.csv`, for every "
                     "series. The history has gaps: a series reports on some of its dates only.")
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
    """Write (or rewrite) the task files under ``root`` with the graders' task writer (task.yaml,
    evaluator.py, answers) plus the generator's own hidden files (oracle, rule); return the Task."""
    lower = get_metric(c.seed.metric).lower_is_better  # looked up once, for the text and the meta
    task = write_task(root, task_id=task_id, train=c.train, test=c.test, answers=c.answers,
                      sample_submission=c.sample_submission, description=c.description or describe(c, lower),
                      metric=c.seed.metric, lower_is_better=lower, id_column=c.id_column,
                      target_columns=c.target_columns, modality=c.seed.modality, task_type=c.seed.task_type,
                      thresholds=thresholds, leaderboard=leaderboard, provenance=provenance,
                      extra_public_files=c.files, extra_meta={"layout": layout(c), "difficulty": None})
    private = root / "prepared" / "private"
    if c.oracle is not None:
        c.oracle.to_csv(private / "oracle.csv", index=False)
    (private / "rule.json").write_text(json.dumps(c.rule, indent=1, sort_keys=True, default=str),
                                       encoding="utf-8")
    return task


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
                     difficulty: dict[str, Any] | None = None) -> Task:
    """Set the verified thresholds, leaderboard, provenance and difficulty figures of a written
    task (``task.yaml`` and ``evaluator.py`` both carry the thresholds)."""
    task = load_task(root).model_copy(update={"provenance": provenance})
    return update_thresholds(task, thresholds, leaderboard,
                             extra_meta={"layout": layout(c), "difficulty": difficulty or None})


def task_from_dir(root: Path) -> Task:
    """Load a generated task (the core loader, which validates it)."""
    return load_task(root)
