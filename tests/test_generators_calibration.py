"""Threshold placement against the oracle, metric noise, and the baseline calibration target.

The unit tests pin the documented policy (``generators/calibration.py``) on hand-computed cases.
The slow test at the end is the issue's target, measured for real on the session's fixed-seed
24-task set from the procedural generator (``tests/conftest.py``): the scripted ``baseline``
policy run in react, aide and mledojo in the real ``local`` sandbox and graded by the ``default``
grader (the same study ``sandmle generate`` runs).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sandmle.generators.calibration import (ThresholdPolicy, _column_auc, bootstrap_se, place_thresholds,
                                            positions_thresholds)

SCORES = {"sample": 0.5, "constant": 0.5, "m1": 0.6, "m2": 0.7, "m3": 0.8}


def test_thresholds_sit_on_the_anchor_scale():
    placed = place_thresholds(ThresholdPolicy(), SCORES, oracle=0.95, se=0.01, lower=False)
    th = placed.thresholds
    # 0 = median of the models (0.7), 1 = best (0.8), 2 = oracle (0.95): bronze 0.8, silver 1.3, gold 1.6.
    assert th.median == 0.7 and th.bronze == pytest.approx(0.7 + 0.8 * 0.1)
    assert th.silver == pytest.approx(0.8 + 0.3 * 0.15) and th.gold == pytest.approx(0.8 + 0.6 * 0.15)
    f = placed.figures
    assert f["oracle_score"] == 0.95 and f["best_reference_model"] == "m3" and not f["widened"]
    assert f["headroom_se"] == pytest.approx(15.0) and f["se_per_gap"] == pytest.approx(0.01 / 0.045, rel=1e-3)
    # The documented default: bronze between the median and the best reference.
    assert ThresholdPolicy().bronze == 0.8


def test_gaps_below_the_noise_are_widened_up_to_the_oracle():
    th = place_thresholds(ThresholdPolicy(), SCORES, oracle=0.95, se=0.03, lower=False).thresholds
    need = 0.03 / 0.5
    assert th.bronze == pytest.approx(0.78) and th.silver >= th.bronze + need and th.gold >= th.silver + need
    assert th.gold < 0.95
    assert min(th.gold - th.silver, th.silver - th.bronze, th.bronze - th.median) >= need
    # Without widening the same noise rejects the task; with too little headroom it is rejected too.
    narrow = place_thresholds(ThresholdPolicy(widen=False), SCORES, oracle=0.95, se=0.03, lower=False)
    assert narrow.thresholds is None and narrow.reason == "gap_below_noise"
    flat = place_thresholds(ThresholdPolicy(), SCORES, oracle=0.83, se=0.01, lower=False)
    assert flat.reason == "no_headroom" and flat.figures["headroom_se"] == pytest.approx(3.0)


def test_lower_is_better_mirrors_and_models_worse_than_the_sample_stay_off_the_anchors():
    mirrored = {k: -v for k, v in SCORES.items()}
    th = place_thresholds(ThresholdPolicy(), mirrored, oracle=-0.95, se=0.01, lower=True).thresholds
    up = place_thresholds(ThresholdPolicy(), SCORES, oracle=0.95, se=0.01, lower=False).thresholds
    assert [th.gold, th.silver, th.bronze, th.median] == pytest.approx([-up.gold, -up.silver, -up.bronze, -up.median])
    # Log loss: a badly calibrated model (1.5) is worse than the uniform sample (0.69).
    logloss = {"sample": 0.69, "constant": 0.68, "a": 0.60, "b": 0.64, "c": 1.5}
    placed = place_thresholds(ThresholdPolicy(), logloss, oracle=0.3, se=0.005, lower=True)
    assert placed.thresholds.median == pytest.approx(0.62) and placed.thresholds.median < 0.69
    only_one = place_thresholds(ThresholdPolicy(), {**logloss, "b": 0.9}, oracle=0.3, se=0.01, lower=True)
    assert only_one.reason == "no_signal"


def test_positions_policy_and_no_oracle_fall_back_to_mlebench_positions():
    scores = {"sample": 0.5, **{f"m{i}": 0.60 + 0.02 * i for i in range(12)}}
    expected, _ = positions_thresholds(scores, lower=False)
    for placed in (place_thresholds(ThresholdPolicy(kind="positions"), scores, 0.99, 0.001, False),
                   place_thresholds(ThresholdPolicy(), scores, None, 0.001, False)):
        assert placed.thresholds == expected


def test_bootstrap_se_matches_the_binomial_formula():
    rng = np.random.default_rng(0)
    n = 2000
    truth = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, truth, 1 - truth)  # 70% accurate
    answers = pd.DataFrame({"id": range(n), "y": truth.astype(str)})
    sub = pd.DataFrame({"id": range(n)[::-1], "y": pred[::-1].astype(str)})  # rows in another order
    se = bootstrap_se("accuracy", answers, sub, ["y"], "id", resamples=200)
    assert se == pytest.approx(np.sqrt(0.7 * 0.3 / n), rel=0.2)


def test_fast_auc_equals_sklearn_with_ties_and_several_columns():
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 2, (300, 3)), np.round(rng.random((300, 3)), 1)
    assert _column_auc(t, p) == pytest.approx(np.mean([roc_auc_score(t[:, j], p[:, j]) for j in range(3)]))
    with pytest.raises(ValueError):
        _column_auc(np.ones((5, 1)), np.zeros((5, 1)))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first user builds the session's set (~3 min on idle cores)
def test_fixed_seed_set_puts_the_baseline_in_the_target_band(generated_task_set):
    """The issue's target on the session's generated set (`sandmle generate --n 24 --seed 31`,
    which calibrates by default; tests/conftest.py): acceptance >= 90%, the baseline's valid rate
    100% and its any-medal rate 20-50% in every scaffold. Verified-tasks-per-minute is a speed
    figure: benchmarks/generation_throughput.py."""
    out, metas, lines = generated_task_set
    outcomes = [x for x in lines if "index" in x]
    accepted = [o for o in outcomes if o["accepted"]]
    n = len(metas)
    assert len(accepted) == n and n / len(outcomes) >= 0.9, \
        [(o["task_id"], o["reason"]) for o in outcomes if not o["accepted"]]
    result = json.loads((out / "calibration.json").read_text())
    assert set(result) == {"react", "aide", "mledojo"}
    for scaffold, r in result.items():
        assert r["episodes"] == n and r["valid"] == 1.0, (scaffold, r)
        assert 0.20 <= r["any_medal"] <= 0.50, (scaffold, r)
    assert [x for x in lines if "calibration" in x][0]["calibration"] == result
