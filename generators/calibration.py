"""Medal thresholds placed against a known ceiling, and kept apart by more than the metric's noise.

The procedural generator knows each task's hidden rule, so besides the reference leaderboard (a
standard scikit-learn portfolio, :mod:`~sandmle.generators.solvers`) it knows the *oracle* score:
the test score of the noiseless rule's predictions. :class:`ThresholdPolicy` places the
thresholds on an anchor scale where 0 is the median reference score, 1 the best reference score
and 2 the oracle score (linear in between). The default puts the median at 0 and bronze at 0.8,
so a standard scikit-learn model lands around bronze or the median, and silver and gold at 1.3
and 1.6, so they need more than the portfolio reaches: the features the rule hides, the right
model family, tuning. Bronze at 0.8 was calibrated on a 50-task set so that the scripted
``baseline`` policy wins a medal on 20-50% of tasks in each scaffold
(:mod:`~sandmle.generators.baseline_calibration` checks it).

Medals must measure skill, not test-set luck: the bootstrap standard error (SE) of the metric
for the best reference submission must stay below ``max_se_per_gap`` (default half) of the
smallest gap between adjacent thresholds. Where it does not, the gaps are widened (median down,
silver and gold up) as long as gold stays short of the oracle; otherwise the task is rejected
(``gap_below_noise``). A task whose oracle is barely better than the best reference
(``min_headroom_se`` standard errors) cannot separate agents and is rejected (``no_headroom``).
``kind: positions`` keeps MLE-bench's position rules on the reference leaderboard instead (used
when no oracle is known, e.g. LLM-generated tasks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np
import pandas as pd
from sandmle.core.task import MedalThresholds
from sandmle.graders.metrics import get_metric

from .configs import ThresholdPolicy

# Reference variants that are not models of the data: kept off the leaderboard's anchors.
NOT_MODELS = ("sample", "constant")


@dataclass
class Placement:
    """Thresholds (or a rejection reason) and the figures ``task.yaml`` records as ``difficulty``."""

    thresholds: MedalThresholds | None
    reason: str | None
    figures: dict[str, Any] = field(default_factory=dict)


def bootstrap_se(metric: str, answers: pd.DataFrame, submission: pd.DataFrame, cols: list[str],
                 id_column: str, resamples: int, seed: int = 0) -> float:
    """Standard error of ``metric`` over bootstrap resamples of the test rows."""
    m = get_metric(metric)
    ids = answers[id_column].astype(str).to_numpy()
    sub = submission.assign(**{id_column: submission[id_column].astype(str)}).set_index(id_column)
    t, p = answers[cols].to_numpy(), sub.loc[ids, cols].to_numpy()
    fn = _column_auc if m.name in ("roc_auc", "mean_column_auc") else m.fn
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, len(ids), len(ids)) for _ in range(resamples)]  # one draw per resample, as always
    ranked = auc_resample_values(m.name, t, p, np.array(rows)) if len(ids) else None
    if ranked is not None:
        ranked = ranked[np.isfinite(ranked)]
        return float(np.std(ranked, ddof=1)) if len(ranked) >= 5 else float("inf")
    values = []
    for idx in rows:
        try:
            v = fn(t[idx], p[idx])
        except (ValueError, IndexError):  # e.g. one class only in a resample
            continue
        if np.isfinite(v):
            values.append(v)
    return float(np.std(values, ddof=1)) if len(values) >= 5 else float("inf")


def _column_auc(t: np.ndarray, p: np.ndarray) -> float:
    """Mean over columns of the ROC AUC (Mann-Whitney with average ranks for ties: the value
    scikit-learn's ``roc_auc_score`` gives, without its per-call validation cost)."""
    from scipy.stats import rankdata

    t, p = np.asarray(t, float).reshape(len(t), -1), np.asarray(p, float).reshape(len(p), -1)
    aucs = []
    for j in range(t.shape[1]):
        pos = t[:, j] == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            raise ValueError("one class only")
        ranks = rankdata(p[:, j])
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def auc_resample_values(metric: str, t: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """The AUC metrics on every resample (rows ``idx``) in one ranking step; None when ``metric``
    is not an AUC or the values are not numbers (the per-resample loop then reports them)."""
    if metric not in ("roc_auc", "mean_column_auc"):
        return None
    try:
        return column_auc_resamples(t, p, idx)
    except (ValueError, TypeError):
        return None


def column_auc_resamples(t: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """:func:`_column_auc` of every bootstrap resample ``t[row], p[row]`` for the rows of ``idx``
    (resamples, n) at once; NaN where a resample has one class only in some column (the loop
    skips those) or a NaN prediction (the loop's ranks are NaN then).

    A resample is a count per original row, so nothing is sorted per resample: the rows are
    sorted once, and a resampled row's average rank is the count of resampled predictions below
    its value plus half the count of its ties, plus one half. The numbers are the loop's to the
    bit: ranks, counts and their sums are exact multiples of one half, whatever the order of the
    additions, and the per-resample mean runs over the same values in the same order."""
    t, p = np.asarray(t, float).reshape(len(t), -1), np.asarray(p, float).reshape(len(p), -1)
    resamples, n = idx.shape
    offsets = (np.arange(resamples) * n)[:, None]
    counts = np.bincount((idx + offsets).ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)
    aucs = np.empty((resamples, t.shape[1]))
    valid = np.ones(resamples, bool)
    for j in range(t.shape[1]):
        order = np.argsort(p[:, j], kind="stable")
        values, positive = p[order, j], (t[order, j] == 1).astype(float)
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])  # one group per distinct value
        c = counts[:, order]
        group = np.add.reduceat(c, starts, axis=1)
        group_pos = np.add.reduceat(c * positive, starts, axis=1)
        below = np.cumsum(group, axis=1) - group
        rank_sum = (group_pos * (below + (group + 1) / 2)).sum(axis=1)
        n_pos = group_pos.sum(axis=1).astype(np.int64)
        n_neg = n - n_pos
        valid &= (n_pos > 0) & (n_neg > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            aucs[:, j] = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        nan_rows = np.isnan(p[:, j])
        if nan_rows.any():
            aucs[counts[:, nan_rows].sum(axis=1) > 0, j] = np.nan
    out = np.fromiter((np.mean(row) for row in aucs), float, resamples)
    out[~valid] = np.nan
    return out


def positions_thresholds(scores: dict[str, float], lower: bool) -> tuple[MedalThresholds, list[float]]:
    """MLE-bench's N<100 position rules on the reference leaderboard (sample submission excluded)."""
    # Tied scores count once: discrete metrics (accuracy on 60 rows) tie often, and a tie at a
    # medal position would make two thresholds equal.
    board = sorted({round(v, 5) for k, v in scores.items() if k != "sample"}, reverse=not lower)
    n = len(board)
    if n < 5:
        raise ValueError(f"only {n} distinct reference scores; need at least 5 for distinct medal positions")
    pos = {"gold": max(1, n // 10), "silver": max(2, n // 5), "bronze": max(3, int(0.4 * n))}
    th = MedalThresholds(gold=board[pos["gold"] - 1], silver=board[pos["silver"] - 1],
                         bronze=board[pos["bronze"] - 1], median=round(median(board), 5))
    return th, board


def place_thresholds(policy: ThresholdPolicy, scores: dict[str, float], oracle: float | None, se: float,
                     lower: bool) -> Placement:
    """Thresholds from reference ``scores``, the ``oracle`` score and the metric's bootstrap ``se``."""
    sign = -1.0 if lower else 1.0  # work in "higher is better" units
    floor = sign * scores["sample"] if "sample" in scores else -np.inf
    # Models worse than the sample submission learned nothing: they would drag the median anchor
    # below the sample (log loss of a badly calibrated model) and stay off the anchors.
    models = {k: sign * v for k, v in scores.items() if k not in NOT_MODELS and sign * v > floor}
    if len(models) < 2:
        return Placement(None, "no_signal", {"models_beating_sample": len(models)})
    best_name = max(models, key=models.get)
    ref_best, ref_median = models[best_name], float(median(models.values()))
    figures: dict[str, Any] = {"best_reference": round(sign * ref_best, 6), "best_reference_model": best_name,
                               "median_reference": round(sign * ref_median, 6), "metric_se": _r(se),
                               "policy": policy.model_dump(exclude={"bootstrap"})}
    if "sample" in scores:
        figures["sample_score"] = round(scores["sample"], 6)
    if oracle is None or policy.kind == "positions":
        return _positions(scores, lower, se, figures)
    o = sign * oracle
    headroom = o - ref_best
    figures.update(oracle_score=round(oracle, 6), headroom=_r(headroom),
                   headroom_se=_r(headroom / se) if se > 0 else None)
    if not headroom > policy.min_headroom_se * se:
        return Placement(None, "no_headroom", figures)

    def at(x: float) -> float:
        return ref_median + x * (ref_best - ref_median) if x <= 1 else ref_best + (x - 1) * headroom

    med, bronze, silver, gold = (at(x) for x in (policy.median, policy.bronze, policy.silver, policy.gold))
    need = se / policy.max_se_per_gap * 1.01  # a hair over the bound: rounding must not undo it
    widened = min(gold - silver, silver - bronze, bronze - med) < need
    if widened and policy.widen:
        med, silver = min(med, bronze - need), max(silver, bronze + need)
        gold = max(gold, silver + need)
    figures.update(widened=bool(widened and policy.widen))
    if gold >= o:
        return Placement(None, "gap_below_noise", figures)
    th = MedalThresholds(**{k: round(sign * v, 6) for k, v in
                            (("gold", gold), ("silver", silver), ("bronze", bronze), ("median", med))})
    return _finish(th, scores, lower, se, policy, figures)


def _positions(scores: dict[str, float], lower: bool, se: float, figures: dict[str, Any]) -> Placement:
    try:
        th, _ = positions_thresholds(scores, lower)
    except ValueError as exc:
        return Placement(None, "too_few_reference_scores", {**figures, "detail": str(exc)})
    return _finish(th, scores, lower, se, None, figures)


def _finish(th: MedalThresholds, scores: dict[str, float], lower: bool, se: float,
            policy: ThresholdPolicy | None, figures: dict[str, Any]) -> Placement:
    seq = [th.gold, th.silver, th.bronze, th.median]
    gap = min(abs(a - b) for a, b in zip(seq, seq[1:]))
    figures.update(min_threshold_gap=_r(gap), se_per_gap=_r(se / gap) if gap > 0 else None)
    reason = sanity_reason(scores, th, lower)
    if reason is None and policy is not None and se > policy.max_se_per_gap * gap * (1 + 1e-9):
        reason = "gap_below_noise"
    return Placement(th if reason is None else None, reason, figures)


def sanity_reason(scores: dict[str, float], th: MedalThresholds, lower: bool) -> str | None:
    """SandMLE's sanity filter plus a learnability check; ``None`` when the task passes."""
    if not th.is_monotone(lower):
        return "non_monotone"
    better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
    if "sample" in scores and not better(th.median, scores["sample"]):
        return "median_not_better_than_sample"
    best = min(scores.values()) if lower else max(scores.values())
    if "constant" in scores and not better(best, scores["constant"]):
        return "no_signal"
    return None


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)
