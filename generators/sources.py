"""Offline real-data sources that seeds borrow feature structure from.

Every loader reads data that installs with the package stack (no network). Only the *features*
are reused (resampled, jittered, renamed); labels are always re-made by a hidden rule.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd

Loader = Callable[[], pd.DataFrame]


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return pd.DataFrame(bunch.data, columns=[f"x{i}" for i in range(bunch.data.shape[1])])


def _penguins() -> pd.DataFrame:
    try:
        from palmerpenguins import load_penguins
    except ImportError:  # optional: fall back to a structurally similar table from wine
        return _sklearn("wine").iloc[:, :4]
    df = load_penguins().drop(columns=["species", "year"], errors="ignore")
    return df  # numeric + categorical (island, sex) with real missing values


def _statsmodels(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    from statsmodels import datasets

    df = getattr(datasets, name).load_pandas().data
    df = df[columns] if columns else df.select_dtypes("number")
    return df.reset_index(drop=True)


def _gaussian() -> pd.DataFrame:
    # A fixed correlated Gaussian table for seeds whose real data cannot ship (MLE-bench look-alikes).
    rng = np.random.default_rng(20260404)
    cov = 0.35 * np.ones((12, 12)) + 0.65 * np.eye(12)
    return pd.DataFrame(rng.multivariate_normal(np.zeros(12), cov, size=2000),
                        columns=[f"x{i}" for i in range(12)])


@lru_cache(maxsize=1)
def descr_vocabulary() -> tuple[str, ...]:
    """Lower-case words (4-12 letters) of the scikit-learn dataset DESCR documents, sorted."""
    from sklearn import datasets

    text = " ".join(getattr(datasets, f"load_{n}")().DESCR
                    for n in ("iris", "wine", "breast_cancer", "diabetes", "digits", "linnerud"))
    words = {w.lower() for w in re.findall(r"[A-Za-z]{4,12}", text)}
    return tuple(sorted(words))


def _descr_text() -> pd.DataFrame:
    return pd.DataFrame({"word": list(descr_vocabulary())})


def _digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    df = pd.DataFrame(bunch.data / 16.0, columns=[f"px{i}" for i in range(64)])
    df["digit"] = bunch.target  # used only to build the hidden class regrouping
    return df


def _crystal() -> pd.DataFrame:
    # nomad2018's column structure (space group, atom count, Al/Ga/In fractions, lattice vectors
    # and angles) as a fixed synthetic table: the competition's own data cannot ship.
    rng = np.random.default_rng(20180101)
    n = 2400
    groups = np.array(["12", "33", "167", "194", "206", "227"], dtype=object)
    frac = rng.dirichlet([1.2, 1.0, 0.8], n)
    atoms = rng.choice([10, 20, 30, 40, 60, 80], n, p=[0.05, 0.1, 0.2, 0.25, 0.2, 0.2])
    vec = np.abs(rng.normal([8.0, 8.0, 12.0], [3.0, 2.5, 5.0], (n, 3))) + 3.0
    angles = np.column_stack([rng.normal(90, 2, n), rng.normal(90, 8, n), rng.choice([90.0, 120.0], n)])
    df = pd.DataFrame({"spacegroup": rng.choice(groups, n), "number_of_total_atoms": atoms.astype(float),
                       "percent_atom_al": frac[:, 0], "percent_atom_ga": frac[:, 1], "percent_atom_in": frac[:, 2]})
    for i in range(3):
        df[f"lattice_vector_{i + 1}"] = vec[:, i]
    for i, name in enumerate(("alpha", "beta", "gamma")):
        df[f"lattice_angle_{name}"] = angles[:, i]
    return df


# Media seeds draw their content (generators/media.py); these names only mark where it comes from.
MEDIA_SOURCES = {"sklearn_sample_images": "scikit-learn's sample photographs as textures + drawn shapes",
                 "sklearn_digits": "scikit-learn's digits as glyphs in drawn scenes",
                 "synthetic_calls": "synthesised calls (tones, chirps, trills) over noise"}

LOADERS: dict[str, Loader] = {
    "sklearn_breast_cancer": lambda: _sklearn("breast_cancer"),
    "sklearn_wine": lambda: _sklearn("wine"),
    "sklearn_iris": lambda: _sklearn("iris"),
    "sklearn_diabetes": lambda: _sklearn("diabetes"),
    "sklearn_digits": _digits,
    "sklearn_descr_text": _descr_text,
    "palmer_penguins": _penguins,
    "statsmodels_fair": lambda: _statsmodels("fair"),
    "statsmodels_co2": lambda: _statsmodels("co2").interpolate().bfill(),
    "statsmodels_sunspots": lambda: _statsmodels("sunspots", ["SUNACTIVITY"]),
    "statsmodels_macrodata": lambda: _statsmodels("macrodata", ["realgdp", "cpi", "unemp", "infl"]),
    "synthetic_gaussian": _gaussian,
    "synthetic_crystal": _crystal,
}


@lru_cache(maxsize=None)
def load_source(name: str) -> pd.DataFrame:
    """The named source as a DataFrame (cached; callers must not mutate it)."""
    if name not in LOADERS:
        raise KeyError(f"unknown data source {name!r}; known: {sorted(LOADERS)}")
    return LOADERS[name]()
