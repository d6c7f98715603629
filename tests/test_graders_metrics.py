"""Each metric of the registry against scikit-learn / scipy or values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from sandmle.graders.metrics import METRIC_NAMES, compute_score, get_metric

rng = np.random.default_rng(7)
YB = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0])
PB = np.array([0.1, 0.8, 0.6, 0.3, 0.9, 0.45, 0.4, 0.7, 0.2, 0.55])
YR = rng.normal(5, 2, size=30).round(3) + 10
PR = YR + rng.normal(0, 1, size=30)
YC = np.array(["a", "b", "c", "a", "b", "c", "a", "a"])
PC = np.array(["a", "b", "b", "a", "c", "c", "a", "b"])
ML_T = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
ML_P = np.array([[.9, .2, .7], [.1, .8, .4], [.6, .7, .2], [.3, .1, .9], [.8, .4, .1], [.2, .6, .3]])

CASES = {
    "accuracy": (YC, PC, skm.accuracy_score(YC, PC)),
    "balanced_accuracy": (YC, PC, skm.balanced_accuracy_score(YC, PC)),
    "f1": (YB, (PB > 0.5).astype(int), skm.f1_score(YB, (PB > 0.5).astype(int))),
    "f1_macro": (YC, PC, skm.f1_score(YC, PC, average="macro")),
    "f1_micro": (YC, PC, skm.f1_score(YC, PC, average="micro")),
    "f1_weighted": (YC, PC, skm.f1_score(YC, PC, average="weighted")),
    "qwk": (np.array([0, 1, 2, 2, 3, 1]), np.array([0, 2, 2, 1, 3, 1]),
            skm.cohen_kappa_score([0, 1, 2, 2, 3, 1], [0, 2, 2, 1, 3, 1], weights="quadratic")),
    "roc_auc": (YB, PB, skm.roc_auc_score(YB, PB)),
    "roc_auc_macro": (ML_T, ML_P, skm.roc_auc_score(ML_T, ML_P, average="macro")),
    "roc_auc_micro": (ML_T, ML_P, skm.roc_auc_score(ML_T, ML_P, average="micro")),
    "mean_column_auc": (ML_T, ML_P, np.mean([skm.roc_auc_score(ML_T[:, j], ML_P[:, j]) for j in range(3)])),
    "log_loss": (YB, PB, skm.log_loss(YB, PB)),
    "multi_log_loss": (np.array([0, 2, 1, 2]), np.array([[.7, .2, .1], [.1, .1, .8], [.2, .6, .2], [.3, .3, .4]]),
                       -np.mean(np.log([.7, .8, .6, .4]))),
    "rmse": (YR, PR, math.sqrt(skm.mean_squared_error(YR, PR))),
    "mse": (YR, PR, skm.mean_squared_error(YR, PR)),
    "mae": (YR, PR, skm.mean_absolute_error(YR, PR)),
    "rmsle": (YR, PR, math.sqrt(skm.mean_squared_log_error(YR, PR))),
    "mean_column_rmsle": (np.c_[YR, YR * 2], np.c_[PR, PR * 2],
                          np.mean([math.sqrt(skm.mean_squared_log_error(YR * k, PR * k)) for k in (1, 2)])),
    "mape": (YR, PR, 100 * skm.mean_absolute_percentage_error(YR, PR)),
    "smape": (np.array([100.0, 0.0, 50.0]), np.array([110.0, 0.0, 25.0]),
              100 * np.mean([2 * 10 / 210, 0.0, 2 * 25 / 75])),
    "r2": (YR, PR, skm.r2_score(YR, PR)),
    "map_at_3": (np.array(["x", "y", "z", "w"]), np.array(["x y z", "z y x", "a b c", "w"]),
                 (1 + 1 / 2 + 0 + 1) / 4),
    "map_at_5": (np.array(["x", "y"]), np.array(["a b c d x", "y"]), (1 / 5 + 1) / 2),
    "spearman": (YR, PR, stats.spearmanr(YR, PR)[0]),
    "pearson": (YR, PR, stats.pearsonr(YR, PR)[0]),
    "sequence_accuracy": (np.array(["one two", "3", "x"]), np.array(["one two", "three", "x"]), 2 / 3),
    "word_accuracy": (np.array(["a b c", "d"]), np.array(["a x c", "d e"]), 3 / 5),
}


def test_every_metric_has_a_reference_case() -> None:
    assert sorted(CASES) == METRIC_NAMES


@pytest.mark.parametrize("name", sorted(CASES))
def test_metric_matches_reference(name: str) -> None:
    t, p, expected = CASES[name]
    assert get_metric(name).fn(t, p) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_directions() -> None:
    lower = {n for n in METRIC_NAMES if get_metric(n).lower_is_better}
    assert lower == {"log_loss", "multi_log_loss", "rmse", "mse", "mae", "rmsle", "mean_column_rmsle", "mape", "smape"}
    assert get_metric("rmse").better(1.0, 2.0) and get_metric("roc_auc").better(0.9, 0.8)


def test_aliases_and_unknown() -> None:
    assert get_metric("AUC").name == "roc_auc" and get_metric("map@3").name == "map_at_3"
    with pytest.raises(KeyError, match="known: accuracy"):
        get_metric("not-a-metric")


def test_compute_score_aligns_on_ids_and_reorders_columns() -> None:
    answers = pd.DataFrame({"id": [1, 2, 3, 4], "y": [0, 1, 1, 0]})
    shuffled = pd.DataFrame({"y": [0.9, 0.2, 0.1, 0.8], "id": [3, 4, 1, 2]})
    assert compute_score("roc_auc", answers, shuffled, ["y"]) == 1.0


def test_compute_score_is_raw() -> None:
    """No rounding in the metric: the grader rounds the reported score once (MLE-bench's 5 decimals)."""
    answers = pd.DataFrame({"id": [1, 2, 3], "y": [1.0, 2.0, 4.0]})
    sub = pd.DataFrame({"id": [1, 2, 3], "y": [1.1, 2.0, 4.0]})
    assert compute_score("rmse", answers, sub, ["y"]) == math.sqrt(skm.mean_squared_error([1, 2, 4], [1.1, 2, 4]))
