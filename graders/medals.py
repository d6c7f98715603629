"""MLE-bench medal rules and MLE-Dojo's HumanRank position score, as the references compute them.

Medals follow MLE-bench's ``Grader.rank_score`` (``mlebench/grade_helpers.py`` at 783b15a,
lines 57-159). With N leaderboard rows (best first, 1-indexed positions): N<100 -> gold/silver/
bronze at max(1, int(0.1N / 0.2N / 0.4N)); 100<=N<250 -> 10, int(0.2N), int(0.4N); 250<=N<1000
-> 10+int(0.002N), 50, 100; N>=1000 -> 10+int(0.002N), int(0.05N), int(0.1N). Medals are
exclusive and "at or better"; ``above_median`` is strict.

Precision (the part that is easy to get wrong): MLE-bench rounds only the *score*, to 5 decimals
(``Grader.__call__``, line 54), and compares it with the *unrounded* leaderboard values.
:func:`medals` does exactly that; :func:`report_score` is the value MLE-bench reports.

Direction: MLE-bench infers it from the board's ends (``scores[0] < scores[-1]``, line 30), which
says "higher is better" for a board whose ends are equal. We take the direction from the task's
metric instead; on every real board the two agree.

NaN rows (a team without a score): MLE-bench counts them as teams (``num_teams = len(leaderboard)``,
line 74), reads thresholds at their positions (a NaN threshold then grants no medal: every
comparison with NaN is False) and ignores them in the median (``Series.median`` skips NaN). We do
the same. HumanRank counts them in N too and places them after every real score.

HumanRank follows MLE-Dojo's ``_calculate_leaderboard_position`` (``mledojo/gym/interface.py`` at
667a8fd, lines 549-603): p is the 1-based position of the first board score the *raw* score
matches or beats in a best-first sort (N+1 when it beats none), ``(N - p + 1) / N``, averaged over
the private and public boards that exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sandmle.core.task import MedalThresholds

SCORE_DECIMALS = 5  # mlebench/grade_helpers.py:54 ``round(score, 5)``


def report_score(raw: float, numpy_rounding: bool = False) -> float:
    """The score as MLE-bench reports and compares it: rounded to 5 decimals (once).

    MLE-bench's ``round(score, 5)`` rounds a Python float correctly (by its exact binary value)
    but hands an ``np.float64`` to numpy's ``__round__``, which scales, rounds half to even and
    scales back, so the two differ at half-points (``0.123455``: Python 0.12345, numpy 0.12346).
    Competitions whose ``grade.py`` returns ``np.mean``/``np.average`` (plant-pathology-2020-fgvc7,
    ranzcr-clip-catheter-line-classification) are rounded the numpy way: ``numpy_rounding``."""
    if numpy_rounding:
        import numpy as np

        return float(round(np.float64(raw), SCORE_DECIMALS))
    return round(float(raw), SCORE_DECIMALS)


def _is_nan(x: float | None) -> bool:
    return x is None or math.isnan(float(x))


def medal_positions(n: int) -> tuple[int, int, int]:
    """(gold, silver, bronze) 1-indexed leaderboard positions for ``n`` teams."""
    if n < 1:
        raise ValueError("a leaderboard needs at least one score")
    if n < 100:
        return max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 250:
        return 10, max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 1000:
        return 10 + int(n * 0.002), 50, 100
    return 10 + int(n * 0.002), max(1, int(n * 0.05)), max(1, int(n * 0.1))


def _median(values: list[float]) -> float:
    clean = sorted(v for v in values if not math.isnan(v))
    if not clean:
        return math.nan
    mid = len(clean) // 2
    return clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2


def thresholds_from_leaderboard(scores: list[float]) -> MedalThresholds:
    """Gold/silver/bronze at MLE-bench's positions of the best-first board, and its median.

    Every row counts as a team, NaN rows included (see the module docstring); a threshold that
    lands on a NaN row is NaN and grants nothing."""
    board = [math.nan if _is_nan(s) else float(s) for s in scores]
    g, s, b = medal_positions(len(board))
    return MedalThresholds(gold=board[g - 1], silver=board[s - 1], bronze=board[b - 1], median=_median(board))


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


def medals(score: float, th: MedalThresholds, lower_is_better: bool, numpy_rounding: bool = False) -> MedalResult:
    """MLE-bench's comparisons: the score rounded to 5 decimals against unrounded thresholds.

    ``score`` may be raw or already rounded (rounding twice to the same precision changes nothing).
    ``at_or_above_median`` also counts equality (SandMLE's reward reaches the median with ``>=``).
    ``numpy_rounding``: see :func:`report_score`."""
    s = report_score(score, numpy_rounding)
    reach = (lambda t: s <= t) if lower_is_better else (lambda t: s >= t)
    gold = reach(th.gold)
    silver = not gold and reach(th.silver)
    bronze = not gold and not silver and reach(th.bronze)
    above = s < th.median if lower_is_better else s > th.median
    return MedalResult(gold, silver, bronze, above, above or s == th.median)


def position_score(score: float, board: list[float], lower_is_better: bool) -> float:
    """MLE-Dojo's ``(N - p + 1) / N`` for the raw ``score``: N is the board's size (every row), p
    the 1-based position of the first score it matches or beats in a best-first sort (N + 1 when
    it beats none). NaN rows sort last and are never matched."""
    n = len(board)
    if n == 0:
        raise ValueError("empty leaderboard")
    real = sorted((float(b) for b in board if not _is_nan(b)), reverse=not lower_is_better)
    beats = (lambda b: score <= b) if lower_is_better else (lambda b: score >= b)
    p = next((i + 1 for i, b in enumerate(real) if beats(b)), n + 1)
    return (n - p + 1) / n


def human_rank(score: float, boards: list[list[float]], lower_is_better: bool) -> float | None:
    """Position score of the raw ``score`` averaged over the boards that exist (None when none do)."""
    present = [b for b in boards if b]
    if not present:
        return None
    return sum(position_score(score, b, lower_is_better) for b in present) / len(present)
