"""Procedural data synthesis: a hidden rule over real feature structure, per modality.

``synthesize(seed, rng, n_train, n_test, noise)`` returns a :class:`Candidate`: public frames
(train, test, sample submission), hidden answers and the hidden rule. The rule only ever goes
to private provenance (``prepared/private/rule.json``); public files carry no trace of it.
Every random choice comes from the caller's ``numpy.random.Generator``, so a seed reproduces a
task exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from sandmle.core.interfaces import ComponentConfig

from .domains import Domain, pick_domain, reserved_words
from .seeds import SeedTask
from .sources import descr_vocabulary, load_source

TRANSFORMS = ("linear", "square", "tanh", "step")


class NoiseConfig(ComponentConfig):
    """Ranges the procedural generator samples its adversarial noise from (per task)."""

    label_noise: tuple[float, float] = Field((0.0, 0.08), description="share of flipped labels")
    target_noise: tuple[float, float] = Field((0.1, 0.4), description="regression noise / signal std")
    missing_rate: tuple[float, float] = Field((0.0, 0.08), description="NaN share in affected columns")
    outlier_rate: tuple[float, float] = Field((0.0, 0.02))
    irrelevant_features: tuple[int, int] = (1, 4)
    correlated_features: tuple[int, int] = (0, 2)


@dataclass
class Candidate:
    """One synthesized task before verification."""

    seed: SeedTask
    domain: Domain
    train: pd.DataFrame
    test: pd.DataFrame
    answers: pd.DataFrame
    sample_submission: pd.DataFrame
    target_columns: list[str]
    rule: dict[str, Any]
    id_column: str = "id"
    class_names: list[str] = field(default_factory=list)
    description: str | None = None  # written by an LLM Technical Writer; None: the template
    label_column: str | None = None  # the target column of train.csv, when not the default

    @property
    def signature(self) -> str:
        """Near-duplicate key: the same rule over the same columns gives the same signature."""
        key = {"seed": self.seed.name, "rule": self.rule.get("core"),
               "columns": sorted(c for c in self.train.columns)}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi)) if lo_hi[1] > lo_hi[0] else float(lo_hi[0])


def _i(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def _apply(kind: str, x: np.ndarray, cut: float) -> np.ndarray:
    return {"linear": x, "square": x ** 2 - 1.0, "tanh": np.tanh(2 * x),
            "step": (x > cut).astype(float) * 2 - 1}[kind]


def _standardize(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


# ----------------------------------------------------------------------------- labels from scores
def _labels_from_scores(seed: SeedTask, rng: np.random.Generator, s: np.ndarray, n_classes: int,
                        noise: NoiseConfig, rule: dict) -> np.ndarray:
    """Binary/multiclass labels (ints) or regression targets from latent scores ``s`` (n, K)."""
    n = s.shape[0]
    if seed.task_type in ("regression", "forecasting"):
        y = s[:, 0]
        ratio = _u(rng, noise.target_noise)
        y = y + rng.normal(0, ratio * (y.std() or 1.0), n)
        scale, offset = float(rng.choice([1.0, 3.0, 10.0, 40.0])), float(rng.uniform(-5, 50))
        if seed.positive_target:
            y = np.exp(0.6 * _standardize(y[:, None])[:, 0]) * scale
        else:
            y = y * scale + offset
        rule.update(target_scale=scale, target_offset=offset, noise_ratio=round(ratio, 4))
        return np.round(y, 4)
    if n_classes == 2:
        share = _u(rng, seed.minority_share)
        score = s[:, 0] + rng.normal(0, 0.3 * (s[:, 0].std() or 1.0), n)
        y = (score > np.quantile(score, 1 - share)).astype(int)
        rule["positive_share"] = round(share, 4)
    else:
        gumbel = rng.gumbel(0, 0.4, size=(n, n_classes))
        y = np.argmax(s[:, :n_classes] + gumbel, axis=1)
    flip = _u(rng, noise.label_noise)
    mask = rng.random(n) < flip
    y[mask] = rng.integers(0, n_classes, mask.sum())
    rule["label_noise"] = round(flip, 4)
    return y


# ----------------------------------------------------------------------------- tabular
def _tabular(seed: SeedTask, rng: np.random.Generator, n: int, n_classes: int, noise: NoiseConfig):
    base = load_source(seed.source)
    rows = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    cats = [c for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
    num = rows.drop(columns=cats)
    values = num.to_numpy(float)
    values = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    values = _standardize(values) + rng.normal(0, 0.05, values.shape)  # jitter: no row is copied
    p = values.shape[1]
    order = rng.permutation(p)
    k_rel = int(rng.integers(2, min(5, p) + 1))
    relevant = order[:k_rel]
    kept = order[: min(p, k_rel + _i(rng, (1, 4)))]  # real columns that stay (some irrelevant)
    latent = rng.normal(0, 1, n)
    K = 1 if seed.task_type == "regression" else (1 if n_classes == 2 else n_classes)
    weights = rng.normal(0, 1, (k_rel, K))
    kinds = [str(rng.choice(TRANSFORMS)) for _ in range(k_rel)]
    cuts = rng.normal(0, 0.5, k_rel)
    s = np.zeros((n, K))
    for j, (col, kind) in enumerate(zip(relevant, kinds)):
        s += np.outer(_apply(kind, values[:, col], cuts[j]), weights[j])
    a, b = relevant[0], relevant[1]
    inter = float(rng.normal(0, 0.8))
    s += inter * (values[:, a] * values[:, b])[:, None]
    lat_w = float(rng.uniform(0.2, 0.8))
    s += lat_w * latent[:, None]  # an unobserved cause: caps what any model can reach
    rule: dict[str, Any] = {"core": {"relevant": relevant.tolist(), "transforms": kinds,
                                     "weights": np.round(weights, 3).tolist(), "interaction": round(inter, 3),
                                     "latent_weight": round(lat_w, 3)}}
    feats = {f"r{c}": values[:, c] for c in kept}
    for j in range(_i(rng, noise.correlated_features)):
        src = relevant[j % k_rel]
        feats[f"corr{j}"] = values[:, src] * rng.uniform(0.6, 1.4) + rng.normal(0, 0.5, n)
    for j in range(_i(rng, noise.irrelevant_features)):
        feats[f"noise{j}"] = rng.normal(0, 1, n) if j % 2 else rng.permutation(values[:, order[-1]])
    return feats, s, rule, rows[cats] if cats else None


# ----------------------------------------------------------------------------- image
def _image(seed: SeedTask, rng: np.random.Generator, n: int, n_classes: int, noise: NoiseConfig):
    base = load_source(seed.source)
    digit = base["digit"].to_numpy()
    pixels_all = base.drop(columns=["digit"]).to_numpy(float)
    perm = rng.permutation(10)
    rule: dict[str, Any] = {}
    if seed.task_type == "regression":
        idx = rng.integers(0, len(base), n)
        y0, x0 = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        imgs = pixels_all[idx].reshape(n, 8, 8)
        s = imgs[:, y0:y0 + 3, x0:x0 + 3].mean(axis=(1, 2))[:, None]
        rule["core"] = {"region": [y0, x0, 3]}
        group = None
    else:
        k = 2 if n_classes == 2 else n_classes
        groups = np.array_split(perm, k) if k > 2 else [perm[: int(rng.integers(1, 5))], perm]
        group_of = np.zeros(10, int)
        for g, members in enumerate(groups[:k] if k > 2 else groups[:1]):
            group_of[members] = g + (1 if k == 2 else 0)
        if k == 2:
            group_of = np.isin(np.arange(10), groups[0]).astype(int)
            share = _u(rng, seed.minority_share)
            n_pos = max(2, int(round(share * n)))
            pos_idx = rng.choice(np.flatnonzero(group_of[digit] == 1), n_pos)
            neg_idx = rng.choice(np.flatnonzero(group_of[digit] == 0), n - n_pos)
            idx = rng.permutation(np.concatenate([pos_idx, neg_idx]))
            rule["positive_share"] = round(share, 4)
        else:
            idx = rng.integers(0, len(base), n)
        group = group_of[digit[idx]]
        rule["core"] = {"digit_groups": group_of.tolist()}
        s = None
    imgs = pixels_all[idx].reshape(n, 8, 8)
    flip = bool(rng.random() < 0.5)
    imgs = np.swapaxes(imgs, 1, 2) if flip else imgs
    contrast = float(rng.uniform(0.6, 1.4))
    imgs = np.clip(imgs * contrast + rng.normal(0, float(rng.uniform(0.02, 0.12)), imgs.shape), 0, 1)
    rule.update(transposed=flip, contrast=round(contrast, 3))
    feats = {f"px{i}": np.round(imgs.reshape(n, 64)[:, i], 4) for i in range(64)}
    if group is not None:
        flip_rate = _u(rng, noise.label_noise)
        mask = rng.random(n) < flip_rate
        group[mask] = rng.integers(0, max(2, n_classes), mask.sum())
        rule["label_noise"] = round(flip_rate, 4)
    return feats, s, rule, group


# ----------------------------------------------------------------------------- text
def _text(seed: SeedTask, rng: np.random.Generator, n: int, n_classes: int, noise: NoiseConfig):
    reserved = reserved_words()
    vocab = np.array([w for w in descr_vocabulary() if w not in reserved])
    words = rng.permutation(vocab)
    k = max(2, n_classes)
    n_kw = int(rng.integers(5, 9))
    keywords = [words[i * n_kw:(i + 1) * n_kw] for i in range(k)]
    filler = words[k * n_kw:]
    if k == 2:
        share = _u(rng, seed.minority_share)
        y = (rng.random(n) < share).astype(int)
    else:
        y = rng.choice(k, n, p=rng.dirichlet(np.full(k, 4.0)))
    signal = float(rng.uniform(0.12, 0.3))
    docs = []
    for label in y:
        length = int(rng.integers(8, 22))
        tokens = list(rng.choice(filler, length))
        for pos in range(length):
            r = rng.random()
            if r < signal:
                tokens[pos] = str(rng.choice(keywords[label]))
            elif r < signal + 0.06:  # distractors: another class's keyword
                tokens[pos] = str(rng.choice(keywords[int(rng.integers(k))]))
        docs.append(" ".join(tokens).capitalize() + ".")
    flip = _u(rng, noise.label_noise)
    mask = rng.random(n) < flip
    y[mask] = rng.integers(0, k, mask.sum())
    rule = {"core": {"keywords": [list(map(str, kw)) for kw in keywords]},
            "signal_rate": round(signal, 4), "label_noise": round(flip, 4)}
    return {"text": np.array(docs, dtype=object)}, None, rule, y


# ----------------------------------------------------------------------------- time series
def _series(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int, noise: NoiseConfig):
    raw = load_source(seed.source)
    col = raw.columns[int(rng.integers(raw.shape[1]))]
    base = raw[col].to_numpy(float)
    lags = int(rng.integers(3, 7))
    horizon = n_test  # lags start at the horizon, so no test row sees another test row's answer
    length = n_train + n_test + horizon + lags
    step = min(1.0, (len(base) - 2) / (length * 1.2))  # upsample short series by interpolation
    start = float(rng.uniform(0, max(0.0, len(base) - 1 - step * length)))
    grid = start + step * np.arange(length)
    grid = np.mod(grid, len(base) - 1)  # full-scale versions wrap around the real series
    series = np.interp(grid, np.arange(len(base)), base)
    series = _standardize(series[:, None])[:, 0]
    period = int(rng.integers(5, 30))
    amp, trend = float(rng.uniform(0, 1.0)), float(rng.normal(0, 1.5 / length))
    t = np.arange(length)
    y = series + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.28)) + trend * t
    rule: dict[str, Any] = {"core": {"source_column": str(col), "period": period, "amplitude": round(amp, 3),
                                     "trend": round(trend, 6), "start": round(start, 2)}}
    y_out = _labels_from_scores(seed, rng, y[:, None], 1, noise, rule)
    rows = np.arange(horizon + lags, length)
    feats = {"step": rows}
    for j in range(lags):
        feats[f"lag_{horizon + j}"] = y_out[rows - horizon - j]
    return feats, y_out[rows], rule


# ----------------------------------------------------------------------------- assembly
def synthesize(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
               noise: NoiseConfig | None = None) -> Candidate:
    """One candidate task from ``seed`` with ``n_train`` training and ``n_test`` test rows."""
    noise = noise or NoiseConfig()
    n = n_train + n_test
    n_classes = int(rng.integers(seed.n_classes[0], seed.n_classes[1] + 1))
    if seed.task_type in ("regression", "forecasting"):
        n_classes = 1
    extra_cats = None
    if seed.modality == "time_series":
        feats, target, rule = _series(seed, rng, n_train, n_test, noise)
    else:
        maker = {"tabular": _tabular, "image": _image, "text": _text}[seed.modality]
        feats, s, rule, extra = maker(seed, rng, n, n_classes, noise)
        if seed.modality == "tabular":
            extra_cats = extra
            target = _labels_from_scores(seed, rng, s, n_classes, noise, rule)
        elif extra is None:  # image regression
            target = _labels_from_scores(seed, rng, s, n_classes, noise, rule)
        else:
            target = extra
    names = [k for k in feats]
    domain = pick_domain(rng, len(names) + (0 if extra_cats is None else extra_cats.shape[1]),
                         max(n_classes, 2), seed.modality)
    if seed.modality == "tabular":
        rename = dict(zip(names, domain.columns))
        order = list(rng.permutation(names))  # column order says nothing about relevance
        X = pd.DataFrame({rename[k]: np.round(np.asarray(feats[k], float), 4) for k in order})
        X = _corrupt(X, rng, noise, rule)
        if extra_cats is not None:
            for j, c in enumerate(extra_cats.columns):
                X[domain.columns[len(names) + j]] = extra_cats[c].to_numpy()
    else:
        X = pd.DataFrame(feats)
    rule["core"] = rule.get("core", {})
    return _assemble(seed, domain, X, np.asarray(target), n_train, n_classes, rule)


def _corrupt(X: pd.DataFrame, rng: np.random.Generator, noise: NoiseConfig, rule: dict) -> pd.DataFrame:
    rate = _u(rng, noise.missing_rate)
    hit = [c for c in X.columns if rng.random() < 0.4] if rate > 0 else []
    for c in hit:
        X.loc[rng.random(len(X)) < rate, c] = np.nan
    out_rate = _u(rng, noise.outlier_rate)
    if out_rate > 0:
        c = X.columns[int(rng.integers(X.shape[1]))]
        mask = rng.random(len(X)) < out_rate
        X.loc[mask, c] = X.loc[mask, c] * float(rng.uniform(8, 20))
    rule.update(missing_rate=round(rate, 4), missing_columns=hit, outlier_rate=round(out_rate, 4))
    return X


def _assemble(seed: SeedTask, domain: Domain, X: pd.DataFrame, target: np.ndarray, n_train: int,
              n_classes: int, rule: dict) -> Candidate:
    n = len(X)
    ids = np.arange(n)
    X.insert(0, "id", ids)
    target_name = domain.target if n_classes == 1 else "label"
    classes = list(domain.labels[:n_classes]) if n_classes > 1 else []
    fmt = seed.submission
    if fmt == "proba_multi":
        cols = classes
        y_df = pd.DataFrame({c: (target == i).astype(int) for i, c in enumerate(cols)})
        sample_vals = {c: np.full(n, round(1.0 / len(cols), 6)) for c in cols}
    elif fmt == "proba_binary":
        cols = [target_name]
        y_df = pd.DataFrame({target_name: target.astype(int)})
        sample_vals = {target_name: np.full(n, 0.5)}
    elif fmt == "label":
        cols = [target_name]
        y_df = pd.DataFrame({target_name: [classes[int(v)] for v in target]})
        sample_vals = {target_name: [classes[0]] * n}
    else:
        cols = [target_name]
        y_df = pd.DataFrame({target_name: target.astype(float)})
        sample_vals = {target_name: np.zeros(n)}
    y_df.insert(0, "id", ids)
    public_target = y_df if fmt != "proba_multi" else pd.DataFrame(
        {"id": ids, "label": [classes[int(v)] for v in target]})
    train = pd.concat([X.iloc[:n_train], public_target.drop(columns="id").iloc[:n_train]], axis=1)
    test = X.iloc[n_train:].reset_index(drop=True)
    answers = y_df.iloc[n_train:].reset_index(drop=True)
    sample = pd.DataFrame({"id": ids, **sample_vals}).iloc[n_train:].reset_index(drop=True)
    return Candidate(seed=seed, domain=domain, train=train.reset_index(drop=True), test=test,
                     answers=answers, sample_submission=sample, target_columns=cols, rule=rule,
                     class_names=classes)
