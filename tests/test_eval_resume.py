"""Resuming a study from a results file that was damaged by hand or by a kill: unusable rows
are skipped and reported (their episodes run again), never a traceback."""

from __future__ import annotations

import json

import pytest

from sandmle.evaluation.episode import failed_row
from sandmle.evaluation.report import build_report
from sandmle.evaluation.store import Episode, ResultsError, ResultsStore, read_results_checked


def episode(i: int) -> Episode:
    return Episode(task_set="ts", task_id=f"t{i}", task_root="/x", policy="baseline", policy_index=0,
                   scaffold="react", scaffold_index=0, seed=0)


def test_unusable_rows_are_skipped_reported_and_rerun(tmp_path):
    good = failed_row(episode(0), "boom")
    lots = dict(failed_row(episode(1), "boom"), reward_total="lots")
    lines = [json.dumps(good), json.dumps({"key": "x"}), json.dumps(lots), '{"key": "torn', "[1, 2]",
             json.dumps(dict(failed_row(episode(2), "boom"), grade_any_medal="yes"))]
    (tmp_path / "results.jsonl").write_text("\n".join(lines))  # the last line has no newline either
    read = read_results_checked(tmp_path)
    assert [r["key"] for r in read.rows] == [good["key"]]
    assert [n for n, _ in read.skipped] == [2, 3, 4, 5, 6]
    assert "reward_total" in dict(read.skipped)[3] and "grade_any_medal" in dict(read.skipped)[6]
    assert "skipped 5 unusable line(s)" in read.describe()
    store = ResultsStore(tmp_path)
    assert store.finished == {good["key"]}  # the others count as not finished: they run again
    assert store.append(lots | {"reward_total": 0.5})
    assert {r["key"] for r in read_results_checked(tmp_path).rows} == {good["key"], lots["key"]}
    build_report(tmp_path)  # aggregates and plots from the usable rows only
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary


def test_results_file_that_is_a_folder_is_a_user_error(tmp_path):
    (tmp_path / "results.jsonl").mkdir()
    with pytest.raises(ResultsError, match="is a folder"):
        ResultsStore(tmp_path)
