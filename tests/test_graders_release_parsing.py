"""Parity leftovers of issue 27: how a SandMLE release evaluator's JSON is read, MLE-bench's
rounding of ``np.float64`` scores, and reward totals summed as the release sums them.

Anchors: Tonyzhou98/SandMLE@0912362 ``examples/deepresearch/deepresearch_tools.py`` (``SynScoreTool
.call``: ``parse_number`` lines 868-875 is ``float(value)``, None when missing or refused;
``parse_bool`` lines 877-884: a bool as is, a number ``!= 0``, a string in {"true", "1", "yes"}
after ``strip().lower()``); openai/mle-bench@783b15a ``mlebench/grade_helpers.py:54``
(``rounded_score = round(score, 5)``, which for an ``np.float64`` is numpy's rounding).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sandmle.graders.evaluator import release_bool, release_number
from sandmle.graders.grader import DefaultGrader
from sandmle.graders.medals import medals, report_score
from sandmle.graders.rewards import MilestoneConfig, MilestoneReward
from sandmle.graders.sources import _release_direction, export_release, load_release_task
from sandmle.graders.task_writer import write_task

from test_reliability_cli import sandmle
from test_reliability_generate import fake_generated
from test_rewards_release_table import DENSE, SPARSE, traj


@pytest.mark.parametrize("value,expected", [
    (True, True), (False, False), ("true", True), (" TRUE ", True), ("True", True), ("1", True), ("yes", True),
    ("false", False), ("0", False), ("no", False), ("maybe", False), (1, True), (0, False), (2.5, True),
    (0.0, False), (None, None), ([True], None), ({}, None),
])
def test_direction_is_read_as_the_release_parse_bool(value, expected):
    assert release_bool(value) is expected


@pytest.mark.parametrize("value,expected", [
    (0.5, 0.5), ("0.5", 0.5), (" 1e-3 ", 0.001), (3, 3.0), ("abc", None), (None, None), ([1], None), ("", None),
])
def test_thresholds_are_read_as_the_release_float(value, expected):
    assert release_number(value) == expected


def _release_task(tmp_path, printed: dict):
    """A release-layout task whose evaluator prints ``printed`` (as a hand-written evaluator would)."""
    release = export_release(fake_generated(tmp_path / "src", 0), tmp_path / "rel")
    (release / "prepared" / "public" / "evaluator.py").write_text(f"import json\nprint(json.dumps({printed!r}))\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("id,y\n" + "".join(f"{i},0\n" for i in range(10)))
    return release, sub


@pytest.mark.parametrize("direction", ["true", "True", 1, "1", "yes"])
def test_an_rmse_of_99_9_with_a_string_direction_is_no_medal(tmp_path, direction):
    """The issue's case: lower-is-better said as a string or 1, thresholds as strings; main read
    it as higher-is-better with no thresholds, and an RMSE of 99.9 became gold via the task's
    guessed direction (or no medal data at all)."""
    printed = {"score": 99.9, "is_lower_better": direction, "gold_threshold": "0.1",
               "silver_threshold": "0.2", "bronze_threshold": "0.3", "median_threshold": "0.5"}
    release, sub = _release_task(tmp_path, printed)
    grade = DefaultGrader().grade(load_release_task(release), sub)
    assert grade.valid_submission and grade.is_lower_better is True
    assert (grade.gold_threshold, grade.median_threshold) == (0.1, 0.5)
    assert not grade.any_medal and not grade.above_median
    ran = sandmle("grade", release, sub, "--json")
    assert json.loads(ran.stdout)["grade"]["gold_medal"] is False


def test_a_string_score_and_a_good_lower_score_take_gold(tmp_path):
    printed = {"score": "0.05", "is_lower_better": "true", "gold_threshold": "0.1",
               "silver_threshold": 0.2, "bronze_threshold": 0.3, "median_threshold": 0.5}
    release, sub = _release_task(tmp_path, printed)
    grade = DefaultGrader().grade(load_release_task(release), sub)
    assert grade.valid_submission and grade.gold_medal and grade.raw_score == 0.05


@pytest.mark.parametrize("text,lower", [
    ('"is_lower_better": "true"', True), ("'is_lower_better': 1,", True), ('"is_lower_better": "false"', False),
    ("IS_LOWER_BETTER = True", True), ('"higher_is_better": "true"', False), ('"higher_is_better": 0', True),
])
def test_the_first_guess_from_the_evaluator_source_reads_strings_and_numbers(text, lower):
    assert _release_direction(f"out = {{{text}}}") is lower


# -- MLE-bench's rounding of np.float64 scores ------------------------------------------------------
@pytest.mark.parametrize("raw,python,numpy_way", [
    (0.123455, 0.12345, 0.12346), (0.121875, 0.12187, 0.12188), (0.003125, 0.00313, 0.00312),
    (0.9066449, 0.90664, 0.90664),
])
def test_np_float64_scores_round_as_numpy_does(raw, python, numpy_way):
    # what MLE-bench's round(score, 5) gives for a Python float and for an np.float64
    assert round(float(raw), 5) == python and float(round(np.float64(raw), 5)) == numpy_way
    assert report_score(raw) == python and report_score(raw, numpy_rounding=True) == numpy_way


def test_a_numpy_rounded_competition_takes_the_medal_at_a_half_point(tmp_path):
    """AUC 39/320 = 0.121875: Python rounds it to 0.12187 and numpy to 0.12188; with a gold
    threshold of 0.12188 only the numpy way (plant-pathology, ranzcr) is gold."""
    th_gold = 0.12188
    from sandmle.core.task import MedalThresholds

    th = MedalThresholds(gold=th_gold, silver=0.1, bronze=0.05, median=0.01)
    assert medals(39 / 320, th, False, numpy_rounding=True).gold
    assert not medals(39 / 320, th, False).gold
    # end to end: 16 positives x 20 negatives, two positives ranked above 19 and 20 negatives
    negatives = [(f"n{i}", 0, (i + 1) / 100) for i in range(20)]
    positives = [("p0", 1, 0.195), ("p1", 1, 0.5)] + [(f"p{i}", 1, 0.001) for i in range(2, 16)]
    rows = pd.DataFrame(negatives + positives, columns=["id", "y", "p"])
    frame = rows[["id", "y"]]
    for rounding, gold in (("numpy", True), (None, False)):
        root = tmp_path / str(rounding)
        task = write_task(root, task_id="half", train=frame.assign(x=1), test=frame[["id"]].assign(x=1),
                          answers=frame, sample_submission=frame.assign(y=0.5), description="d",
                          metric="roc_auc", lower_is_better=False, id_column="id", target_columns=["y"],
                          thresholds=th.model_dump(),
                          provenance={"score_rounding": rounding} if rounding else {})
        sub = tmp_path / f"{rounding}.csv"
        rows[["id", "p"]].rename(columns={"p": "y"}).to_csv(sub, index=False)
        grade = DefaultGrader().grade(task, sub)
        assert grade.raw_score == 39 / 320 and grade.gold_medal is gold, (rounding, grade)
        assert grade.score == (0.12188 if gold else 0.12187)


# -- reward totals: the release's floats, unrounded --------------------------------------------------
@pytest.mark.parametrize("table,case", [("dense", c) for c in sorted(DENSE)] + [("sparse", c) for c in sorted(SPARSE)])
def test_reward_totals_are_the_release_floats_to_the_last_bit(table, case):
    """The totals of tests/test_rewards_release_table.py were taken from running the release's own
    ``_score_to_reward``/``_sparse_reward`` (0.9999999999999999 for gold with a full format rate);
    main rounded to 10 decimals (1.0) and that test compares with a tolerance: here, exactly."""
    final, calls, fmt, release_total = (DENSE if table == "dense" else SPARSE)[case]
    preset = "sandmle-code" if table == "dense" else "sparse"
    total = MilestoneReward(MilestoneConfig(preset=preset)).score(traj(fmt, calls), final).total
    assert total == release_total
