"""Milestone reward presets: totals for gold / silver / bronze / median / valid-only / invalid
trajectories, fixed breakdown keys, weight overrides and process milestones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandmle.core.plugins import get_registry
from sandmle.core.records import ExecResult, Grade, Trajectory, Turn
from sandmle.graders.rewards import KEYS, MilestoneConfig, MilestoneReward


SCORES = {"gold": 0.95, "silver": 0.85, "bronze": 0.75, "median": 0.6, "valid": 0.3}


def _grade(tier: str) -> Grade:
    """A higher-is-better grade whose raw score and medal flags both say ``tier``."""
    valid = tier != "invalid"
    return Grade(task_id="t", valid_submission=valid, submission_exists=tier != "invalid",
                 score=SCORES.get(tier), is_lower_better=False, gold_threshold=0.9, silver_threshold=0.8,
                 bronze_threshold=0.7, median_threshold=0.5, gold_medal=tier == "gold", silver_medal=tier == "silver",
                 bronze_medal=tier == "bronze", any_medal=tier in ("gold", "silver", "bronze"),
                 at_or_above_median=tier in ("gold", "silver", "bronze", "median"),
                 above_median=tier in ("gold", "silver", "bronze", "median"))


def _traj(format_ok: list[bool], ran_ok: bool = True) -> Trajectory:
    turns = [Turn(messages_in=i, text="", format_ok=ok,
                  executions=[ExecResult(exit_code=0 if ran_ok else 1)]) for i, ok in enumerate(format_ok)]
    return Trajectory(task_id="t", scaffold="react", backend="x", turns=turns)


FULL, HALF = _traj([True, True]), _traj([True, False])
TIERS = ["gold", "silver", "bronze", "median", "valid", "invalid"]
EXPECTED = {  # totals with a perfect format rate (1.0) and with half (0.5)
    "sandmle-code": {"gold": 1.0, "silver": 0.9, "bronze": 0.8, "median": 0.4, "valid": 0.3, "invalid": 0.1},
    "sandmle-paper": {"gold": 1.0, "silver": 0.9, "bronze": 0.7, "median": 0.5, "valid": 0.4, "invalid": 0.1},
    "sparse": {"gold": 1.0, "silver": 0.1, "bronze": 0.1, "median": 0.1, "valid": 0.1, "invalid": 0.1},
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
@pytest.mark.parametrize("tier", TIERS)
def test_preset_totals(preset: str, tier: str) -> None:
    reward = get_registry().create("rewards", "milestone", {"preset": preset})
    full = reward.score(FULL, _grade(tier))
    assert full.total == pytest.approx(EXPECTED[preset][tier])
    assert reward.score(HALF, _grade(tier)).total == pytest.approx(EXPECTED[preset][tier] - 0.05)
    assert list(full.parts) == KEYS == reward.keys
    assert full.total == pytest.approx(sum(full.parts.values()))


def test_default_preset_is_the_released_code() -> None:
    assert MilestoneReward().config.preset == "sandmle-code"
    parts = MilestoneReward().score(FULL, _grade("silver")).parts
    assert parts["silver"] == 0.6 and parts["bronze"] == 0.0 and parts["median"] == 0.0  # best tier only


def test_process_milestones_and_overrides() -> None:
    reward = MilestoneReward(MilestoneConfig(weights={"code_ran": 0.05, "submission": 0.05, "beats_sample": 0.1}))
    g = _grade("valid").model_copy(update={"beats_sample_submission": True})
    parts = reward.score(FULL, g).parts
    assert (parts["code_ran"], parts["submission"], parts["beats_sample"]) == (0.05, 0.05, 0.1)
    failed = reward.score(_traj([True], ran_ok=False), _grade("invalid")).parts
    assert (failed["code_ran"], failed["submission"], failed["beats_sample"]) == (0.0, 0.0, 0.0)
    cumulative_code = MilestoneReward(MilestoneConfig(cumulative=True)).score(FULL, _grade("gold"))
    assert cumulative_code.total == pytest.approx(0.1 + 0.2 + 0.1 + 0.5 + 0.6 + 0.7)


def test_unknown_weight_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown reward weight"):
        MilestoneConfig(weights={"bogus": 1.0})


def test_empty_trajectory_scores_zero_format() -> None:
    empty = Trajectory(task_id="t", scaffold="react", backend="x")
    assert MilestoneReward().score(empty, _grade("invalid")).total == 0.0
