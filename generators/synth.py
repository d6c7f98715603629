"""Procedural data synthesis: a hidden rule over real or drawn structure, per seed family.

``synthesize(seed, rng, n_train, n_test, noise)`` returns a :class:`Candidate`: public frames
(train, test, sample submission), public files (``train/<id>.png``, ``test/<id>.wav``, ...),
hidden answers, the oracle's predictions and the hidden rule. The rule only ever goes to private
provenance (``prepared/private/rule.json``); public files carry no trace of it. Every random
choice comes from the caller's ``numpy.random.Generator``, so a seed reproduces a task exactly.

Each family module (``synth_tabular``, ``synth_text``, ``synth_media``, ``synth_series``) returns
:class:`Parts` (per-row public columns, per-row media, targets with their oracle); this module
assembles them into the submission format the seed names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from .configs import NoiseConfig
from .domains import DOMAINS, Domain, domains_for, label_kind_for, name_problems, pick_domain

DOMAIN_NAMES = frozenset(d["name"] for d in DOMAINS)
from .rules import Targets
from .seeds import SeedTask


@dataclass
class Parts:
    """What a family synthesizer makes: rows in order (the first ``n_train`` are training rows)."""

    X: pd.DataFrame                      # public per-row columns (no id, no target)
    targets: Targets
    rule: dict[str, Any]
    n_train: int
    n_outputs: int = 1                   # classes, labels or targets
    media: list[bytes] | None = None     # one file per row (image or sound)
    media_ext: str = ""
    media_note: str = ""                 # e.g. "32x32 RGB PNG images"
    pitfalls: list[str] = field(default_factory=list)
    duplicate_rows: list[int] = field(default_factory=list)  # training rows copied again (new ids)
    # The signals the rule leaves, as features (n, m) in row order: what a careful solution can
    # derive from the data (an interaction, a per-group effect, a band energy, a shape count).
    # Only the generator's "informed" reference solution reads them (generators/ladder.py).
    derived: np.ndarray | None = None


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
    files: dict[str, bytes] = field(default_factory=dict)  # extra public files by relative path
    oracle: pd.DataFrame | None = None  # the noiseless rule's submission (never public)
    label_columns: list[str] = field(default_factory=list)  # target column(s) of train.csv
    pitfalls: list[str] = field(default_factory=list)
    media_note: str = ""
    derived_train: np.ndarray | None = None  # Parts.derived of the training rows (never public)
    derived_test: np.ndarray | None = None
    informed_y: np.ndarray | None = None     # training targets in derived_train's row order

    @property
    def signature(self) -> str:
        """Near-duplicate key: the same rule over the same columns gives the same signature."""
        key = {"seed": self.seed.name, "rule": self.rule.get("core"),
               "columns": sorted(c for c in self.train.columns)}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def name_problems(self) -> list[str]:
        """Names that contradict each other or the task's domain (see :func:`domains.name_problems`).
        LLM-written candidates (``multiagent``) name a domain of their own: nothing to check here."""
        if self.domain.name not in DOMAIN_NAMES:
            return []
        columns = [c for c in self.test.columns if c != self.id_column]
        return name_problems(self.domain, columns=columns, classes=self.class_names,
                             targets=list(dict.fromkeys([*self.target_columns, *self.train_columns])),
                             task_type=self.seed.task_type, ordinal=self.seed.ordinal)

    @property
    def train_columns(self) -> list[str]:
        """The target column(s) as ``train.csv`` holds them."""
        if self.label_columns:
            return self.label_columns
        if self.label_column:
            return [self.label_column]
        return ["label"] if self.class_names and self.seed.submission == "proba_multi" else self.target_columns[:1]


def synthesize(seed: SeedTask, rng: np.random.Generator, n_train: int, n_test: int,
               noise: NoiseConfig | None = None) -> Candidate:
    """One candidate task from ``seed`` with ``n_train`` training and ``n_test`` test rows."""
    from .synth_media import audio_parts, image_parts
    from .synth_series import series_parts
    from .synth_tabular import tabular_parts
    from .synth_text import text_meta_parts, text_parts

    noise = noise or NoiseConfig()
    pool = domains_for(seed.modality)
    base = pool[int(rng.integers(len(pool)))]  # one domain names everything, documents included
    maker = {"tabular": tabular_parts, "text": text_parts, "text_meta": text_meta_parts,
             "image": image_parts, "audio": audio_parts, "series": series_parts}[seed.synth]
    if seed.synth in ("text", "text_meta"):
        parts = maker(seed, rng, n_train, n_test, noise, terms=tuple(base["terms"]), domain=base["name"])
    else:
        parts = maker(seed, rng, n_train, n_test, noise)
    n_cols = parts.X.shape[1]
    domain = pick_domain(rng, n_cols, max(parts.n_outputs, 2), seed.modality,
                         label_kind_for(seed.task_type, seed.submission, seed.modality), base=base)
    if seed.synth in ("tabular", "text_meta"):  # generic feature names get the domain's names
        rename = dict(zip(parts.X.columns, domain.columns))
        parts.X = parts.X.rename(columns={k: v for k, v in rename.items() if k.startswith("f_")})
    return assemble(seed, rng, domain, parts)


def make_ids(rng: np.random.Generator, n: int, hexadecimal: bool) -> np.ndarray:
    """Row ids that say nothing about the split or the label: random ints or hex file stems."""
    if not hexadecimal:
        return rng.choice(np.arange(10_000, 10_000 + 20 * n), n, replace=False)
    digits = rng.integers(0, 16, size=(n, 10))
    digits[:, 0] = rng.integers(10, 16, n)  # a letter first: never read back as a number
    ids = np.array(["".join("0123456789abcdef"[d] for d in row) for row in digits], dtype=object)
    while len(set(ids)) < n:  # collisions are astronomically rare; keep ids unique anyway
        ids = make_ids(rng, n, True)
    return ids


def _columns(seed: SeedTask, domain: Domain, K: int) -> tuple[list[str], list[str]]:
    """(class or label names, submission target columns)."""
    fmt = seed.submission
    if fmt == "multi_value":
        names = list(domain.targets[:K]) or [f"{domain.target}_{k}" for k in range(K)]
        return [], names
    classes = list(domain.labels[:K]) if K > 1 or fmt != "value" else []
    if seed.ordinal:  # graded classes (QWK): names must sort in grade order
        classes = [str(k) for k in range(K)]
    if fmt == "multilabel":
        return classes, classes
    if fmt == "proba_multi":
        return classes, classes
    if fmt == "proba_binary":
        return [0, 1], [f"is_{domain.event}"]
    if fmt == "label":
        return classes, ["label"]
    return [], [domain.target]


def assemble(seed: SeedTask, rng: np.random.Generator, domain: Domain, parts: Parts) -> Candidate:
    """Frames, files and oracle in the seed's submission format."""
    X, t, n_train = parts.X.reset_index(drop=True), parts.targets, parts.n_train
    fmt, K = seed.submission, parts.n_outputs
    n = len(X)
    classes, cols = _columns(seed, domain, K)
    y, oracle = np.asarray(t.y), np.asarray(t.oracle)
    if fmt in ("multilabel", "proba_multi") and y.ndim == 1:  # one-hot of a class index
        y = np.eye(K, dtype=int)[y] if fmt == "multilabel" else y
    if fmt == "proba_binary":
        answers_vals, train_vals = {cols[0]: y.astype(int)}, {cols[0]: y.astype(int)}
        sample_vals, oracle_vals = {cols[0]: np.full(n, 0.5)}, {cols[0]: oracle}
    elif fmt == "label":
        names = np.array(classes if len(classes) >= 2 else [str(c) for c in range(2)], dtype=object)
        best = oracle.argmax(1) if oracle.ndim == 2 else (oracle > 0.5).astype(int)
        answers_vals = train_vals = {"label": names[y.astype(int)]}
        sample_vals, oracle_vals = {"label": np.full(n, names[0], dtype=object)}, {"label": names[best]}
    elif fmt == "proba_multi":
        answers_vals = {c: (y == k).astype(int) for k, c in enumerate(cols)}
        train_vals = {"label": np.array(cols, dtype=object)[y.astype(int)]}
        sample_vals = {c: np.full(n, round(1.0 / K, 6)) for c in cols}
        oracle_vals = {c: oracle[:, k] for k, c in enumerate(cols)}
    elif fmt == "multilabel":
        answers_vals = train_vals = {c: y[:, k].astype(int) for k, c in enumerate(cols)}
        sample_vals = {c: np.full(n, 0.5) for c in cols}
        oracle_vals = {c: oracle[:, k] for k, c in enumerate(cols)}
    elif fmt == "multi_value":
        answers_vals = train_vals = {c: y[:, k].astype(float) for k, c in enumerate(cols)}
        sample_vals = {c: np.zeros(n) for c in cols}
        oracle_vals = {c: oracle[:, k] for k, c in enumerate(cols)}
    else:
        answers_vals = train_vals = {cols[0]: y.astype(float)}
        sample_vals, oracle_vals = {cols[0]: np.zeros(n)}, {cols[0]: oracle}
    ids = make_ids(rng, n + len(parts.duplicate_rows), parts.media is not None)
    extra_ids, ids = ids[n:], ids[:n]
    frame = lambda vals: pd.DataFrame({"id": ids, **vals})  # noqa: E731
    train = pd.concat([frame({**{c: X[c].to_numpy() for c in X.columns}, **train_vals}).iloc[:n_train]], axis=0)
    if parts.duplicate_rows:  # the same rows again under new ids, shuffled in
        dup = train.iloc[parts.duplicate_rows].copy()
        dup["id"] = extra_ids
        train = pd.concat([train, dup]).sample(frac=1.0, random_state=int(rng.integers(2 ** 31)))
    test = frame({c: X[c].to_numpy() for c in X.columns}).iloc[n_train:]
    files: dict[str, bytes] = {}
    if parts.media is not None:
        for i, data in enumerate(parts.media):
            files[f"{'train' if i < n_train else 'test'}/{ids[i]}.{parts.media_ext}"] = data
        for j, i in enumerate(parts.duplicate_rows):
            files[f"train/{extra_ids[j]}.{parts.media_ext}"] = parts.media[i]
    label_cols = list(train_vals)
    reset = lambda df: df.reset_index(drop=True)  # noqa: E731
    derived = {}
    if parts.derived is not None:
        d = np.asarray(parts.derived, float).reshape(n, -1)
        derived = {"derived_train": d[:n_train], "derived_test": d[n_train:],
                   "informed_y": np.column_stack([np.asarray(v)[:n_train] for v in train_vals.values()])}
    return Candidate(seed=seed, domain=domain, train=reset(train), test=reset(test),
                     answers=reset(frame(answers_vals).iloc[n_train:]),
                     sample_submission=reset(frame(sample_vals).iloc[n_train:]), target_columns=cols,
                     rule=parts.rule, class_names=[str(c) for c in classes] if fmt != "proba_binary" else [],
                     files=files, oracle=reset(frame(oracle_vals).iloc[n_train:]), label_columns=label_cols,
                     pitfalls=parts.pitfalls, media_note=parts.media_note, **derived)
