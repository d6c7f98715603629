"""Aggregates results rows per (task set, scaffold, policy), MLE-bench style.

Rates are computed per seed (over the seed's episodes, i.e. tasks) and then averaged over seeds,
with the standard error of that mean over seeds (``std(ddof=1) / sqrt(n_seeds)``; undefined with
one seed), following MLE-bench's "mean ± SEM of Any-Medal over seeds". A failed episode counts as
an episode without a valid submission.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

RATE_FIELDS = ("valid_submission", "above_median", "bronze_medal", "silver_medal", "gold_medal",
               "any_medal")
GroupKey = tuple[str, str, str]  # task set, scaffold, policy
#: Best tier an episode reached, best first; every episode is in exactly one (they stack to 100%).
TIERS = ("gold", "silver", "bronze", "above median", "valid", "invalid")


def row_tier(row: dict[str, Any]) -> str:
    """The best tier of one results row (a failed episode is ``invalid``)."""
    if row.get("status", "ok") != "ok" or not row.get("grade_valid_submission"):
        return "invalid"
    for name in ("gold", "silver", "bronze"):
        if row.get(f"grade_{name}_medal"):
            return name
    return "above median" if row.get("grade_above_median") else "valid"


@dataclass
class Stat:
    """A mean with its standard error over seeds (``sem`` None when there is one seed)."""

    mean: float | None
    sem: float | None = None
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sem": self.sem, "n": self.n}


@dataclass
class GroupSummary:
    """Every aggregate of one (task set, scaffold, policy) group."""

    task_set: str
    scaffold: str
    policy: str
    episodes: int
    failed: int
    seeds: list[int]
    tasks: int
    rates: dict[str, Stat]
    reward: Stat
    reward_parts: dict[str, float]
    human_rank: Stat
    tiers: dict[str, Stat]
    steps: float
    tokens: float
    cost_usd: float
    wall_s: float
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> GroupKey:
        return (self.task_set, self.scaffold, self.policy)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("rates", "reward", "human_rank", "tiers")}
        d["rates"] = {k: s.to_dict() for k, s in self.rates.items()}
        d["tiers"] = {k: s.to_dict() for k, s in self.tiers.items()}
        d["reward"] = self.reward.to_dict()
        d["human_rank"] = self.human_rank.to_dict()
        return d


def mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def mean_sem(values: list[float]) -> Stat:
    """Mean and standard error of the mean of ``values``."""
    if not values:
        return Stat(None, None, 0)
    m = sum(values) / len(values)
    if len(values) < 2:
        return Stat(m, None, len(values))
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return Stat(m, math.sqrt(var / len(values)), len(values))


def over_seeds(rows: list[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]) -> Stat:
    """Per-seed mean of ``value`` (rows where it is None are left out), then mean ± SEM over seeds."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        v = value(row)
        if v is not None:
            per_seed[row["seed"]].append(float(v))
    return mean_sem([sum(v) / len(v) for _, v in sorted(per_seed.items()) if v])


def _flag(name: str) -> Callable[[dict[str, Any]], float]:
    return lambda row: 1.0 if row.get(f"grade_{name}") else 0.0


def summarize_group(rows: list[dict[str, Any]]) -> GroupSummary:
    first = rows[0]
    parts: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for k, v in (row.get("reward_parts") or {}).items():
            parts[k].append(float(v))
    totals = {f"total_{name}": sum(bool(r.get(f"grade_{name}")) for r in rows) for name in RATE_FIELDS}
    totals["total_runs"] = len(rows)
    totals["total_runs_with_submissions"] = sum(bool(r.get("grade_submission_exists")) for r in rows)
    return GroupSummary(
        task_set=first["task_set"], scaffold=first["scaffold"], policy=first["policy"],
        episodes=len(rows), failed=sum(r.get("status") != "ok" for r in rows),
        seeds=sorted({r["seed"] for r in rows}), tasks=len({r["task_id"] for r in rows}),
        rates={name: over_seeds(rows, _flag(name)) for name in RATE_FIELDS},
        reward=over_seeds(rows, lambda r: r.get("reward_total")),
        reward_parts={k: sum(v) / len(v) for k, v in sorted(parts.items())},
        human_rank=over_seeds(rows, lambda r: r.get("grade_human_rank")),
        tiers={t: over_seeds(rows, lambda r, t=t: 1.0 if row_tier(r) == t else 0.0) for t in TIERS},
        steps=mean(r.get("steps", 0) for r in rows) or 0.0,
        tokens=mean(r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in rows) or 0.0,
        cost_usd=sum(r.get("cost_usd", 0.0) for r in rows),
        wall_s=mean(r.get("wall_s", 0.0) for r in rows) or 0.0,
        totals=totals,
    )


def group_rows(rows: Iterable[dict[str, Any]]) -> dict[GroupKey, list[dict[str, Any]]]:
    groups: dict[GroupKey, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task_set"], row["scaffold"], row["policy"])].append(row)
    return dict(groups)


def summarize(rows: Iterable[dict[str, Any]]) -> list[GroupSummary]:
    """One summary per (task set, scaffold, policy), in a stable order."""
    return [summarize_group(g) for _, g in sorted(group_rows(rows).items())]


@dataclass
class Difference:
    """``b - a`` for one metric of one group, with the combined standard error."""

    key: GroupKey
    metric: str
    a: float | None
    b: float | None
    diff: float | None
    se: float | None


def _metric_stats(s: GroupSummary) -> dict[str, Stat]:
    return {**{f"{k}_rate": v for k, v in s.rates.items()}, "reward": s.reward,
            "human_rank": s.human_rank}


def compare(a: list[GroupSummary], b: list[GroupSummary]) -> list[Difference]:
    """Differences between two runs for every group present in both (``key`` is b's group)."""
    by_key = {s.key: s for s in a}
    # Before/after training the policy label usually differs: pair groups on (task set, scaffold)
    # when that pair identifies one group in each run.
    by_pair: dict[tuple[str, str], list[GroupSummary]] = {}
    for s in a:
        by_pair.setdefault((s.task_set, s.scaffold), []).append(s)
    pairs_b = [(s.task_set, s.scaffold) for s in b]
    out = []
    for sb in b:
        sa = by_key.get(sb.key)
        pair = (sb.task_set, sb.scaffold)
        if sa is None and len(by_pair.get(pair, [])) == 1 and pairs_b.count(pair) == 1:
            sa = by_pair[pair][0]
        if sa is None:
            continue
        stats_a, stats_b = _metric_stats(sa), _metric_stats(sb)
        for metric, stat_b in stats_b.items():
            stat_a = stats_a[metric]
            diff = (stat_b.mean - stat_a.mean
                    if stat_a.mean is not None and stat_b.mean is not None else None)
            se = (math.sqrt(stat_a.sem ** 2 + stat_b.sem ** 2)
                  if stat_a.sem is not None and stat_b.sem is not None else None)
            out.append(Difference(sb.key, metric, stat_a.mean, stat_b.mean, diff, se))
    return out
