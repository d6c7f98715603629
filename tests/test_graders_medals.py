"""MLE-bench medal rules (every N branch, both directions, ties, rounding) and MLE-Dojo HumanRank."""

from __future__ import annotations

import statistics

import pytest

from sandmle.core.task import MedalThresholds
from sandmle.graders.medals import (human_rank, medal_positions, medals, position_score, report_score,
                                    thresholds_from_leaderboard)


@pytest.mark.parametrize("n, expected", [
    (1, (1, 1, 1)), (5, (1, 1, 2)), (10, (1, 2, 4)), (99, (9, 19, 39)),     # N < 100
    (100, (10, 20, 40)), (249, (10, 49, 99)),                                # 100 <= N < 250
    (250, (10, 50, 100)), (999, (11, 50, 100)),                              # 250 <= N < 1000
    (1000, (12, 50, 100)), (4321, (18, 216, 432)),                           # N >= 1000
])
def test_medal_positions_per_branch(n: int, expected: tuple[int, int, int]) -> None:
    assert medal_positions(n) == expected


def test_thresholds_from_higher_is_better_leaderboard() -> None:
    board = [round(1 - i / 200, 5) for i in range(150)]  # best first, 150 teams
    th = thresholds_from_leaderboard(board)
    assert (th.gold, th.silver, th.bronze) == (board[9], board[29], board[59])
    assert th.median == statistics.median(board)


def test_thresholds_from_lower_is_better_leaderboard() -> None:
    board = [0.1 * i for i in range(1, 301)]  # 300 teams, lower is better
    th = thresholds_from_leaderboard(board)
    assert (th.gold, th.silver, th.bronze) == (board[9], board[49], board[99])  # gold: 10 + int(0.6)


HIGH = MedalThresholds(gold=0.9, silver=0.8, bronze=0.7, median=0.5)
LOW = MedalThresholds(gold=0.1, silver=0.2, bronze=0.3, median=0.5)


@pytest.mark.parametrize("score, lower, th, tier", [
    (0.95, False, HIGH, "gold"), (0.9, False, HIGH, "gold"), (0.85, False, HIGH, "silver"),
    (0.7, False, HIGH, "bronze"), (0.6, False, HIGH, "median"), (0.4, False, HIGH, "none"),
    (0.05, True, LOW, "gold"), (0.1, True, LOW, "gold"), (0.15, True, LOW, "silver"),
    (0.3, True, LOW, "bronze"), (0.4, True, LOW, "median"), (0.6, True, LOW, "none"),
])
def test_medals_are_exclusive_and_at_or_better(score: float, lower: bool, th: MedalThresholds, tier: str) -> None:
    m = medals(score, th, lower)
    got = "gold" if m.gold else "silver" if m.silver else "bronze" if m.bronze else \
        "median" if m.above_median else "none"
    assert got == tier
    assert sum([m.gold, m.silver, m.bronze]) <= 1
    assert m.any_medal == (tier in ("gold", "silver", "bronze"))


def test_above_median_is_strict_but_at_or_above_counts_ties() -> None:
    for lower, th in ((False, HIGH), (True, LOW)):
        m = medals(0.5, th, lower)
        assert not m.above_median and m.at_or_above_median and not m.any_medal


def test_only_the_score_is_rounded_to_five_decimals() -> None:
    # mlebench/grade_helpers.py:54 rounds the score; rank_score (lines 139-148) compares it with the
    # thresholds as they are on the board.
    assert medals(0.899996, HIGH, False).gold          # rounds to 0.9
    assert not medals(0.899994, HIGH, False).gold      # rounds to 0.89999
    assert medals(0.1000049, LOW, True).gold
    assert not medals(0.500004, HIGH, False).above_median  # equal after rounding
    odd = MedalThresholds(gold=0.912344, silver=0.9, bronze=0.8, median=0.125875)
    assert not medals(0.91234, odd, False).gold        # the threshold keeps its 6th decimal
    assert report_score(0.9066449) == 0.90664 and report_score(report_score(0.9066449)) == 0.90664


def test_position_score_hand_values() -> None:
    board = [0.9, 0.8, 0.8, 0.7]  # higher is better
    assert position_score(0.95, board, False) == 1.0       # p=1
    assert position_score(0.8, board, False) == 0.75       # ties count as matching: p=2
    assert position_score(0.75, board, False) == 0.25      # p=4
    assert position_score(0.1, board, False) == 0.0        # beats none: p=N+1
    assert position_score(0.15, [0.1, 0.2, 0.3], True) == pytest.approx(2 / 3)


def test_human_rank_averages_existing_boards() -> None:
    private, public = [0.9, 0.8, 0.7, 0.6], [0.95, 0.85]
    assert human_rank(0.82, [private, public], False) == pytest.approx((0.75 + 0.0) / 2)
    assert human_rank(0.9, [private, public], False) == pytest.approx((1.0 + 0.5) / 2)
    assert human_rank(0.82, [private, []], False) == 0.75
    assert human_rank(0.82, [[], []], False) is None
