"""The ``milestone`` reward: SandMLE's dense reward and its variants, with a fixed breakdown.

Presets (weights per breakdown key):

- ``sandmle-code`` (default): the released code's ``_score_to_reward``
  (``examples/deepresearch/deepresearch_workflow.py``), exactly: 0.1 x format rate, +0.2 when the
  grader returned a score, + the best tier reached only (gold 0.7 / silver 0.6 / bronze 0.5 /
  at-or-past median 0.1). Tiers compare the raw floats (no rounding, equality counts); a task
  with a missing threshold scores 0 before the format term (the release's ``try/except`` resets
  the reward). The graded submission is the one of the *last successful Score call* the
  scaffold recorded, the final file only when there is none (``reward_source``). It is the
  default because it is what trained the paper's models, its maximum is exactly 1.0, and its
  gaps between tiers are large, which GRPO's group-normalised advantages need.
- ``sandmle-paper``: the paper's formula, cumulative: 0.1 fmt + 0.3 exec (valid) + 0.1 median +
  0.2 bronze + 0.2 silver + 0.1 gold, on the grader's medal flags (MLE-bench's 5-decimal
  rounding) and the final file.
- ``sparse``: the release's ``_sparse_reward``: 0.1 x format rate + 0.9 x gold (raw floats; a
  missing gold threshold gives no gold), graded like ``sandmle-code``.

Process milestones (weight 0 in every preset; set weights to use them): ``code_ran`` (any turn
with an execution that exited 0), ``submission`` (a submission file exists), ``beats_sample``
(the submission scores strictly better than the task's sample submission).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sandmle.core.interfaces import ComponentConfig, Reward
from sandmle.core.records import Grade, RewardBreakdown, Trajectory

KEYS = ["format", "valid", "median", "bronze", "silver", "gold", "code_ran", "submission", "beats_sample"]
TIERS = ["median", "bronze", "silver", "gold"]  # worst to best

TierRule = Literal["release", "grade"]
RewardSource = Literal["last_score", "final_file"]


class Preset:
    """Weights and grading choices of one named reward setup."""

    def __init__(self, weights: dict[str, float], cumulative: bool, tier_rule: TierRule, source: RewardSource,
                 zero_on_missing: bool = False):
        self.weights, self.cumulative, self.tier_rule, self.source = weights, cumulative, tier_rule, source
        # The release's dense function resets everything but the format term when any threshold
        # is missing; its sparse function only misses the gold it cannot compare.
        self.zero_on_missing = zero_on_missing


PRESETS: dict[str, Preset] = {
    "sandmle-code": Preset({"format": 0.1, "valid": 0.2, "median": 0.1, "bronze": 0.5, "silver": 0.6, "gold": 0.7},
                           False, "release", "last_score", zero_on_missing=True),
    "sandmle-paper": Preset({"format": 0.1, "valid": 0.3, "median": 0.1, "bronze": 0.2, "silver": 0.2, "gold": 0.1},
                            True, "grade", "final_file"),
    "sparse": Preset({"format": 0.1, "gold": 0.9}, False, "release", "last_score"),
}


class MilestoneConfig(ComponentConfig):
    """Preset plus optional overrides; a ``null`` field takes the preset's choice."""

    preset: Literal["sandmle-code", "sandmle-paper", "sparse"] = "sandmle-code"
    weights: dict[str, float] = Field(default_factory=dict, description=f"per-key weight overrides; keys: {KEYS}")
    cumulative: bool | None = Field(None, description="tiers add up (True) or only the best counts")
    tier_rule: TierRule | None = Field(
        None, description="'release': raw-float comparisons, median inclusive, a missing threshold zeroes the "
                          "score part (deepresearch_workflow.py); 'grade': the grader's medal flags")
    reward_source: RewardSource | None = Field(
        None, description="'last_score': the grade of the last successful Score call the scaffold recorded "
                          "(Trajectory.extra['score_calls']), else the final file; 'final_file': always the final file")
    format_source: Literal["turns", "transcript"] = Field(
        "turns", description="'turns': share of turns the scaffold judged well formed; 'transcript': the release's "
                             "count over the assistant messages left in the final (pruned) transcript")

    @model_validator(mode="after")
    def _known_keys(self) -> "MilestoneConfig":
        unknown = sorted(set(self.weights) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown reward weight(s) {unknown}; valid keys: {KEYS}")
        return self


def release_format_ok(text: str) -> bool:
    """The release's well-formed assistant message: it starts (after leading whitespace) with
    ``<think>``, closes it, and the thought is not empty once newlines and spaces are removed."""
    content = str(text).lstrip()
    if not (content.startswith("<think>") and "</think>" in content):
        return False
    body = content[len("<think>"):content.find("</think>")]
    return bool(body.strip().replace("\n", "").replace(" ", ""))


def transcript_format_rate(messages: list[dict[str, Any]]) -> float:
    """Share of the transcript's assistant messages that pass :func:`release_format_ok`."""
    replies = [m for m in messages if m.get("role") == "assistant"]
    return sum(release_format_ok(m.get("content") or "") for m in replies) / len(replies) if replies else 0.0


def last_score_grade(trajectory: Trajectory) -> Grade | None:
    """The grade of the last successful Score call still in the transcript, if any.

    Scaffolds record these themselves (never parsed from tool output the agent could forge).
    """
    calls = [c for c in trajectory.extra.get("score_calls") or [] if c.get("in_transcript", True)]
    return Grade.model_validate(calls[-1]["grade"]) if calls else None


def release_tiers(grade: Grade) -> tuple[bool, dict[str, bool]]:
    """``(all four thresholds present, tier reached)`` by the release's raw-float comparisons."""
    th = {t: getattr(grade, f"{t}_threshold") for t in TIERS}
    score = grade.unrounded_score  # the release compares the evaluator's float, unrounded
    if score is None:
        return False, {t: False for t in TIERS}
    # An unknown direction reads as higher-is-better, as the release's falsy check does.
    better = (lambda a, b: a <= b) if grade.is_lower_better else (lambda a, b: a >= b)
    return (all(v is not None for v in th.values()),
            {t: th[t] is not None and better(score, th[t]) for t in TIERS})


class MilestoneReward(Reward):
    """Total = sum of parts; parts always carry every key in :data:`KEYS`."""

    def __init__(self, config: MilestoneConfig | None = None):
        self.config = config or MilestoneConfig()
        preset = PRESETS[self.config.preset]
        self.weights = {k: 0.0 for k in KEYS} | preset.weights | self.config.weights
        self.cumulative = preset.cumulative if self.config.cumulative is None else self.config.cumulative
        self.tier_rule = self.config.tier_rule or preset.tier_rule
        self.reward_source = self.config.reward_source or preset.source
        self.zero_on_missing = preset.zero_on_missing

    @property
    def keys(self) -> list[str]:
        return list(KEYS)

    def graded(self, trajectory: Trajectory, grade: Grade) -> Grade:
        """The grade the reward uses: the last Score call's or the final file's (``reward_source``)."""
        if self.reward_source == "last_score":
            return last_score_grade(trajectory) or grade
        return grade

    def score(self, trajectory: Trajectory, grade: Grade) -> RewardBreakdown:
        """Milestones hit by ``trajectory`` and ``grade``, weighted."""
        grade = self.graded(trajectory, grade)
        valid = grade.valid_submission and grade.score is not None
        if self.tier_rule == "release":
            complete, reached = release_tiers(grade)
            if self.zero_on_missing and not complete:
                valid = False
        else:
            reached = {"median": grade.at_or_above_median,
                       "bronze": grade.bronze_medal or grade.silver_medal or grade.gold_medal,
                       "silver": grade.silver_medal or grade.gold_medal, "gold": grade.gold_medal}
        reached = {t: valid and hit for t, hit in reached.items()}
        if not self.cumulative:  # only the best tier reached counts
            best = next((t for t in reversed(TIERS) if reached[t]), None)
            reached = {t: t == best for t in TIERS}
        fmt = (transcript_format_rate(trajectory.messages) if self.config.format_source == "transcript"
               else trajectory.format_rate)
        hits = {"format": fmt, "valid": float(valid), **{t: float(reached[t]) for t in TIERS},
                "code_ran": float(any(e.ok for turn in trajectory.turns for e in turn.executions)),
                "submission": float(grade.submission_exists),
                "beats_sample": float(bool(valid and grade.beats_sample_submission))}
        parts = {k: self.weights[k] * hits[k] for k in KEYS}
        # Summed unrounded, in the release's order (score, then tier, then format: deepresearch_
        # workflow.py ``_score_to_reward``), so a total is the release's float to the last bit:
        # silver with a perfect format rate is 0.2 + 0.6 + 0.1 = 0.9000000000000001, as there.
        total = 0.0
        for key in ("valid", *reversed(TIERS), "format", "code_ran", "submission", "beats_sample"):
            total += parts[key]
        return RewardBreakdown(total=total, parts=parts)


def make_milestone(config: MilestoneConfig) -> MilestoneReward:
    """Factory registered as reward ``milestone``."""
    return MilestoneReward(config)
