"""Tabular families: a hidden rule over a real table's columns, plus the pitfalls real tasks have.

Rows are resampled from an offline table, numeric columns standardized and jittered (no row is a
copy), and re-labelled by a :class:`~sandmle.generators.rules.HiddenRule` over a few of them.
Pitfalls a seed lists (``pitfalls:``) are added on top: a high-cardinality categorical whose
levels shift the score, a date column with a yearly and weekly cycle, covariate shift between
train and test, duplicated training rows, heavier missingness and outliers. Every effect a pitfall
adds is part of the noiseless rule, so the oracle includes it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .rules import HiddenRule, draw, draw_int, make_targets, standardize
from .seeds import SeedTask
from .sources import load_source
from .synth import NoiseConfig, Parts

KIND = {"binary": "binary", "multiclass": "multiclass", "multilabel": "multilabel",
        "regression": "regression", "forecasting": "regression", "multitarget": "multitarget"}


def outputs_of(seed: SeedTask, rng: np.random.Generator) -> tuple[int, int]:
    """(outputs, score columns): classes or labels or targets, and the rule's output columns."""
    if seed.task_type == "multitarget":
        k = draw_int(rng, seed.n_targets)
        return k, k
    if seed.task_type in ("regression", "forecasting"):
        return 1, 1
    k = draw_int(rng, seed.n_classes)
    if seed.task_type == "binary":
        return 2, 1
    return k, (1 if seed.ordinal else k)


def targets_for(seed: SeedTask, rng: np.random.Generator, s: np.ndarray, noise: NoiseConfig,
                latent: bool = True, signal: float = 1.0, n_classes: int | None = None):
    """:func:`make_targets` with the seed's kind and the task's sampled noise levels."""
    prior = rng.dirichlet(np.full(s.shape[1], 0.7)) + 0.02 if "imbalance" in seed.pitfalls else None
    return make_targets(KIND[seed.task_type], rng, s, latent_weight=draw(rng, noise.latent_weight) if latent else 0.0,
                        label_noise=draw(rng, noise.label_noise), target_noise=draw(rng, noise.target_noise),
                        shares=seed.minority_share, positive=seed.positive_target, ordinal=seed.ordinal,
                        class_prior=prior, signal=signal, n_classes=n_classes)


def tabular_parts(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
                  noise: NoiseConfig) -> Parts:
    """Rows of a real table, re-labelled by a hidden rule; the seed's pitfalls on top."""
    # Duplicated rows are training rows too: they come out of the budget, so train.csv keeps
    # ``n_train`` rows (SandMLE's 50-200).
    n_dup = max(2, int(n_train * rng.uniform(0.03, 0.08))) if "duplicates" in seed.pitfalls else 0
    n_train -= n_dup
    n = n_train + n_test
    base = load_source(seed.source)
    rows = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    cats = [c for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
    values = rows.drop(columns=cats).to_numpy(float)
    values = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    values = standardize(values) + rng.normal(0, 0.05, values.shape)  # jitter: no row is copied
    K, outputs = outputs_of(seed, rng)
    rule = HiddenRule.sample(rng, values.shape[1], outputs)
    # Signals for careful feature work: a bend (square or step) and an interaction strong enough
    # that a tuned standard model on the raw columns falls short of the derived features.
    if not set(rule.transforms) & {"square", "step"}:
        rule.transforms[0] = str(rng.choice(["square", "step"]))
    floor = 1.0 if values.shape[1] <= 6 else 0.7
    rule.interaction = float(np.sign(rule.interaction or 1.0) * max(abs(rule.interaction), floor))
    s = rule.scores(values)
    core: dict[str, Any] = {**rule.describe()}
    feats: dict[str, np.ndarray] = {}
    order = rng.permutation(values.shape[1])
    kept = list(dict.fromkeys(rule.relevant + [int(c) for c in order[: len(rule.relevant) + draw_int(rng, (1, 4))]]))
    for c in kept:
        feats[f"f_r{c}"] = values[:, c]
    for j in range(draw_int(rng, noise.correlated_features)):
        src = rule.relevant[j % len(rule.relevant)]
        feats[f"f_corr{j}"] = values[:, src] * rng.uniform(0.6, 1.4) + rng.normal(0, 0.5, n)
    for j in range(draw_int(rng, noise.irrelevant_features)):
        feats[f"f_noise{j}"] = rng.normal(0, 1, n) if j % 2 else rng.permutation(values[:, order[-1]])
    derived = [rule.basis(values)]
    for c in cats:  # the table's own categoricals: each level may shift the score
        levels = rows[c].astype(str).where(rows[c].notna(), None)
        effect = {lv: rng.normal(0, 0.4, outputs) for lv in sorted(set(levels.dropna()))}
        shift = np.array([effect.get(v, np.zeros(outputs)) for v in levels])
        s += shift
        derived.append(shift)  # a per-group effect (few levels: learnable from the rows)
        feats[f"f_cat_{c}"] = rows[c].to_numpy(dtype=object)
    s_scale = float(s.std() or 1.0)
    pitfalls = list(seed.pitfalls)
    extra: dict[str, np.ndarray] = {}
    site_effect = None
    if "high_cardinality" in pitfalls:
        extra["site_code"], effect = _high_cardinality(rng, n, outputs)
        s += s_scale * effect
        site_effect = effect
        core["high_cardinality_weight"] = 1.0
    if "date" in pitfalls:
        extra["date"], effect, cycle = _dates(rng, n)
        s += s_scale * effect[:, None] * rng.choice([-1.0, 1.0], outputs)
        derived.append(cycle)  # day-of-year sine/cosine and the weekend flag
    X = pd.DataFrame({k: np.round(v, 4) if v.dtype.kind == "f" else v for k, v in feats.items()})
    X = X[list(rng.permutation(X.columns))]  # column order says nothing about relevance
    for k, v in extra.items():
        X[k] = v
    # Sharper classes for multi-class tasks: the Gumbel noise is fixed, so signal sets the ceiling.
    targets = targets_for(seed, rng, s, noise, n_classes=K, signal=2.0 if seed.task_type == "multiclass" else 1.0)
    idx = np.arange(n)
    if "shift" in pitfalls:  # test rows favour one side of a relevant column
        tilt = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2))
        w = np.exp(tilt * values[:, rule.relevant[0]])
        test_idx = rng.choice(n, n_test, replace=False, p=w / w.sum())
        idx = np.concatenate([np.setdiff1d(idx, test_idx), test_idx])
        core["shift"] = {"column": int(rule.relevant[0]), "tilt": round(tilt, 3)}
    X = X.iloc[idx].reset_index(drop=True)
    targets.y, targets.oracle = targets.y[idx], targets.oracle[idx]
    derived_all = np.column_stack(derived)[idx]
    if site_effect is not None:  # a careful solution can estimate a level's effect only where
        codes = X["site_code"].to_numpy()  # the training rows hold it a few times
        seen, counts = np.unique(codes[:n_train], return_counts=True)
        known = np.isin(codes, seen[counts >= 3])
        derived_all = np.column_stack([derived_all, site_effect[idx] * known[:, None]])
    X = corrupt(X, rng, noise, core, heavy="missing" in pitfalls, outliers="outliers" in pitfalls)
    dups = []
    if "duplicates" in pitfalls:
        dups = sorted(rng.choice(n_train, n_dup, replace=False).tolist())
    return Parts(X=X, targets=targets, rule={"core": core, **targets.info}, n_train=n_train, n_outputs=K,
                 pitfalls=pitfalls, duplicate_rows=dups, derived=derived_all)


def _high_cardinality(rng: np.random.Generator, n: int, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    levels = draw_int(rng, (40, 300))
    popularity = rng.zipf(1.6, levels).astype(float)  # a few big levels and a long tail
    codes = rng.choice(levels, n, p=popularity / popularity.sum())
    effect = rng.normal(0, 0.8, (levels, outputs))
    names = np.array([f"Z{c:04d}" for c in rng.permutation(10_000)[:levels]], dtype=object)
    return names[codes], effect[codes]


def _dates(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 2500)))
    offsets = rng.integers(0, 730, n)
    days = np.array([start + timedelta(days=int(o)) for o in offsets])
    doy = np.array([d.timetuple().tm_yday for d in days])
    weekend = np.array([d.weekday() >= 5 for d in days], dtype=float)
    effect = 0.6 * np.sin(2 * np.pi * doy / 365.25 + rng.uniform(0, 6.3)) + rng.uniform(-0.6, 0.6) * weekend
    angle = 2 * np.pi * doy / 365.25
    cycle = np.column_stack([np.sin(angle), np.cos(angle), weekend])
    return np.array([d.isoformat() for d in days], dtype=object), effect, cycle


def corrupt(X: pd.DataFrame, rng: np.random.Generator, noise: NoiseConfig, rule: dict, *,
            heavy: bool = False, outliers: bool = False) -> pd.DataFrame:
    """Missing values and outliers in numeric feature columns (recorded in the rule)."""
    numeric = [c for c in X.columns if pd.api.types.is_float_dtype(X[c])]
    rate = draw(rng, (0.08, 0.2) if heavy else noise.missing_rate)
    hit = [c for c in numeric if rng.random() < (0.6 if heavy else 0.4)] if rate > 0 else []
    for c in hit:
        X.loc[rng.random(len(X)) < rate, c] = np.nan
    out_rate = draw(rng, (0.01, 0.03) if outliers else noise.outlier_rate)
    if out_rate > 0 and numeric:
        c = numeric[int(rng.integers(len(numeric)))]
        mask = rng.random(len(X)) < out_rate
        X.loc[mask, c] = X.loc[mask, c] * float(rng.uniform(8, 20))
    rule.update(missing_rate=round(rate, 4), missing_columns=hit, outlier_rate=round(out_rate, 4))
    return X
