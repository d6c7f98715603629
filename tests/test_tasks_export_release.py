"""``sandmle tasks export --format sandmle-release`` writes the task lists the release's scripts need.

Anchor: Tonyzhou98/SandMLE@0912362 ``examples/deepresearch/``: ``sandmle_config.py:32-35`` puts
``ok_competitions_sanity.json`` / ``ok_competitions_sanity_random_64.json`` at the synthetic data
root; ``prepare_train_data.py:104-124`` refuses to start without the first (a JSON list of ids)
and keeps the folders with ``prepared/public/description.md`` that it lists;
``custom_evaluate.py:336-353`` does the same for ``--dataset synthetic`` / ``synthetic_sampled``.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sandmle.core.cli import build_cli
from sandmle.graders.task_writer import write_task
from sandmle.graders.toy import make_toy_task, toy_frames


def release_selection(root: Path, list_name: str) -> list[str]:
    """The ids the release's scripts would train or evaluate on (their selection rule, restated)."""
    ok = json.loads((root / list_name).read_text(encoding="utf-8"))
    assert isinstance(ok, list)
    return [p.name for p in sorted(root.iterdir()) if p.is_dir() and p.name in set(map(str, ok))
            and (p / "prepared" / "public" / "description.md").exists()]


def test_export_writes_the_sanity_lists_and_merges_later_exports(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    make_toy_task(tasks / "toy-binary", "binary")
    make_toy_task(tasks / "toy-regression", "regression")
    # No thresholds: its evaluator.py prints nulls, which the release's reward turns into 0.
    write_task(tasks / "toy-no-thresholds", task_id="toy-no-thresholds", description="# t\n", metric="roc_auc",
               lower_is_better=False, id_column="id", target_columns=["target"], thresholds=None,
               **toy_frames("binary"))
    out = tmp_path / "release"
    result = CliRunner().invoke(build_cli(), ["tasks", "export", str(tasks), str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["listed"] == ["toy-binary", "toy-regression"] and report["not_listed"] == ["toy-no-thresholds"]
    assert release_selection(out, "ok_competitions_sanity.json") == ["toy-binary", "toy-regression"]
    assert release_selection(out, "ok_competitions_sanity_random_64.json") == ["toy-binary", "toy-regression"]
    assert (out / "toy-no-thresholds" / "prepared" / "public" / "evaluator.py").is_file()  # exported, not listed

    more = tmp_path / "more"
    make_toy_task(more / "toy-proba", "proba")
    result = CliRunner().invoke(build_cli(), ["tasks", "export", str(more), str(out)])
    assert result.exit_code == 0, result.output
    assert "ok_competitions_sanity.json: 3 task(s)" in result.output
    assert release_selection(out, "ok_competitions_sanity.json") == ["toy-binary", "toy-proba", "toy-regression"]
