"""The ladder: medal thresholds placed between reference solutions of increasing effort.

The generator runs four rungs on every candidate:

- ``default``: the median of the standard scikit-learn portfolio (:mod:`.solvers`, in the sandbox);
- ``tuned``: the best model of that portfolio (cross-validated linear models, boosting, forests);
- ``informed``: a cross-validated linear model on the *derived features* the hidden rule leaves
  (``Parts.derived``: an interaction, a per-group effect, a day-of-year cycle, per-class word
  counts, quantities measured from the shipped pixels, call detectors run on the shipped
  waveforms, a per-series trend). A careful solution can find each of these from the data and the
  description; the generator knows which ones matter, so it measures how far finding them gets.
  It runs on the host, next to the oracle (it knows which derived features the rule uses);
- ``oracle``: the noiseless rule (a ceiling, not a target).

Thresholds sit on that ladder (0 default, 1 tuned, 2 informed, 3 oracle; linear in between):
median at 0, bronze at 0.8 (calibrated for the scripted baseline's 20-50% any-medal band),
silver at 1.15 and gold at 1.4 (``ProceduralConfig``'s defaults), so silver and gold need some of the
derived features; the scripted baseline, a standard model, stays near the tuned rung. Gold never passes
the oracle's score (the noiseless rule reaches gold on every task). The noise rule:
every gap between adjacent thresholds is at least ``min_gap_se`` (2.5) bootstrap standard
errors of the metric, measured with ``bootstrap`` (500) resamples of the test rows on the
tuned and the informed submissions (the larger SE counts). Gaps below it are widened: median
down, silver and gold up; where gold would pass the informed rung, gold sits on it and the lower
thresholds step down from there (bronze may then fall below 0.8). Silver must stay above the
tuned rung; otherwise the task is rejected (``gap_below_noise``). The median is no medal: where
stepping down would put it at or below the sample submission's score it sits halfway between
the sample and bronze instead (``median_compressed``; its gap is then not counted). A task whose informed rung is not above the tuned one cannot
reward feature work (it must beat the tuned rung by ``min_gap_se`` SEs) and is rejected (``no_ladder``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sandmle.core.task import MedalThresholds
from sandmle.graders.metrics import get_metric

from .calibration import NOT_MODELS, Placement, _column_auc, _finish, _r, auc_resample_values
from .configs import ThresholdPolicy

RUNGS = ("default", "tuned", "informed", "oracle")
EPS = float(np.finfo(np.float64).eps)  # log-loss clipping, as the graders' metric code


def informed_submission(c: Any) -> pd.DataFrame | None:
    """The ``informed`` rung's submission: a cross-validated linear model on the candidate's
    derived features (None when the candidate has none)."""
    if c.derived_train is None or c.informed_y is None:
        return None
    import warnings

    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

    F, Ft = np.asarray(c.derived_train, float), np.asarray(c.derived_test, float)
    mu, sd = F.mean(0), F.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    F, Ft = (F - mu) / sd, (Ft - mu) / sd
    fmt, y = c.seed.submission, c.informed_y
    cols = c.target_columns
    out = pd.DataFrame({c.id_column: c.test[c.id_column].to_numpy()})
    if fmt in ("value", "multi_value"):
        for k, col in enumerate(cols):
            t = y[:, k].astype(float)
            if c.seed.positive_target:  # log-normal targets: linear on the log scale, the median back
                pred = np.exp(RidgeCV(alphas=(0.1, 1.0, 10.0)).fit(F, np.log(np.maximum(t, 1e-9))).predict(Ft))
            else:
                pred = RidgeCV(alphas=(0.1, 1.0, 10.0)).fit(F, t).predict(Ft)
            out[col] = pred
        return out

    def fit_proba(labels: np.ndarray, classes: list) -> np.ndarray:
        seen = np.unique(labels)
        if len(seen) < 2:
            return np.tile([float(cl == seen[0]) for cl in classes], (len(Ft), 1))
        folds = int(min(3, np.bincount(np.searchsorted(seen, labels)).min()))
        model = (LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], cv=folds, max_iter=300, scoring="neg_log_loss") if folds >= 2
                 else LogisticRegression(max_iter=300))
        model.fit(F, labels)
        P = np.zeros((len(Ft), len(classes)))
        proba = model.predict_proba(Ft)
        for j, cl in enumerate(model.classes_):
            P[:, classes.index(cl)] = proba[:, j]
        return P

    if fmt in ("proba_binary", "multilabel"):
        for k, col in enumerate(cols):
            out[col] = np.clip(fit_proba(y[:, k].astype(int), [0, 1])[:, 1], 1e-4, 1 - 1e-4)
        return out
    classes = [str(x) for x in c.class_names]
    P = np.clip(fit_proba(y[:, 0].astype(str), classes), 1e-4, 1)
    P /= P.sum(axis=1, keepdims=True)
    if fmt == "label":
        out["label"] = np.array(classes, dtype=object)[P.argmax(1)]
    else:
        for k, col in enumerate(cols):
            out[col] = P[:, k]
    return out


# ------------------------------------------------------------------ bootstrap, paired over rungs
def _row_losses(metric: str, t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, Any] | None:
    """Per-row terms whose mean (then ``finish``) is the metric, for additive metrics; None otherwise."""
    if metric in ("rmse", "mse", "mae"):
        e = t.astype(float).reshape(len(t), -1)[:, 0] - p.astype(float).reshape(len(p), -1)[:, 0]
        if metric == "mae":
            return np.abs(e), lambda m: m
        return e ** 2, (np.sqrt if metric == "rmse" else (lambda m: m))
    if metric in ("rmsle", "mean_column_rmsle"):
        t2, p2 = t.astype(float).reshape(len(t), -1), np.maximum(p.astype(float).reshape(len(p), -1), 0)
        return (np.log1p(t2) - np.log1p(p2)) ** 2, lambda m: np.sqrt(m).mean(axis=-1)
    if metric in ("log_loss", "multi_log_loss"):
        p2 = p.astype(float)
        if p2.ndim == 1 or p2.shape[1] == 1:
            q, yv = p2.reshape(-1), t.astype(float).reshape(-1)
            truth, probs = np.c_[1 - yv, yv], np.c_[1 - q, q]
        else:
            probs = p2
            truth = t.astype(float) if t.ndim == 2 else np.eye(p2.shape[1])[t.astype(int)]
        return -np.sum(truth * np.log(np.clip(probs, EPS, 1 - EPS)), axis=1), lambda m: m
    if metric == "accuracy":
        return (np.asarray(t).astype(str).reshape(len(t), -1)[:, 0]
                == np.asarray(p).astype(str).reshape(len(p), -1)[:, 0]).astype(float), lambda m: m
    return None


def bootstrap_ses(metric: str, answers: pd.DataFrame, subs: dict[str, pd.DataFrame], cols: list[str],
                  id_column: str, resamples: int = 500, seed: int = 0) -> dict[str, float]:
    """Bootstrap standard error of ``metric`` for each submission, over the same ``resamples``
    resamples of the test rows (additive metrics and the AUCs in one vectorized step)."""
    m = get_metric(metric)
    ids = answers[id_column].astype(str).to_numpy()
    t = answers[cols].to_numpy()
    n = len(ids)
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    out: dict[str, float] = {}
    for name, sub in subs.items():
        s = sub.assign(**{id_column: sub[id_column].astype(str)}).set_index(id_column)
        p = s.loc[ids, cols].to_numpy()
        terms = _row_losses(m.name, t, p)
        if terms is not None:
            loss, finish = terms
            values = np.asarray(finish(loss[idx].mean(axis=1)), float)
        else:
            values = auc_resample_values(m.name, t, p, idx)
        if values is None:  # metrics without a vectorized form: one call per resample
            fn = _column_auc if m.name in ("roc_auc", "mean_column_auc") else m.fn
            vals = []
            for row in idx:
                try:
                    v = fn(t[row], p[row])
                except (ValueError, IndexError):  # e.g. one class only in a resample
                    continue
                vals.append(v)
            values = np.asarray(vals, float)
        values = values[np.isfinite(values)]
        out[name] = float(np.std(values, ddof=1)) if len(values) >= 5 else float("inf")
    return out


# ------------------------------------------------------------------ placement
def place_on_ladder(policy: ThresholdPolicy, scores: dict[str, float], rungs: dict[str, float],
                    ses: dict[str, float], lower: bool) -> Placement:
    """Thresholds on the ladder ``rungs`` (default, tuned, informed, oracle scores) with every
    tier gap at least ``policy.min_gap_se`` times the largest of ``ses`` (tuned and informed)."""
    sign = -1.0 if lower else 1.0
    r = {k: sign * v for k, v in rungs.items()}
    se = max(v for v in ses.values()) if ses else 0.0
    figures: dict[str, Any] = {"ladder": {k: round(v, 6) for k, v in rungs.items()},
                               "ladder_se": {k: _r(v) for k, v in ses.items()}, "metric_se": _r(se),
                               "best_reference": round(rungs["tuned"], 6),
                               "median_reference": round(rungs["default"], 6),
                               "oracle_score": round(rungs["oracle"], 6),
                               "headroom": _r(r["oracle"] - r["tuned"]),
                               "headroom_se": _r((r["oracle"] - r["tuned"]) / se) if se > 0 else None,
                               "informed_gain_se": _r((r["informed"] - r["tuned"]) / se) if se > 0 else None,
                               "policy": policy.model_dump(exclude={"bootstrap"})}
    if "sample" in scores:
        figures["sample_score"] = round(scores["sample"], 6)
    if not math.isfinite(se):
        return Placement(None, "gap_below_noise", {**figures, "detail": "metric SE could not be estimated"})
    need = policy.min_gap_se * se * 1.01  # a hair over the bound: rounding must not undo it
    if not r["informed"] - r["tuned"] >= need:
        return Placement(None, "no_ladder", {**figures, "detail": "the derived features do not beat the tuned "
                                             f"model by {policy.min_gap_se:g} SE"})

    def at(x: float) -> float:
        if x <= 1:
            return r["default"] + x * (r["tuned"] - r["default"])
        if x <= 2:
            return r["tuned"] + (x - 1) * (r["informed"] - r["tuned"])
        return r["informed"] + (x - 2) * (r["oracle"] - r["informed"])

    med, bronze, silver, gold = (at(x) for x in (policy.median, policy.bronze, policy.ladder_silver,
                                                  policy.ladder_gold))
    widened = min(gold - silver, silver - bronze, bronze - med) < need
    # The noiseless rule always reaches gold, also after MLE-bench's 5-decimal rounding of scores.
    top = min(at(policy.ladder_top), r["oracle"] - 2e-5)
    if widened and policy.widen:  # upwards first (median down, silver and gold up) ...
        med, silver = min(med, bronze - need), max(silver, bronze + need)
        gold = max(gold, silver + need)
        if gold > top:  # ... then down from the top rung, where gold may sit at most
            gold = top
            silver = min(silver, gold - need)
            bronze = min(bronze, silver - need)
            med = min(med, bronze - need)
    figures.update(widened=bool(widened and policy.widen))
    floor = sign * scores["sample"] if "sample" in scores else -np.inf
    if med <= floor < bronze:  # the median is no medal: it only has to stay above the sample
        med = floor + (bronze - floor) / 2
        figures["median_compressed"] = True
    elif med <= floor:
        return Placement(None, "median_not_better_than_sample", figures)
    if gold > top + 1e-12 or silver <= r["tuned"] or min(gold - silver, silver - bronze) < need / 1.01 \
            or (bronze - med < need / 1.01 and not figures.get("median_compressed")):
        return Placement(None, "gap_below_noise", {**figures, "detail": f"tier gaps of {policy.min_gap_se:g} SE "
                                                   f"({need:.4g}) do not fit between the tuned and informed rungs"})
    th = MedalThresholds(**{k: round(sign * v, 6) for k, v in
                            (("gold", gold), ("silver", silver), ("bronze", bronze), ("median", med))})
    seq = [th.gold, th.silver, th.bronze] + ([] if figures.get("median_compressed") else [th.median])
    gap = min(abs(a - b) for a, b in zip(seq, seq[1:]))
    figures.update(min_threshold_gap=_r(gap), gap_se=_r(gap / se) if se > 0 else None,
                   se_per_gap=_r(se / gap) if gap > 0 else None)
    return _finish(th, scores, lower, se, None, figures)


def ladder_rungs(scores: dict[str, float], informed: float | None, oracle: float | None,
                 lower: bool) -> dict[str, float] | None:
    """The rung scores from the portfolio's ``scores`` (models beating the sample submission)."""
    if informed is None or oracle is None:
        return None
    sign = -1.0 if lower else 1.0
    floor = sign * scores["sample"] if "sample" in scores else -np.inf
    models = {k: v for k, v in scores.items() if k not in NOT_MODELS and k != "informed" and sign * v > floor}
    if len(models) < 2:
        return None
    vals = sorted(models.values(), key=lambda v: sign * v)
    return {"default": float(np.median(vals)), "tuned": vals[-1], "informed": informed, "oracle": oracle}


def best_model(scores: dict[str, float], lower: bool) -> str:
    """The portfolio model on the ``tuned`` rung."""
    models = {k: v for k, v in scores.items() if k not in NOT_MODELS and k != "informed"}
    return (min if lower else max)(models, key=models.get)
