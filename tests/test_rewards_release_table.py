"""The ``sandmle-code`` and ``sparse`` presets reproduce SandMLE's released reward exactly.

Anchor: Tonyzhou98/SandMLE@0912362 ``examples/deepresearch/deepresearch_workflow.py``:
``_score_to_reward`` (lines 230-339: +0.2 for a score, best tier only on raw floats with ``<=``/``>=``,
``except Exception: reward = 0.0`` when a threshold is missing, then ``+ 0.1 * format``),
``_sparse_reward`` (lines 341-372), ``_format_correct_rate`` (lines 374-388) and
``_extract_score_metrics`` (lines 148-178: the metrics of the *last* Score response).

Every ``RELEASE_TOTAL`` below was obtained by running the release's own ``_score_to_reward`` /
``_sparse_reward`` by hand (read from the snapshot with ``ast``, fed the Score tool's ``Details``
dict for each case, ``SANDMLE_REWARD=dense|sparse``); they are not derived from our code.
"""

from __future__ import annotations

import pytest

from sandmle.core.records import Grade, Trajectory, Turn
from sandmle.graders.rewards import MilestoneConfig, MilestoneReward, release_format_ok, transcript_format_rate

HB = dict(is_lower_better=False, gold_threshold=0.9, silver_threshold=0.8, bronze_threshold=0.7, median_threshold=0.5)
LB = dict(is_lower_better=True, gold_threshold=0.2, silver_threshold=0.4, bronze_threshold=0.6, median_threshold=0.9)


def graded(score: float | None, **fields) -> Grade:
    return Grade(task_id="t", score=score, valid_submission=score is not None, submission_exists=True, **fields)


def traj(format_rate: float, score_calls: list[Grade] = ()) -> Trajectory:
    """A trajectory whose turns give ``format_rate`` (out of 4) and that recorded these Score calls."""
    ok = round(format_rate * 4)
    turns = [Turn(messages_in=1, text="", format_ok=i < ok) for i in range(4)]
    calls = [{"turn": i, "in_transcript": True, "grade": g.model_dump(mode="json")} for i, g in enumerate(score_calls)]
    return Trajectory(task_id="t", scaffold="react", backend="x", turns=turns, extra={"score_calls": calls})


# name: (final-file grade, Score-call grades, format rate, release total)
DENSE = {
    "invalid submission": (graded(None, **HB), [], 1.0, 0.1),
    "gold, higher is better": (graded(0.95, **HB), [], 1.0, 0.9999999999999999),
    "silver, half format": (graded(0.85, **HB), [], 0.5, 0.8500000000000001),
    "bronze, lower is better": (graded(0.5, **LB), [], 1.0, 0.7999999999999999),
    "median, higher is better": (graded(0.6, **HB), [], 1.0, 0.4),
    "valid below the median, lower is better": (graded(1.2, **LB), [], 0.75, 0.275),
    "equal to the gold threshold": (graded(0.9, **HB), [], 1.0, 0.9999999999999999),
    "equal to the median, lower is better": (graded(0.9, **LB), [], 1.0, 0.4),
    # MLE-bench's 5-decimal rounding would call 0.699999 a bronze; the release does not round.
    "1e-6 below the bronze threshold": (graded(0.7 - 1e-6, **HB), [], 1.0, 0.4),
    "1e-6 worse than gold, lower is better": (graded(0.2 + 1e-6, **LB), [], 1.0, 0.9),
    "missing silver threshold": (graded(0.95, **{**HB, "silver_threshold": None}), [], 1.0, 0.1),
    "unknown direction reads as higher is better": (graded(0.3, **{**LB, "is_lower_better": None}), [], 1.0,
                                                    0.9999999999999999),
    "no well-formed turn": (graded(0.95, **HB), [], 0.0, 0.8999999999999999),
    # The release grades the Details of the last Score response, not the file left at the end.
    "submission overwritten after scoring": (graded(None, **HB), [graded(0.95, **HB)], 1.0, 0.9999999999999999),
    "two Score calls: the last one counts": (graded(0.95, **HB), [graded(0.95, **HB), graded(0.75, **HB)], 1.0,
                                              0.7999999999999999),
}
SPARSE = {
    "gold": (graded(0.95, **HB), [], 1.0, 1.0),
    "silver, half format": (graded(0.85, **HB), [], 0.5, 0.05),
    "missing silver threshold keeps gold": (graded(0.95, **{**HB, "silver_threshold": None}), [], 1.0, 1.0),
    "missing gold threshold": (graded(0.95, **{**HB, "gold_threshold": None}), [], 1.0, 0.1),
    "invalid": (graded(None, **HB), [], 1.0, 0.1),
}


@pytest.mark.parametrize("case", sorted(DENSE))
def test_sandmle_code_matches_the_release(case: str) -> None:
    final, calls, fmt, release_total = DENSE[case]
    reward = MilestoneReward(MilestoneConfig(preset="sandmle-code"))
    assert reward.score(traj(fmt, calls), final).total == pytest.approx(release_total, abs=1e-9)


@pytest.mark.parametrize("case", sorted(SPARSE))
def test_sparse_matches_the_release(case: str) -> None:
    final, calls, fmt, release_total = SPARSE[case]
    reward = MilestoneReward(MilestoneConfig(preset="sparse"))
    assert reward.score(traj(fmt, calls), final).total == pytest.approx(release_total, abs=1e-9)


def test_reward_source_final_file_ignores_score_calls() -> None:
    final, calls, fmt, _ = DENSE["submission overwritten after scoring"]
    reward = MilestoneReward(MilestoneConfig(reward_source="final_file"))
    assert reward.score(traj(fmt, calls), final).total == pytest.approx(0.1)


def test_a_score_call_pruned_from_the_transcript_no_longer_counts() -> None:
    # _extract_score_metrics only sees the messages left after context pruning.
    t = traj(1.0, [graded(0.95, **HB), graded(0.6, **HB)])
    t.extra["score_calls"][1]["in_transcript"] = False
    assert MilestoneReward().score(t, graded(None, **HB)).total == pytest.approx(1.0)


def test_missing_threshold_zeroes_the_score_part_but_keeps_format_in_the_breakdown() -> None:
    parts = MilestoneReward().score(traj(0.5), graded(0.95, **{**HB, "median_threshold": None})).parts
    assert parts["valid"] == 0.0 and parts["gold"] == 0.0 and parts["format"] == pytest.approx(0.05)


def test_release_format_rule_and_transcript_rate() -> None:
    # deepresearch_workflow.py:380-387: lstrip, starts with <think>, has </think>, body non-blank.
    assert release_format_ok("  \n<think>plan</think><tool_call>python</tool_call>")
    assert not release_format_ok("<think> \n\t </think>x") and not release_format_ok("text <think>a</think>")
    assert not release_format_ok("<think>never closed")
    messages = [{"role": "system", "content": "<think>s</think>"}, {"role": "assistant", "content": "<think>a</think>"},
                {"role": "user", "content": "u"}, {"role": "assistant", "content": "no think"}]
    assert transcript_format_rate(messages) == 0.5  # run by hand on the release: 0.5
    t = Trajectory(task_id="t", scaffold="react", backend="x", messages=messages,
                   turns=[Turn(messages_in=1, text="", format_ok=True)])
    reward = MilestoneReward(MilestoneConfig(format_source="transcript"))
    assert reward.score(t, graded(None, **HB)).parts["format"] == pytest.approx(0.05)
