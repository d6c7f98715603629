"""MLE-bench medal rules and MLE-Dojo's HumanRank position score.

Medal positions follow MLE-bench's ``grade_helpers.rank_score``: with N leaderboard rows
(best first, 1-indexed positions), N<100 -> gold/silver/bronze at max(1, floor(0.1N / 0.2N /
0.4N)); 100<=N<250 -> 10, floor(0.2N), floor(0.4N); 250<=N<1000 -> 10+floor(0.002N), 50, 100;
N>=1000 -> 10+floor(0.002N), floor(0.05N), floor(0.1N). The median is the leaderboard median,
the direction is ``scores[0] < scores[-1]``, medals are exclusive, ``above_median`` is strict and
scores are rounded to 5 decimals before comparing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from sandmle.core.task import MedalThresholds

ROUND = 5  # MLE-bench compares scores rounded to 5 decimals


def medal_positions(n: int) -> tuple[int, int, int]:
    """(gold, silver, bronze) 1-indexed leaderboard positions for ``n`` teams."""
    if n < 1:
        raise ValueError("a leaderboard needs at least one score")
    if n < 100:
        return max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 250:
        return 10, int(n * 0.2), int(n * 0.4)
    if n < 1000:
        return 10 + int(n * 0.002), 50, 100
    return 10 + int(n * 0.002), int(n * 0.05), int(n * 0.1)


def leaderboard_direction(scores: list[float]) -> bool:
    """``lower_is_better`` inferred from a best-first leaderboard, as MLE-bench does."""
    return scores[0] < scores[-1]


def thresholds_from_leaderboard(scores: list[float]) -> MedalThresholds:
    """Gold/silver/bronze scores at MLE-bench's positions and the leaderboard median."""
    clean = [float(s) for s in scores if s is not None and not math.isnan(float(s))]
    g, s, b = medal_positions(len(clean))
    return MedalThresholds(gold=clean[g - 1], silver=clean[s - 1], bronze=clean[b - 1],
                           median=float(statistics.median(clean)))


@dataclass(frozen=True)
class MedalResult:
    """Which medals a score earns (exclusive) and where it stands against the median."""

    gold: bool
    silver: bool
    bronze: bool
    above_median: bool
    at_or_above_median: bool

    @property
    def any_medal(self) -> bool:
        return self.gold or self.silver or self.bronze


def medals(score: float, th: MedalThresholds, lower_is_better: bool) -> MedalResult:
    """MLE-bench's comparisons (5-decimal rounding; strict above-median, medals at-or-better)."""
    r = lambda x: round(float(x), ROUND)  # noqa: E731
    s = r(score)
    reach = (lambda t: s <= r(t)) if lower_is_better else (lambda t: s >= r(t))
    gold = reach(th.gold)
    silver = not gold and reach(th.silver)
    bronze = not gold and not silver and reach(th.bronze)
    above = s < r(th.median) if lower_is_better else s > r(th.median)
    return MedalResult(gold, silver, bronze, above, above or s == r(th.median))


def position_score(score: float, board: list[float], lower_is_better: bool) -> float:
    """MLE-Dojo's ``(N - p + 1) / N``: p is the 1-based position of the first board score that
    ``score`` matches or beats in a best-first board (N + 1 when it beats none)."""
    ordered = sorted(board, reverse=not lower_is_better)
    n = len(ordered)
    if n == 0:
        raise ValueError("empty leaderboard")
    beats = (lambda b: score <= b) if lower_is_better else (lambda b: score >= b)
    p = next((i + 1 for i, b in enumerate(ordered) if beats(b)), n + 1)
    return (n - p + 1) / n


def human_rank(score: float, boards: list[list[float]], lower_is_better: bool) -> float | None:
    """Position score averaged over the leaderboards that exist (None when there are none)."""
    present = [b for b in boards if b]
    if not present:
        return None
    return sum(position_score(score, b, lower_is_better) for b in present) / len(present)
