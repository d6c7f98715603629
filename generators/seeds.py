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
from pydantic import BaseModel, ConfigDict, Field

from sandmle.core.errors import SandmleError

SEED_DIR = Path(__file__).parent / "seeds"
SubmissionFormat = Literal["label", "proba_binary", "proba_multi", "value"]


class SeedError(SandmleError):
    """A seed file is malformed or a seed name is unknown."""


class SeedTask(BaseModel):
    """One seed: what a generated task inherits (never the seed's own labels)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str = Field(description="seed family used for benchmarks: tabular-binary, image, ...")
    modality: Literal["tabular", "text", "image", "time_series"]
    task_type: Literal["binary", "multiclass", "regression", "forecasting"]
    metric: str
    submission: SubmissionFormat
    source: str = Field(description="offline loader name in sandmle.generators.sources")
    n_classes: tuple[int, int] = (2, 2)
    minority_share: tuple[float, float] = (0.2, 0.5)
    positive_target: bool = False  # regression target kept > 0 (needed by RMSLE)
    mlebench_id: str | None = None
    approximation: str | None = None
    summary: str = ""

    @property
    def structure_only(self) -> bool:
        return self.mlebench_id is not None


@lru_cache(maxsize=1)
def _load_all() -> dict[str, SeedTask]:
    seeds: dict[str, SeedTask] = {}
    for path in sorted(SEED_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in raw if isinstance(raw, list) else [raw]:
            try:
                seed = SeedTask(**item)
            except Exception as exc:  # noqa: BLE001 - re-raised with the file name
                raise SeedError(f"{path.name}: invalid seed {item.get('name')!r}: {exc}") from exc
            if seed.name in seeds:
                raise SeedError(f"{path.name}: duplicate seed name {seed.name!r}")
            seeds[seed.name] = seed
    return seeds


def all_seeds() -> list[SeedTask]:
    """Every shipped seed, real-data seeds first, in a stable order."""
    return sorted(_load_all().values(), key=lambda s: (s.structure_only, s.name))


def select_seeds(names: list[str] | None) -> list[SeedTask]:
    """The named seeds (all when ``names`` is empty); unknown names are a :class:`SeedError`."""
    table = _load_all()
    if not names:
        return all_seeds()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SeedError(f"unknown seed(s) {unknown}; known: {sorted(table)}")
    return [table[n] for n in names]
