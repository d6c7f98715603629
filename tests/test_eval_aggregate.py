"""Results store (append, torn last line, no duplicates) and aggregation maths on hand-built rows.

The end-to-end tests with real episodes are in test_eval_study.py; these rows are constructed by
hand so every expected number below can be checked with pencil and paper.
"""

from __future__ import annotations

import json
import math

import pytest

from sandmle.evaluation.aggregate import compare, mean_sem, summarize
from sandmle.evaluation.store import Episode, ResultsStore, read_results


def _row(scaffold: str, task: str, seed: int, *, medal: bool, valid: bool = True,
         reward: float | None = 1.0, rank: float | None = 0.5, status: str = "ok") -> dict:
    ep = Episode("ts", task, "/x", "baseline", 0, scaffold, 0, seed)
    return {"key": ep.key, **ep.to_dict(), "status": status, "grade_valid_submission": valid,
            "grade_any_medal": medal, "grade_gold_medal": medal, "grade_silver_medal": False,
            "grade_bronze_medal": False, "grade_above_median": medal, "grade_submission_exists": valid,
            "grade_human_rank": rank, "reward_total": reward, "reward_parts": {"ran": 1.0},
            "steps": 3, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.01, "wall_s": 2.0}


def test_store_appends_once_and_survives_a_torn_last_line(tmp_path):
    store = ResultsStore(tmp_path)
    a, b = _row("react", "t1", 0, medal=True), _row("react", "t2", 0, medal=False)
    assert store.append(a) and not store.append(a)
    # a writer killed mid-line leaves a torn fragment without newline
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(b'{"key": "torn", "task_')
    reopened = ResultsStore(tmp_path)
    assert reopened.finished == {a["key"]}
    assert reopened.append(b)
    rows = read_results(tmp_path)
    assert sorted(r["task_id"] for r in rows) == ["t1", "t2"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["task_id"] == "t2"


def test_episode_key_depends_on_identity_not_on_paths():
    a = Episode("ts", "t", "/a", "p", 0, "react", 0, 1)
    assert a.key == Episode("ts", "t", "/elsewhere", "p", 3, "react", 2, 1).key
    assert a.key != Episode("ts", "t", "/a", "p", 0, "react", 0, 2).key


def test_mean_sem_matches_hand_values():
    s = mean_sem([0.5, 1.0])
    assert s.mean == pytest.approx(0.75) and s.sem == pytest.approx(0.25)
    assert mean_sem([0.3]).sem is None and mean_sem([]).mean is None


def test_rates_are_averaged_per_seed_then_over_seeds():
    rows = [
        _row("react", "t1", 0, medal=True), _row("react", "t2", 0, medal=False),   # seed 0: 1/2
        _row("react", "t1", 1, medal=True), _row("react", "t2", 1, medal=True),    # seed 1: 2/2
        _row("aide", "t1", 0, medal=False, valid=False, reward=None, rank=None, status="failed"),
        _row("aide", "t2", 0, medal=False, reward=0.2, rank=0.1),
    ]
    by = {s.scaffold: s for s in summarize(rows)}
    react, aide = by["react"], by["aide"]
    assert react.rates["any_medal"].mean == pytest.approx(0.75)
    assert react.rates["any_medal"].sem == pytest.approx(0.25)  # std([.5, 1], ddof=1)/sqrt(2)
    assert react.totals["total_any_medal"] == 3 and react.totals["total_runs"] == 4
    assert aide.failed == 1 and aide.rates["valid_submission"].mean == pytest.approx(0.5)
    assert aide.rates["valid_submission"].sem is None  # one seed: no standard error
    assert aide.reward.mean == pytest.approx(0.2)  # the failed episode has no reward
    assert aide.human_rank.mean == pytest.approx(0.1)
    assert react.tokens == 15 and react.cost_usd == pytest.approx(0.04)


def test_compare_differences_and_combined_errors():
    before = [_row("react", "t1", s, medal=m) for s, m in ((0, False), (1, True))]
    after = [_row("react", "t1", s, medal=True) for s in (0, 1)]
    diffs = {d.metric: d for d in compare(summarize(before), summarize(after))}
    d = diffs["any_medal_rate"]
    assert d.a == pytest.approx(0.5) and d.b == pytest.approx(1.0) and d.diff == pytest.approx(0.5)
    assert d.se == pytest.approx(math.sqrt(0.5 ** 2 + 0.0))


def test_compare_pairs_groups_by_scaffold_when_the_policy_changed():
    before = [_row("react", "t1", 0, medal=False)]
    after = [dict(_row("react", "t1", 0, medal=True), policy="checkpoint-100")]
    diffs = {d.metric: d for d in compare(summarize(before), summarize(after))}
    assert diffs["any_medal_rate"].diff == pytest.approx(1.0)
    assert diffs["any_medal_rate"].key == ("ts", "react", "checkpoint-100")


def test_local_executor_passes_the_executor_conformance_checks():
    from sandmle.core.plugins import get_registry
    from sandmle.core.testing import run_checks

    executor = get_registry().create("executors", "local", {"concurrency": 2})
    results = run_checks("executors", executor)
    assert len(results) == 4 and all(r.passed for r in results), results


def test_reward_breakdown_tables_earning_milestones_in_reward_order_and_names_silent_ones():
    from sandmle.evaluation.report import _parts_md

    rows = [_row("react", "t1", 0, medal=True), _row("aide", "t1", 0, medal=False)]
    rows[0]["reward_parts"] = {"gold": 0.7, "code_ran": 0.0, "format": 0.1, "valid": 0.2}
    rows[1]["reward_parts"] = {"gold": 0.0, "code_ran": 0.0, "format": 0.05, "valid": 0.2}
    table = _parts_md(summarize(rows))
    header = table.splitlines()[0]
    assert header.index("format") < header.index("valid") < header.index("gold")
    assert "code_ran" not in header and "weight 0, or never reached): code_ran." in table
    aide_line = next(line for line in table.splitlines() if line.startswith("| aide"))
    assert aide_line.endswith("| 0.050 | 0.200 | 0.000 |")  # gold earned by react only: still tabled
