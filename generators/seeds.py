"""Seed tasks: the "task DNA" of a real task that synthetic look-alikes keep.

A seed names a modality, task type, metric (a name known to :mod:`sandmle.graders.metrics`),
submission format and a *real-data source* whose feature structure the generated tasks reuse.
Seeds ship as YAML under ``generators/seeds/``; a file holds one mapping or a list of them.
Structure-only seeds (the 22 MLE-bench-lite competitions) carry no data of their own: they name
the closest offline source and say in ``approximation`` what the micro look-alike simplifies.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandmle.core.errors import SandmleError

SEED_DIR = Path(__file__).parent / "seeds"
SubmissionFormat = Literal["label", "proba_binary", "proba_multi", "value", "multilabel", "multi_value"]
Pitfall = Literal["missing", "high_cardinality", "imbalance", "duplicates", "date", "shift", "outliers"]
SYNTH_BY_MODALITY = {"tabular": "tabular", "text": "text", "image": "image", "audio": "audio",
                     "time_series": "series"}


class SeedError(SandmleError):
    """A seed file is malformed or a seed name is unknown."""


class SeedTask(BaseModel):
    """One seed: what a generated task inherits (never the seed's own labels)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str = Field(description="seed family used for benchmarks: tabular-binary, image, ...")
    modality: Literal["tabular", "text", "image", "time_series", "audio", "multimodal"]
    task_type: Literal["binary", "multiclass", "multilabel", "regression", "multitarget", "forecasting"]
    metric: str
    submission: SubmissionFormat
    source: str = Field(description="offline loader name in sandmle.generators.sources")
    synth: Literal["tabular", "text", "text_meta", "image", "audio", "series"] | None = Field(
        None, description="family synthesizer (default: by modality)")
    n_classes: tuple[int, int] = Field((2, 2), description="classes, or label columns of a multi-label task")
    n_targets: tuple[int, int] = Field((1, 1), description="numeric targets of a multi-target task")
    minority_share: tuple[float, float] = (0.2, 0.5)
    positive_target: bool = False  # regression target kept > 0 (needed by RMSLE)
    ordinal: bool = False  # graded classes 0..K-1 (QWK)
    image_size: tuple[int, int] = (32, 48)
    pitfalls: list[Pitfall] = Field(default_factory=list)
    mlebench_id: str | None = None
    approximation: str | None = None
    summary: str = ""

    @model_validator(mode="after")
    def _default_synth(self) -> "SeedTask":
        if self.synth is None:
            self.synth = SYNTH_BY_MODALITY.get(self.modality, "tabular")
        return self

    @property
    def structure_only(self) -> bool:
        return self.mlebench_id is not None


class SeedFamily(BaseModel):
    """A seed family: which real structure its tasks keep, what they simplify, what the oracle is."""

    model_config = ConfigDict(extra="forbid")

    name: str
    keeps: str
    simplifies: str
    oracle: str
    files: str = Field("", description="public files besides train.csv/test.csv/sample_submission.csv")


FAMILY_FILE = "families.yaml"


@lru_cache(maxsize=1)
def families() -> dict[str, SeedFamily]:
    """Every seed family by name (``seeds/families.yaml``)."""
    raw = yaml.safe_load((SEED_DIR / FAMILY_FILE).read_text(encoding="utf-8"))
    return {item["name"]: SeedFamily(**item) for item in raw}


@lru_cache(maxsize=1)
def _load_all() -> dict[str, SeedTask]:
    seeds: dict[str, SeedTask] = {}
    known = families()
    for path in sorted(SEED_DIR.glob("*.yaml")):
        if path.name == FAMILY_FILE:
            continue
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in raw if isinstance(raw, list) else [raw]:
            try:
                seed = SeedTask(**item)
            except Exception as exc:  # noqa: BLE001 - re-raised with the file name
                raise SeedError(f"{path.name}: invalid seed {item.get('name')!r}: {exc}") from exc
            if seed.name in seeds:
                raise SeedError(f"{path.name}: duplicate seed name {seed.name!r}")
            if seed.family not in known:
                raise SeedError(f"{path.name}: seed {seed.name!r} names unknown family {seed.family!r}; "
                                f"known: {sorted(known)}")
            seeds[seed.name] = seed
    return seeds


def all_seeds() -> list[SeedTask]:
    """Every shipped seed in a stable order that alternates families (so the first few
    candidates of a run, e.g. the quickstart's 8, already span many families)."""
    by_family: dict[str, list[SeedTask]] = {}
    for seed in sorted(_load_all().values(), key=lambda s: (s.structure_only, s.name)):
        by_family.setdefault(seed.family, []).append(seed)
    order = [f for f in families() if f in by_family]  # families.yaml's order
    out: list[SeedTask] = []
    while any(by_family.values()):
        for fam in order:
            if by_family[fam]:
                out.append(by_family[fam].pop(0))
    return out


def select_seeds(names: list[str] | None) -> list[SeedTask]:
    """The named seeds (all when ``names`` is empty); unknown names are a :class:`SeedError`."""
    table = _load_all()
    if not names:
        return all_seeds()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SeedError(f"unknown seed(s) {unknown}; known: {sorted(table)}")
    return [table[n] for n in names]
