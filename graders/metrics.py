"""The metric registry: every metric the toolkit grades with, each with its direction.

The metric code lives once, as source text (:data:`METRIC_SOURCE`), so that the very same code
scores in-process (:func:`compute_score`) and inside each task's self-contained ``evaluator.py``
(which may import only pandas/numpy/sklearn/scipy). A metric takes ``(t, p)``: the answers' and
the submission's target values aligned on the id column (1-D for one target column, 2-D for
several) and returns a float. Submission problems raise ``ValueError`` with a precise reason.

The generators verify candidate tasks and write their ``evaluator.py`` with this same code, so a
generated task is judged during verification exactly as it is graded later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

METRIC_SOURCE = r'''
import numpy as np
import pandas as pd
from scipy import stats as _st
from sklearn import metrics as _m

def _align(answers, submission, cols, id_column):
    """Check the submission's shape and ids; return (t, p) aligned on the id column."""
    want = [id_column] + list(cols)
    missing = [c for c in want if c not in submission.columns]
    if missing:
        raise ValueError(f"missing columns: {missing} (expected {want})")
    extra = [c for c in submission.columns if c not in want]
    if extra:
        raise ValueError(f"unexpected columns: {extra} (expected {want})")
    if len(submission) != len(answers):
        raise ValueError(f"wrong row count: {len(submission)} rows, expected {len(answers)}")
    sub_ids = submission[id_column].astype(str)
    if sub_ids.duplicated().any():
        raise ValueError(f"duplicate ids, e.g. {sub_ids[sub_ids.duplicated()].iloc[0]!r}")
    ans_ids = answers[id_column].astype(str)
    unknown = sorted(set(sub_ids) - set(ans_ids))
    if unknown:
        raise ValueError(f"ids do not match the test ids, e.g. {unknown[0]!r}")
    sub = submission.assign(**{id_column: sub_ids}).set_index(id_column).loc[ans_ids.tolist(), list(cols)]
    if sub.isna().any().any():
        bad = sub.columns[sub.isna().any()].tolist()
        raise ValueError(f"missing values (NaN) in column(s) {bad}")
    t = answers[list(cols)].to_numpy()
    p = sub.to_numpy()
    return (t[:, 0], p[:, 0]) if len(cols) == 1 else (t, p)

def _num(p):
    try:
        p = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("non-numeric predictions where numbers are needed")
    if not np.all(np.isfinite(p)):
        raise ValueError("predictions contain NaN or inf")
    return p

def _proba(p):
    p = _num(p)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]")
    return p

def _clip(p):
    p = np.clip(_proba(p), 1e-15, 1 - 1e-15)
    if p.ndim == 2:
        p = p / p.sum(axis=1, keepdims=True)
    return p

def _lab(x):
    return np.asarray(x).astype(str)

def _cols(t):
    return t if t.ndim == 2 else t[:, None]

def _mean_col_auc(t, p):
    t, p = _cols(t).astype(int), _cols(_proba(p))
    return float(np.mean([_m.roc_auc_score(t[:, j], p[:, j]) for j in range(t.shape[1])]))

def _mean_col_rmsle(t, p):
    t, p = _cols(t.astype(float)), _cols(np.maximum(_num(p), 0))
    return float(np.mean([np.sqrt(_m.mean_squared_log_error(t[:, j], p[:, j])) for j in range(t.shape[1])]))

def _smape(t, p):
    t, p = t.astype(float), _num(p)
    denom = np.abs(t) + np.abs(p)
    ratio = np.where(denom == 0, 0.0, 2 * np.abs(p - t) / np.where(denom == 0, 1, denom))
    return float(100 * np.mean(ratio))

def _map_at_k(k):
    def fn(t, p):
        # answers: one true label per row; predictions: up to k space-separated labels, best first
        scores = []
        for truth, pred in zip(_lab(t), _lab(p)):
            guesses = pred.split()[:k]
            scores.append(next((1.0 / (i + 1) for i, g in enumerate(guesses) if g == truth), 0.0))
        return float(np.mean(scores))
    return fn

def _corr(kind):
    def fn(t, p):
        t, p = t.astype(float), _num(p)
        r = _st.spearmanr(t, p)[0] if kind == "spearman" else _st.pearsonr(t, p)[0]
        return float(0.0 if np.isnan(r) else r)
    return fn

def _multi_log_loss(t, p):
    t = t.astype(int) if t.ndim == 1 else t.argmax(1)
    return _m.log_loss(t, _clip(p), labels=None if p.ndim == 1 else list(range(p.shape[1])))

# name: (lower_is_better, fn(t, p))
METRICS = {
    "accuracy": (False, lambda t, p: _m.accuracy_score(_lab(t), _lab(p))),
    "balanced_accuracy": (False, lambda t, p: _m.balanced_accuracy_score(_lab(t), _lab(p))),
    "f1": (False, lambda t, p: _m.f1_score(_lab(t), _lab(p), pos_label="1")),
    "f1_macro": (False, lambda t, p: _m.f1_score(_lab(t), _lab(p), average="macro")),
    "f1_micro": (False, lambda t, p: _m.f1_score(_lab(t), _lab(p), average="micro")),
    "f1_weighted": (False, lambda t, p: _m.f1_score(_lab(t), _lab(p), average="weighted")),
    "qwk": (False, lambda t, p: _m.cohen_kappa_score(_lab(t), _lab(p), weights="quadratic")),
    "roc_auc": (False, lambda t, p: _m.roc_auc_score(t.astype(int), _proba(p))),
    "roc_auc_macro": (False, lambda t, p: _m.roc_auc_score(t.astype(int), _proba(p), average="macro")),
    "roc_auc_micro": (False, lambda t, p: _m.roc_auc_score(t.astype(int), _proba(p), average="micro")),
    "mean_column_auc": (False, _mean_col_auc),
    "log_loss": (True, lambda t, p: _m.log_loss(t.astype(int) if t.ndim == 1 else t.argmax(1), _clip(p),
                                                labels=None if t.ndim == 1 else list(range(t.shape[1])))),
    "multi_log_loss": (True, _multi_log_loss),
    "rmse": (True, lambda t, p: float(np.sqrt(_m.mean_squared_error(t.astype(float), _num(p))))),
    "mse": (True, lambda t, p: _m.mean_squared_error(t.astype(float), _num(p))),
    "mae": (True, lambda t, p: _m.mean_absolute_error(t.astype(float), _num(p))),
    "rmsle": (True, lambda t, p: float(np.sqrt(_m.mean_squared_log_error(t.astype(float), np.maximum(_num(p), 0))))),
    "mean_column_rmsle": (True, _mean_col_rmsle),
    "mape": (True, lambda t, p: 100 * _m.mean_absolute_percentage_error(t.astype(float), _num(p))),
    "smape": (True, _smape),
    "r2": (False, lambda t, p: _m.r2_score(t.astype(float), _num(p))),
    "map_at_3": (False, _map_at_k(3)),
    "map_at_5": (False, _map_at_k(5)),
    "spearman": (False, _corr("spearman")),
    "pearson": (False, _corr("pearson")),
    "sequence_accuracy": (False, lambda t, p: float(np.mean(_lab(t) == _lab(p)))),
    "word_accuracy": (False, lambda t, p: float(np.mean([w1 == w2 for a, b in zip(_lab(t), _lab(p))
                                                            for w1, w2 in _pad(a.split(), b.split())]))),
}

def _pad(a, b):
    n = max(len(a), len(b))
    return zip(a + [None] * (n - len(a)), b + [None] * (n - len(b)))

def compute_score(metric, answers, submission, cols, id_column="id"):
    """Score a submission DataFrame; raises ValueError naming what is wrong with it."""
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}")
    t, p = _align(answers, submission, cols, id_column)
    try:
        value = float(METRICS[metric][1](t, p))
    except ValueError:
        raise
    except Exception as exc:  # e.g. labels that cannot be cast: the submission's fault
        raise ValueError(f"cannot score the submission: {type(exc).__name__}: {exc}")
    if not np.isfinite(value):
        raise ValueError(f"the metric is undefined for this submission ({value})")
    return round(value, 6)
'''

_NS: dict[str, Any] = {}
exec(compile(METRIC_SOURCE, "sandmle.graders.metrics.METRIC_SOURCE", "exec"), _NS)


@dataclass(frozen=True)
class Metric:
    """One metric: ``fn(y_true_df, y_pred_df)`` takes frames already aligned row by row."""

    name: str
    lower_is_better: bool
    raw: Callable[[Any, Any], float]

    def fn(self, y_true: pd.DataFrame | pd.Series | Any, y_pred: pd.DataFrame | pd.Series | Any) -> float:
        """Score aligned truth and predictions (frames, series or arrays; one column or several)."""
        return float(self.raw(_squeeze(y_true), _squeeze(y_pred)))

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a < b if self.lower_is_better else a > b


def _squeeze(x: Any) -> Any:
    import numpy as np

    arr = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x)
    return arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr


METRIC_NAMES: list[str] = sorted(_NS["METRICS"])
# Common spellings in MLE-bench / Kaggle configs mapped to registry names.
ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "quadratic_weighted_kappa": "qwk",
           "mean_columnwise_auc": "mean_column_auc", "map@3": "map_at_3", "map@5": "map_at_5",
           "mean_columnwise_rmsle": "mean_column_rmsle", "macro_f1": "f1_macro"}


def get_metric(name: str) -> Metric:
    """The registered metric ``name`` (raises ``KeyError`` listing the known names)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _NS["METRICS"]:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    lower, fn = _NS["METRICS"][key]
    return Metric(key, lower, fn)


def compute_score(metric: str, answers: pd.DataFrame, submission: pd.DataFrame, cols: list[str],
                  id_column: str = "id") -> float:
    """Validate ``submission`` against ``answers`` and score it (``ValueError`` names the fault)."""
    return _NS["compute_score"](get_metric(metric).name, answers, submission, cols, id_column)
