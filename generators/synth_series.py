"""Time-series family: several daily series side by side and a forecast horizon.

``train.csv`` holds the history of every series (``date``, ``series``, a known-in-advance
``promo`` flag, the target); ``test.csv`` the next ``horizon`` dates of every series. Each series
is a level, a trend, a weekly cycle, the shape of a real offline series (a segment of co2,
sunspots or macro data, resampled) and a promo effect, plus AR(1) noise. The oracle forecasts the
noiseless part; a model that ignores the trend, the weekly cycle or the promo flag stays far from it.

Training rows keep SandMLE's micro budget (the ``n_train`` the generator draws, 50-200): the
history spans at least four weeks of calendar days, but each series reports on only some of
them (a store closed, a meter not read), as many as the budget allows. The horizon (7-14 days,
at most half the history's span) is scored on every day and every series, so test rows may
outnumber training rows: that is what keeps the medal gaps above the metric's noise.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from .rules import Targets, draw, draw_int
from .seeds import SeedTask
from .sources import load_source
from .synth import NoiseConfig, Parts


SERIES = (8, 16)  # series per task, fewer where the budget leaves under MIN_REPORTS days per series
MIN_REPORTS = 8  # reported history days per series, at least (a level and a trend per series)
SPAN = (28, 56)  # calendar days of history, at least four weeks
HORIZON_MAX = 14  # days forecast, at most (and at most half the history's span)


def series_layout(rng: np.random.Generator, n_train: int) -> tuple[int, int, int]:
    """(series, history span in days, horizon in days) for a budget of ``n_train`` training rows."""
    n_series = max(1, min(draw_int(rng, SERIES), n_train // MIN_REPORTS))
    span = max(draw_int(rng, SPAN), -(-n_train // n_series))  # every reported day fits in the span
    return n_series, span, int(np.clip(span // 2, 7, HORIZON_MAX))


def reported_days(rng: np.random.Generator, n_train: int, n_series: int, span: int) -> list[np.ndarray]:
    """The history days each series reports on: ``n_train`` in all, spread over the series as
    evenly as possible; each series reports on the last day (the forecast starts the day after)
    and on a random subset of the earlier ones, in date order."""
    counts = np.full(n_series, n_train // n_series)
    counts[rng.permutation(n_series)[: n_train % n_series]] += 1
    return [np.r_[np.sort(rng.choice(span - 1, int(m) - 1, replace=False)), span - 1] for m in counts]


def _shape(rng: np.random.Generator, raw: pd.DataFrame, length: int) -> np.ndarray:
    base = raw[raw.columns[int(rng.integers(raw.shape[1]))]].to_numpy(float)
    step = float(rng.uniform(0.2, 1.0)) * min(1.0, (len(base) - 2) / length)
    start = float(rng.uniform(0, max(0.0, len(base) - 1 - step * length)))
    grid = np.mod(start + step * np.arange(length), len(base) - 1)
    shape = np.interp(grid, np.arange(len(base)), base)
    return (shape - shape.mean()) / (shape.std() or 1.0)


def series_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
                 noise: NoiseConfig) -> Parts:
    """History rows of every series first, then the horizon rows (the test set)."""
    raw = load_source(seed.source)
    # Test rows come from more series, not a longer horizon: forecasting as far ahead as the whole
    # history scores mostly the unforecastable shape. Up to two weeks ahead of at least four weeks
    # of history, over 6-16 series (84-224 test rows), keeps the medal gaps above the metric's noise
    # while the history's reported days stay within the training budget.
    n_series, history, horizon = series_layout(rng, n_train)
    length = history + horizon
    t = np.arange(length)
    start = date(2012, 1, 1) + timedelta(days=int(rng.integers(0, 3000)))
    dates = np.array([(start + timedelta(days=int(d))).isoformat() for d in t], dtype=object)
    weekday = np.array([(start + timedelta(days=int(d))).weekday() for d in t])
    week_profile = rng.normal(0, 1, 7)
    promo_effect = float(rng.uniform(0.5, 2.0))
    ratio, phi = draw(rng, noise.target_noise), float(rng.uniform(0.2, 0.7))
    scale, offset = float(rng.choice([1.0, 5.0, 20.0])), float(rng.uniform(10, 100))
    clean, noisy, promos, core = [], [], [], []
    for _ in range(n_series):
        level, trend = rng.normal(0, 2), rng.normal(0, 4.0 / length)
        # The real series' shape is what no forecaster can know ahead; the trend, weekly cycle and
        # promo effect are what careful feature work finds, so they weigh more.
        w_shape, w_week = float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.4, 1.2))
        promo = (rng.random(length) < 0.15).astype(int)
        y = level + trend * t + w_shape * _shape(rng, raw, length) + w_week * week_profile[weekday] + promo_effect * promo
        ar = np.zeros(length)
        eps = rng.normal(0, ratio * (y.std() or 1.0), length)
        for i in range(1, length):
            ar[i] = phi * ar[i - 1] + eps[i]
        clean.append(y * scale + offset)
        noisy.append((y + ar) * scale + offset)
        promos.append(promo)
        core.append({"level": round(float(level), 3), "trend": round(float(trend), 5), "shape_weight": round(w_shape, 3),
                     "week_weight": round(w_week, 3)})
    names = [f"S{k:02d}" for k in rng.permutation(100)[:n_series]]
    reported = reported_days(rng, n_train, n_series, history)
    past = [(k, int(i)) for k in range(n_series) for i in reported[k]]
    rows = past + [(k, i) for k in range(n_series) for i in range(history, length)]
    X = pd.DataFrame({"date": [dates[i] for _, i in rows], "series": [names[k] for k, _ in rows],
                      "promo": [promos[k][i] for k, i in rows]})
    # What a careful forecaster derives from the public columns: a level and a trend per series,
    # the weekday profile, the promo flag (the real-series shape and the AR noise stay unexplained).
    sk, ti = np.array([k for k, _ in rows]), np.array([i for _, i in rows], float) / length
    one = np.eye(n_series)[sk]
    derived = np.column_stack([one, one * ti[:, None], np.eye(7)[weekday[[i for _, i in rows]]],
                               [promos[k][i] for k, i in rows]])
    y_all = np.round(np.array([noisy[k][i] for k, i in rows]), 4)
    oracle = np.array([clean[k][i] for k, i in rows])
    rule = {"core": {"series": core, "week_profile": np.round(week_profile, 3).tolist(),
                     "promo_effect": round(promo_effect, 3)}, "ar_phi": round(phi, 3),
            "noise_ratio": round(ratio, 4), "horizon": horizon, "history_days": history}
    return Parts(X=X, targets=Targets(y_all, oracle, {"horizon": horizon}), rule=rule,
                 n_train=len(past), n_outputs=1, derived=derived)
