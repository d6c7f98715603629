"""The metric registry: every metric the toolkit grades with, each with its direction.

The metric code lives once, as source text (:data:`METRIC_SOURCE`), so that the very same code
scores in-process (:func:`compute_score`) and inside each task's self-contained ``evaluator.py``
(which may import only pandas/numpy/sklearn/scipy). A metric takes ``(t, p)``: the answers' and
the submission's target values aligned on the id column (1-D for one target column, 2-D for
several) and returns a float. Submission problems raise ``ValueError`` with a precise reason
that says what to change. Scores are raw (never rounded here): the grader rounds the reported
score once, to MLE-bench's 5 decimals (:mod:`sandmle.graders.medals`).

Extending: a new metric is one more ``name: (lower_is_better, fn)`` entry of ``METRICS`` inside
:data:`METRIC_SOURCE` (``fn`` may use the helpers there: ``_num``, ``_proba``, ``_labels``,
``_rows_of_probabilities``); a metric that compares text verbatim also joins ``TEXT_METRICS``.

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

# sklearn's log_loss clips probabilities at the machine epsilon of float64 (sklearn >= 1.5, the
# floor MLE-bench requires); clipping here keeps the value independent of the installed version.
EPS = float(np.finfo(np.float64).eps)
# MLE-bench rejects probability rows that do not sum to 1 within this absolute tolerance
# (mlebench/competitions/dog-breed-identification/grade.py:24-28, leaf-classification/grade.py:23-25).
ROW_SUM_ATOL = 1e-6
# Metrics that compare text exactly: their CSVs are read without NA conversion, so answer tokens
# such as "NA", "null" or "None" (text normalization) stay the strings they are.
TEXT_METRICS = {"sequence_accuracy", "word_accuracy", "map_at_3", "map_at_5"}


def read_csv_for(metric, source):
    # Read an answers or submission CSV the way ``metric`` needs it (floats parsed exactly, as
    # MLE-bench's read_csv does with float_precision="round_trip"; text kept verbatim).
    if metric in TEXT_METRICS:
        return pd.read_csv(source, dtype=str, keep_default_na=False)
    return pd.read_csv(source, float_precision="round_trip")


def _int_like(values):
    try:
        f = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(f)) and np.all(f == np.round(f)))


def _id_mismatch_reason(sub_ids, ans_ids, id_column):
    unknown = sorted(set(sub_ids) - set(ans_ids))
    missing = sorted(set(ans_ids) - set(sub_ids))
    if not unknown and not missing:  # same ids, different counts (ids that repeat in the answers)
        counts, want = sub_ids.value_counts(), ans_ids.value_counts()
        bad = next(k for k in want.index.union(counts.index) if counts.get(k, 0) != want.get(k, 0))
        return (f"id {bad!r} appears {counts.get(bad, 0)} time(s), the test set has it {want.get(bad, 0)} "
                f"time(s): one row per test row, ids as in the sample submission")
    example = unknown[0] if unknown else missing[0]
    if unknown and all(u.endswith(".0") for u in unknown[:50]) and _int_like(list(ans_ids)[:50]):
        return (f"ids in column {id_column!r} are written as floats (e.g. {example!r}) but the test ids are "
                f"integers: write them as integers, e.g. sub[{id_column!r}] = sub[{id_column!r}].astype(int)")
    return f"ids do not match the test ids, e.g. {example!r} (take the ids from the sample submission / test file)"


def _align(answers, submission, cols, id_column, allowed_extra=()):
    # Check the submission's shape and ids; return (t, p) aligned on the id column.
    want = [id_column] + list(cols)
    missing = [c for c in want if c not in submission.columns]
    if missing:
        raise ValueError(f"missing columns: {missing} (expected {want + list(allowed_extra)})")
    extra = [c for c in submission.columns if c not in want and c not in allowed_extra]
    index_like = [c for c in extra if str(c).startswith("Unnamed:")]
    if index_like:
        raise ValueError(f"unexpected columns: {extra}; {index_like[0]!r} is a pandas index written to the "
                         f"file: save with df.to_csv(path, index=False)")
    if extra:
        raise ValueError(f"unexpected columns: {extra} (expected {want + list(allowed_extra)}): drop them")
    if len(submission) != len(answers):
        raise ValueError(f"wrong row count: {len(submission)} rows, expected {len(answers)} (one per test id)")
    sub_ids = submission[id_column].astype(str).reset_index(drop=True)
    ans_ids = answers[id_column].astype(str).reset_index(drop=True)
    if not ans_ids.duplicated().any():
        if sub_ids.duplicated().any():
            raise ValueError(f"duplicate ids, e.g. {sub_ids[sub_ids.duplicated()].iloc[0]!r}: one row per test id")
        if set(sub_ids) != set(ans_ids):
            raise ValueError(_id_mismatch_reason(sub_ids, ans_ids, id_column))
        sub = submission.assign(**{id_column: sub_ids.values}).set_index(id_column).loc[ans_ids.tolist(), list(cols)]
        t = answers[list(cols)].to_numpy()
    else:
        # Answers whose ids repeat (detecting-insults keys rows by the comment text): MLE-bench sorts
        # both frames by id and pairs rows by position (competitions/utils.py:255-259); same here.
        if sorted(sub_ids) != sorted(ans_ids):
            raise ValueError(_id_mismatch_reason(sub_ids, ans_ids, id_column))
        sub = submission.iloc[np.argsort(sub_ids.to_numpy(), kind="stable")][list(cols)]
        t = answers.iloc[np.argsort(ans_ids.to_numpy(), kind="stable")][list(cols)].to_numpy()
    if sub.isna().any().any():
        bad = sub.columns[sub.isna().any()].tolist()
        raise ValueError(f"missing values (NaN) in column(s) {bad}: every row needs a prediction")
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


def _rows_of_probabilities(p):
    # A probability per class: each row must sum to 1 (MLE-bench rejects it otherwise; it does not
    # renormalise).
    p = _proba(p)
    sums = p.sum(axis=1)
    bad = np.flatnonzero(~np.isclose(sums, 1.0, atol=ROW_SUM_ATOL))
    if bad.size:
        raise ValueError(f"class probabilities must sum to 1 in every row (within {ROW_SUM_ATOL:g}); {bad.size} "
                         f"row(s) do not, e.g. row {bad[0]} sums to {sums[bad[0]]:.6g}: divide each row by its sum")
    return p


def _log_loss(t, p):
    # Mean cross-entropy with probabilities clipped to [EPS, 1 - EPS] and not renormalised, as
    # sklearn.metrics.log_loss computes it. 1-D: binary (answers 0/1, p = P(class 1)); 2-D answers:
    # one-hot (or soft) rows against per-class probabilities; 1-D answers with 2-D p: class indices.
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        q = _proba(p).reshape(-1)
        y = np.asarray(t, dtype=float).reshape(-1)
        truth, probs = np.c_[1 - y, y], np.c_[1 - q, q]
    else:
        probs = _rows_of_probabilities(p)
        truth = np.asarray(t, dtype=float) if t.ndim == 2 else np.eye(p.shape[1])[np.asarray(t, dtype=int)]
    return float(np.mean(-np.sum(truth * np.log(np.clip(probs, EPS, 1 - EPS)), axis=1)))


def _as_numbers(x):
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return None


def _labels(t, p):
    # Class labels compare as numbers when both sides are numbers (an answer 2 equals a prediction
    # written 2.0, as sklearn compares pandas' int and float columns) and as text when both are text.
    tn, pn = _as_numbers(t), _as_numbers(p)
    if tn is not None and pn is not None:
        return tn, pn
    if tn is not None:
        bad = next(v for v in np.asarray(p).ravel() if _as_numbers([v]) is None)
        raise ValueError(f"labels must be numbers like the answers (e.g. {tn.ravel()[0]:g}), got {bad!r}")
    if pn is not None:
        raise ValueError(f"labels must be text like the answers (e.g. {np.asarray(t).ravel()[0]!r}), "
                         f"got numbers (e.g. {pn.ravel()[0]:g})")
    return np.asarray(t).astype(str), np.asarray(p).astype(str)


def _lab(x):
    return np.asarray(x).astype(str)


def _cols(t):
    return t if t.ndim == 2 else t[:, None]


def _f1(average=None):
    def fn(t, p):
        t, p = _labels(t, p)
        if average is None:
            return _m.f1_score(t, p, pos_label=1.0 if t.dtype.kind == "f" else "1")
        return _m.f1_score(t, p, average=average)
    return fn


def _mean_col_auc(t, p):
    t, p = _cols(np.asarray(t, dtype=float)), _cols(_proba(p))
    # Kaggle marks rows that are not scored with -1 in every label; MLE-bench drops rows whose
    # answers sum below 0 (jigsaw-toxic-comment-classification-challenge/grade.py:33-37).
    keep = t.sum(axis=1) >= 0
    t, p = t[keep].astype(int), p[keep]
    return float(np.mean([_m.roc_auc_score(t[:, j], p[:, j]) for j in range(t.shape[1])]))


def _nonnegative(p):
    p = _num(p)
    if (p < 0).any():
        # MLE-bench's sklearn (>= 1.5) raises on negative values under RMSLE, so the submission is
        # invalid there (nomad2018-predict-transparent-conductors/grade.py:45).
        raise ValueError(f"RMSLE needs predictions >= 0; {int((p < 0).sum())} are negative (e.g. {p[p < 0].flat[0]:g}): "
                         f"clip them at 0, e.g. np.maximum(pred, 0)")
    return p


def _rmsle(t, p):
    return float(np.sqrt(np.mean((np.log1p(np.asarray(t, dtype=float)) - np.log1p(_nonnegative(p))) ** 2)))


def _mean_col_rmsle(t, p):
    t, p = _cols(np.asarray(t, dtype=float)), _cols(_nonnegative(p))
    return float(np.mean([_rmsle(t[:, j], p[:, j]) for j in range(t.shape[1])]))


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


def _label_metric(fn, **kwargs):
    def score(t, p):
        return fn(*_labels(t, p), **kwargs)
    return score


def _roc_auc(**kwargs):
    def fn(t, p):
        return _m.roc_auc_score(np.asarray(t, dtype=float).astype(int), _proba(p), **kwargs)
    return fn


# name: (lower_is_better, fn(t, p)); t and p come aligned from _align (1-D for one target column)
METRICS = {
    "accuracy": (False, _label_metric(_m.accuracy_score)),
    "balanced_accuracy": (False, _label_metric(_m.balanced_accuracy_score)),
    "f1": (False, _f1()),
    "f1_macro": (False, _f1("macro")),
    "f1_micro": (False, _f1("micro")),
    "f1_weighted": (False, _f1("weighted")),
    "qwk": (False, _label_metric(_m.cohen_kappa_score, weights="quadratic")),
    "roc_auc": (False, _roc_auc()),
    "roc_auc_macro": (False, _roc_auc(average="macro")),
    "roc_auc_micro": (False, _roc_auc(average="micro")),
    "mean_column_auc": (False, _mean_col_auc),
    "log_loss": (True, _log_loss),
    "multi_log_loss": (True, _log_loss),
    "rmse": (True, lambda t, p: float(np.sqrt(_m.mean_squared_error(t.astype(float), _num(p))))),
    "mse": (True, lambda t, p: _m.mean_squared_error(t.astype(float), _num(p))),
    "mae": (True, lambda t, p: _m.mean_absolute_error(t.astype(float), _num(p))),
    "rmsle": (True, _rmsle),
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


def compute_score(metric, answers, submission, cols, id_column="id", allowed_extra=()):
    # Score a submission DataFrame (the raw metric value, unrounded); raises ValueError naming what
    # is wrong with the submission and what to change.
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}")
    t, p = _align(answers, submission, cols, id_column, allowed_extra)
    try:
        value = float(METRICS[metric][1](t, p))
    except ValueError:
        raise
    except Exception as exc:  # e.g. labels that cannot be cast: the submission's fault
        raise ValueError(f"cannot score the submission: {type(exc).__name__}: {exc}")
    if not np.isfinite(value):
        raise ValueError(f"the metric is undefined for this submission ({value})")
    return value
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
                  id_column: str = "id", allowed_extra: tuple[str, ...] | list[str] = ()) -> float:
    """Validate ``submission`` against ``answers`` and return the raw (unrounded) metric value.

    ``allowed_extra``: columns a submission may carry besides the id and targets (those of the
    task's sample submission, e.g. detecting-insults' ``Date``). A ``ValueError`` names the fault
    and what to change."""
    return _NS["compute_score"](get_metric(metric).name, answers, submission, cols, id_column,
                                tuple(allowed_extra))


def read_csv_for(metric: str, source: Any) -> pd.DataFrame:
    """Read an answers or submission CSV as ``metric`` needs it: floats parsed exactly (MLE-bench's
    ``float_precision="round_trip"``); for text metrics every cell verbatim (``NA`` stays ``"NA"``)."""
    return _NS["read_csv_for"](get_metric(metric).name, source)
