"""The ``milestone`` reward: SandMLE's dense reward and its variants, with a fixed breakdown.

Presets (weights per breakdown key):

- ``sandmle-code`` (default): the released code's ``_score_to_reward``: 0.1 x format rate, +0.2
  for a valid submission, + the best tier reached only (gold 0.7 / silver 0.6 / bronze 0.5 /
  at-or-past median 0.1). It is the default because it is what trained the paper's models
  (verified in ``deepresearch_workflow.py``), its maximum is exactly 1.0, and its gaps between
  tiers are large, which GRPO's group-normalised advantages need to separate rollouts.
- ``sandmle-paper``: the paper's formula, cumulative: 0.1 fmt + 0.3 exec (valid) + 0.1 median +
  0.2 bronze + 0.2 silver + 0.1 gold.
- ``sparse``: 0.1 x format rate + 0.9 x gold.

Process milestones (weight 0 in every preset; set weights to use them): ``code_ran`` (any turn
with an execution that exited 0), ``submission`` (a submission file exists), ``beats_sample``
(the submission scores strictly better than the task's sample submission).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sandmle.core.interfaces import ComponentConfig, Reward
from sandmle.core.records import Grade, RewardBreakdown, Trajectory

KEYS = ["format", "valid", "median", "bronze", "silver", "gold", "code_ran", "submission", "beats_sample"]
TIERS = ["median", "bronze", "silver", "gold"]  # worst to best

PRESETS: dict[str, tuple[dict[str, float], bool]] = {  # weights, cumulative tiers?
    "sandmle-code": ({"format": 0.1, "valid": 0.2, "median": 0.1, "bronze": 0.5, "silver": 0.6, "gold": 0.7},
                     False),
    "sandmle-paper": ({"format": 0.1, "valid": 0.3, "median": 0.1, "bronze": 0.2, "silver": 0.2, "gold": 0.1},
                      True),
    "sparse": ({"format": 0.1, "gold": 0.9}, False),
}


class MilestoneConfig(ComponentConfig):
    """Preset plus optional per-key weight overrides (keys: format, valid, median, bronze,
    silver, gold, code_ran, submission, beats_sample)."""

    preset: Literal["sandmle-code", "sandmle-paper", "sparse"] = "sandmle-code"
    weights: dict[str, float] = Field(default_factory=dict)
    cumulative: bool | None = Field(None, description="tiers add up (True) or only the best counts; "
                                                      "default: the preset's choice")

    @model_validator(mode="after")
    def _known_keys(self) -> "MilestoneConfig":
        unknown = sorted(set(self.weights) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown reward weight(s) {unknown}; valid keys: {KEYS}")
        return self


class MilestoneReward(Reward):
    """Total = sum of parts; parts always carry every key in :data:`KEYS`."""

    def __init__(self, config: MilestoneConfig | None = None):
        self.config = config or MilestoneConfig()
        base, cumulative = PRESETS[self.config.preset]
        self.weights = {k: 0.0 for k in KEYS} | base | self.config.weights
        self.cumulative = cumulative if self.config.cumulative is None else self.config.cumulative

    @property
    def keys(self) -> list[str]:
        return list(KEYS)

    def score(self, trajectory: Trajectory, grade: Grade) -> RewardBreakdown:
        """Milestones hit by ``trajectory`` and ``grade``, weighted."""
        valid = grade.valid_submission
        reached = {"median": valid and grade.at_or_above_median,
                   "bronze": valid and (grade.bronze_medal or grade.silver_medal or grade.gold_medal),
                   "silver": valid and (grade.silver_medal or grade.gold_medal),
                   "gold": valid and grade.gold_medal}
        if not self.cumulative:  # only the best tier reached counts
            best = next((t for t in reversed(TIERS) if reached[t]), None)
            reached = {t: t == best for t in TIERS}
        hits = {"format": trajectory.format_rate, "valid": float(valid),
                **{t: float(reached[t]) for t in TIERS},
                "code_ran": float(any(e.ok for turn in trajectory.turns for e in turn.executions)),
                "submission": float(grade.submission_exists),
                "beats_sample": float(bool(valid and grade.beats_sample_submission))}
        parts = {k: round(self.weights[k] * hits[k], 10) for k in KEYS}
        return RewardBreakdown(total=round(sum(parts.values()), 10), parts=parts)


def make_milestone(config: MilestoneConfig) -> MilestoneReward:
    """Factory registered as reward ``milestone``."""
    return MilestoneReward(config)
