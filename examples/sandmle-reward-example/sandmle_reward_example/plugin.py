"""Reward ``efficient-medal``: points for a valid submission and for a medal, minus a small
charge per model turn, so that of two equally good episodes the shorter one scores higher."""

from __future__ import annotations

from pydantic import Field

from sandmle.core import ComponentConfig, Grade, Reward, RewardBreakdown, Trajectory, hookimpl


class EfficientMedalConfig(ComponentConfig):
    """Arguments of ``efficient-medal`` (a recipe's ``reward: {name: efficient-medal, args: {...}}``)."""

    valid_points: float = Field(0.2, ge=0, description="for a submission the grader accepts")
    medal_points: float = Field(1.0, ge=0, description="for any medal (bronze or better)")
    turn_cost: float = Field(0.02, ge=0, description="charged per model turn")
    max_cost: float = Field(0.2, ge=0, description="the charge never exceeds this")


class EfficientMedalReward(Reward):
    """valid + medal - min(turn_cost * turns, max_cost); parts always ``valid, medal, turns``."""

    def __init__(self, config: EfficientMedalConfig):
        self.config = config

    @property
    def keys(self) -> list[str]:
        return ["valid", "medal", "turns"]

    def score(self, trajectory: Trajectory, grade: Grade) -> RewardBreakdown:
        cfg = self.config
        parts = {
            "valid": cfg.valid_points if grade.valid_submission else 0.0,
            "medal": cfg.medal_points if grade.any_medal else 0.0,
            "turns": -min(cfg.turn_cost * len(trajectory.turns), cfg.max_cost),
        }
        return RewardBreakdown(total=sum(parts.values()), parts=parts)


@hookimpl
def register_rewards(register):
    register("efficient-medal", EfficientMedalReward, config=EfficientMedalConfig,
             description="valid + medal points, minus a charge per model turn")
