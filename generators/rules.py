"""Hidden rules and the targets they make, with the *oracle* prediction of each target.

Every procedural family reduces its data to a matrix of rule inputs ``A`` (standardized real
features, drawn image/audio attributes, metadata): a :class:`HiddenRule` maps the observable
inputs to noiseless scores ``s`` (one column per output), and :func:`make_targets` turns the
scores into targets of the task's kind with the seed's noise (an unobserved cause, score noise,
flipped labels). It also returns the oracle: the prediction the noiseless rule gives, in the
submission's own format (class probabilities where the metric scores probabilities). It is what
``task.yaml`` records as ``difficulty.oracle_score``: a ceiling the reference solvers are placed
against, not a score any agent must reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, softmax

TRANSFORMS = ("linear", "square", "tanh", "step")
GUMBEL_SCALE = 0.4  # multi-class noise: argmax(s + Gumbel(0, 0.4)) is softmax(s / 0.4) exactly


def draw(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    """A uniform draw from a (low, high) range; the low end when the range is empty."""
    return float(rng.uniform(*lo_hi)) if lo_hi[1] > lo_hi[0] else float(lo_hi[0])


def draw_int(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    """An integer draw from an inclusive (low, high) range."""
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def standardize(a: np.ndarray) -> np.ndarray:
    """Column-wise zero mean, unit variance (constant columns stay centred)."""
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _transform(kind: str, x: np.ndarray, cut: float) -> np.ndarray:
    return {"linear": x, "square": x ** 2 - 1.0, "tanh": np.tanh(2 * x),
            "step": (x > cut).astype(float) * 2 - 1}[kind]


@dataclass
class HiddenRule:
    """``s = sum_j w_j * g_j(a_j) + c * a_p * a_q`` over a few relevant standardized inputs."""

    relevant: list[int]
    transforms: list[str]
    weights: np.ndarray  # (len(relevant), outputs)
    cuts: np.ndarray
    interaction: float

    @classmethod
    def sample(cls, rng: np.random.Generator, n_inputs: int, outputs: int, k: tuple[int, int] = (2, 5),
               relevant: list[int] | None = None, transforms: tuple[str, ...] = TRANSFORMS,
               interaction: bool = True) -> "HiddenRule":
        """A random rule over ``n_inputs`` inputs (``relevant`` fixes which inputs matter)."""
        if relevant is None:
            k_rel = int(rng.integers(min(k[0], n_inputs), min(k[1], n_inputs) + 1))
            relevant = [int(i) for i in rng.permutation(n_inputs)[:k_rel]]
        weights = rng.normal(0, 1, (len(relevant), outputs))
        weights += np.sign(weights) * 0.3  # no near-zero weight: every relevant input matters
        kinds = [str(rng.choice(transforms)) for _ in relevant]
        inter = float(rng.normal(0, 0.8)) if len(relevant) >= 2 and interaction else 0.0
        return cls(list(relevant), kinds, weights, rng.normal(0, 0.5, len(relevant)), inter)

    def scores(self, A: np.ndarray) -> np.ndarray:
        """Noiseless scores (n, outputs) of standardized inputs ``A``."""
        s = np.zeros((A.shape[0], self.weights.shape[1]))
        for j, (col, kind) in enumerate(zip(self.relevant, self.transforms)):
            s += np.outer(_transform(kind, A[:, col], self.cuts[j]), self.weights[j])
        if len(self.relevant) >= 2:
            s += self.interaction * (A[:, self.relevant[0]] * A[:, self.relevant[1]])[:, None]
        return s

    def basis(self, A: np.ndarray) -> np.ndarray:
        """The rule's derived features (n, relevant [+1]): each relevant input through its transform,
        and the interaction product. A model linear in these can learn the rule: the ladder's
        "right derived features" rung (:mod:`~sandmle.generators.ladder`)."""
        cols = [_transform(kind, A[:, col], self.cuts[j]) for j, (col, kind) in
                enumerate(zip(self.relevant, self.transforms))]
        if len(self.relevant) >= 2 and self.interaction:
            cols.append(A[:, self.relevant[0]] * A[:, self.relevant[1]])
        return np.column_stack(cols)

    def describe(self) -> dict[str, Any]:
        """The rule for ``private/rule.json`` (never public)."""
        return {"relevant": self.relevant, "transforms": self.transforms,
                "weights": np.round(self.weights, 3).tolist(), "cuts": np.round(self.cuts, 6).tolist(),
                "interaction": round(self.interaction, 3)}


@dataclass
class Targets:
    """Targets made from scores: ``y`` as the task stores it and the oracle's prediction."""

    y: np.ndarray       # (n,) ints/floats, or (n, K) for multi-label / multi-target
    oracle: np.ndarray  # same layout as the submission values: probabilities, labels or values
    info: dict[str, Any]


def make_targets(kind: str, rng: np.random.Generator, s_obs: np.ndarray, *, latent_weight: float = 0.0,
                 label_noise: float = 0.0, target_noise: float = 0.25, shares: tuple[float, float] = (0.3, 0.5),
                 positive: bool = False, ordinal: bool = False, class_prior: np.ndarray | None = None,
                 signal: float = 1.0, n_classes: int | None = None) -> Targets:
    """Targets of ``kind`` (binary, multiclass, multilabel, regression, multitarget) from noiseless
    observable scores ``s_obs`` (n, K), rescaled to an overall std of ``signal``. ``latent_weight``
    scales an unobserved N(0, 1) cause that no model can see; ``label_noise`` is the share of labels
    redrawn at random; ``class_prior`` skews multi-class frequencies (class imbalance); an
    ``ordinal`` task cuts its one score column into ``n_classes`` ordered grades."""
    n, K = s_obs.shape
    s_obs = (s_obs - s_obs.mean(axis=0)) * (signal / (float(s_obs.std()) or 1.0))
    if class_prior is not None and kind == "multiclass" and not ordinal:
        s_obs = s_obs + GUMBEL_SCALE * np.log(class_prior)[None, :K]
    latent = rng.normal(0, 1, n)
    info: dict[str, Any] = {"latent_weight": round(latent_weight, 3)}
    if kind in ("regression", "multitarget"):
        ys, oracles = [], []
        for k in range(K if kind == "multitarget" else 1):
            y, o = _regression(rng, s_obs[:, k], latent_weight * latent, target_noise, positive, info, k)
            ys.append(y)
            oracles.append(o)
        stack = (lambda v: np.stack(v, axis=1)) if kind == "multitarget" else (lambda v: v[0])
        return Targets(stack(ys), stack(oracles), info)
    if kind == "multiclass":
        s = s_obs + latent_weight * latent[:, None]  # the same shift for every class: argmax unchanged
        if ordinal:  # ordered grades (QWK): cut one score into K bands
            return _ordinal(rng, s_obs[:, 0], latent_weight * latent, label_noise, n_classes or K, info)
        y = np.argmax(s + rng.gumbel(0, GUMBEL_SCALE, size=(n, K)), axis=1)
        proba = softmax(s_obs / GUMBEL_SCALE, axis=1)
        y, proba = _flip(rng, y, proba, label_noise, K, info)
        return Targets(y, proba, info)
    columns = K if kind == "multilabel" else 1
    ys, probas = [], []
    for k in range(columns):
        share = draw(rng, shares)
        s = s_obs[:, k] + latent_weight * latent
        sd_noise = 0.3 * (s.std() or 1.0)
        score = s + rng.normal(0, sd_noise, n)
        cut = float(np.quantile(score, 1 - share))
        y = (score > cut).astype(int)
        p1 = ndtr((s_obs[:, k] - cut) / np.sqrt(latent_weight ** 2 + sd_noise ** 2))
        y, p = _flip(rng, y, np.stack([1 - p1, p1], axis=1), label_noise, 2, info)
        ys.append(y)
        probas.append(p[:, 1])
        info.setdefault("positive_share", []).append(round(share, 4))
    if kind == "multilabel":
        return Targets(np.stack(ys, axis=1), np.stack(probas, axis=1), info)
    return Targets(ys[0], probas[0], info)


def _flip(rng: np.random.Generator, y: np.ndarray, proba: np.ndarray, rate: float, K: int,
          info: dict) -> tuple[np.ndarray, np.ndarray]:
    mask = rng.random(len(y)) < rate
    y = y.copy()
    y[mask] = rng.integers(0, K, int(mask.sum()))
    info["label_noise"] = round(rate, 4)
    return y, (1 - rate) * proba + rate / K


def _ordinal(rng: np.random.Generator, s_obs: np.ndarray, hidden: np.ndarray, rate: float, K: int,
             info: dict) -> Targets:
    s = s_obs + hidden
    sd_noise = 0.3 * (s.std() or 1.0)
    score = s + rng.normal(0, sd_noise, len(s))
    shares = rng.dirichlet(np.full(K, 3.0))
    cuts = np.quantile(score, np.cumsum(shares)[:-1])
    y = np.digitize(score, cuts)
    sd = np.sqrt(np.var(hidden) + sd_noise ** 2) or 1.0
    cdf = ndtr((cuts[None, :] - s_obs[:, None]) / sd)  # P(score < cut_j)
    proba = np.diff(np.concatenate([np.zeros((len(s), 1)), cdf, np.ones((len(s), 1))], axis=1), axis=1)
    info["grade_shares"] = np.round(shares, 3).tolist()
    y, proba = _flip(rng, y, proba, rate, K, info)
    return Targets(y, proba, info)


def _regression(rng: np.random.Generator, s_obs: np.ndarray, hidden: np.ndarray, ratio: float,
                positive: bool, info: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = s_obs + hidden
    y = s + rng.normal(0, ratio * (s.std() or 1.0), len(s))
    scale, offset = float(rng.choice([1.0, 3.0, 10.0, 40.0])), float(rng.uniform(-5, 50))
    if positive:  # log-normal targets (RMSLE tasks); the oracle is the noiseless median
        mu, sd = float(y.mean()), float(y.std() or 1.0)
        spread = float(rng.uniform(0.3, 0.7))
        y, oracle = (np.exp(spread * (v - mu) / sd) * scale for v in (y, s_obs))
    else:
        y, oracle = y * scale + offset, s_obs * scale + offset
    info.setdefault("targets", []).append({"scale": scale, "offset": round(offset, 3),
                                           "noise_ratio": round(ratio, 4), "positive": positive, "k": k})
    return np.round(y, 4), oracle


def sample_labels(kind: str, rng: np.random.Generator, n: int, K: int, shares: tuple[float, float],
                  correlation: float = 0.5) -> np.ndarray:
    """Clean labels drawn first (families whose content is made *from* the label: text, sound).
    Multi-label columns share a common factor, so labels co-occur as toxicity labels do."""
    if kind == "binary":
        return (rng.random(n) < draw(rng, shares)).astype(int)
    if kind == "multiclass":
        return rng.choice(K, n, p=rng.dirichlet(np.full(K, 4.0)))
    common = rng.normal(0, 1, n)
    cols = []
    for _ in range(K):
        z = correlation * common + np.sqrt(1 - correlation ** 2) * rng.normal(0, 1, n)
        cols.append((z > np.quantile(z, 1 - draw(rng, shares))).astype(int))
    return np.stack(cols, axis=1)


def noisy_labels(kind: str, rng: np.random.Generator, y_clean: np.ndarray, K: int, rate: float) -> Targets:
    """Annotation noise on clean labels; the oracle predicts the clean label (probabilities that
    account for the noise rate)."""
    info: dict[str, Any] = {}
    if kind == "multilabel":
        ys, ps = [], []
        for k in range(y_clean.shape[1]):
            y, p = _flip(rng, y_clean[:, k], np.eye(2)[y_clean[:, k]], rate, 2, info)
            ys.append(y)
            ps.append(p[:, 1])
        return Targets(np.stack(ys, axis=1), np.stack(ps, axis=1), info)
    classes = 2 if kind == "binary" else K
    y, p = _flip(rng, y_clean, np.eye(classes)[y_clean], rate, classes, info)
    return Targets(y, p[:, 1] if kind == "binary" else p, info)
