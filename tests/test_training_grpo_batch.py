"""Trajectory-wise GRPO batches without a model: every segment trained with its episode's
advantage, harness failures out of their group before the advantages, zero-spread groups skipped,
the token account, importance ratios and top-p logprobs by hand."""

from __future__ import annotations

import math

import pytest

from sandmle.core.records import Trajectory, Turn
from sandmle.training.advantages import group_advantages, group_advantages_without, zero_spread_groups
from sandmle.training.grpo_batch import EpisodeTokens, build_grpo_batch
from sandmle.training.rollout import HARNESS_STOP_REASONS
from sandmle.training.sequences import trajectory_segments


def _turn(prompt, sampled, logprobs=None):
    return Turn(messages_in=1, text="x", prompt_token_ids=prompt, token_ids=sampled,
                logprobs=logprobs or [-0.5] * len(sampled))


def _episode(segments_turns, reward, stop="answer"):
    traj = Trajectory(task_id="t", scaffold="react", backend="transformers",
                      turns=[_turn(p, s) for p, s in segments_turns])
    segs = trajectory_segments(traj)
    return EpisodeTokens(segs, reward, stop, sum(len(s) for _, s in segments_turns))


def _batch(episodes, n, **kw):
    kw = {"harness": HARNESS_STOP_REASONS, "masked": ["timeout"], "max_episode_tokens": 1000} | kw
    return build_grpo_batch(episodes, n, **kw)


# ------------------------------------------------------------------ harness failures (issue's example)
def test_failed_episode_leaves_its_group_before_the_advantages():
    rewards, failed = [0.3, 0.3, 0.3, 0.0], [False, False, False, True]
    # kept in, the failure's 0 would hand each real episode +0.5 (the bug the issue names)
    assert group_advantages(rewards, 4)[0] == pytest.approx(0.5, abs=1e-3)
    assert group_advantages_without(rewards, 4, failed) == [0.0, 0.0, 0.0, 0.0]
    # with spread among the kept ones, they are normalised among themselves only
    adv = group_advantages_without([1.0, 0.0, 0.5, 0.0], 4, failed)
    assert adv[:3] == pytest.approx(group_advantages([1.0, 0.0, 0.5], 3)) and adv[3] == 0.0
    assert zero_spread_groups(rewards, 4, failed) == [True]
    assert zero_spread_groups([1.0, 0.0, 0.0, 0.0], 2, [False, True, False, False]) == [True, True]


def test_step_of_only_failed_or_flat_groups_skips_the_update():
    eps = [_episode([([1, 2], [5, 6])], 0.3), _episode([([1, 2], [7])], 0.3),
           _episode([([1, 2], [8])], 0.3), _episode([([1, 2], [9, 9])], 0.0, stop="backend_error")]
    batch = _batch(eps, 4)
    assert batch.skip_update and batch.rows == [] and batch.harness_failures == 1
    assert batch.account.dropped == {"zero_spread": 4, "harness_failure": 2}
    assert batch.account.trained_share == 0.0 and batch.metrics()["update_skipped"] == 1.0
    # the same step without the zero-spread skip trains the three real episodes at advantage 0
    kept = _batch(eps, 4, skip_zero_spread=False)
    assert [r.advantage for r in kept.rows] == [0.0, 0.0, 0.0] and not kept.skip_update


def test_zero_spread_group_is_skipped_and_the_other_group_trained():
    eps = [_episode([([1], [5])], 1.0), _episode([([1], [6])], 1.0),  # flat group
           _episode([([2], [7, 8])], 1.0), _episode([([2], [9])], 0.0)]
    batch = _batch(eps, 2)
    assert batch.zero_spread_groups == 1 and batch.groups == 2
    assert [r.episode for r in batch.rows] == [2, 3]
    assert [r.advantage for r in batch.rows] == pytest.approx(group_advantages([1.0, 1.0, 1.0, 0.0], 2)[2:])
    assert batch.account.dropped == {"zero_spread": 2} and batch.account.trained == 3
    assert batch.metrics()["trained_token_share"] == pytest.approx(3 / 5)


# ------------------------------------------------------------------ every segment trained
def test_every_segment_of_an_edited_episode_is_a_row_with_the_episode_advantage():
    # turn 2's prompt edited reply 1 (77 instead of 11): a new segment in the context the model saw
    edited = _episode([([1, 2], [10, 11]), ([1, 2, 10, 11, 90], [12]), ([1, 2, 10, 77, 90, 12, 91], [13, 14])], 1.0)
    other = _episode([([1, 2], [20])], 0.0)
    batch = _batch([edited, other], 2)
    rows = [r for r in batch.rows if r.episode == 0]
    assert [(r.prompt_ids, r.completion_ids, r.mask) for r in rows] == [
        ([1, 2], [10, 11, 90, 12], [1, 1, 0, 1]), ([1, 2, 10, 77, 90, 12, 91], [13, 14], [1, 1])]
    assert {r.advantage for r in rows} == {batch.advantages[0]} and batch.advantages[0] > 0
    assert batch.account.sampled == 6 and batch.account.trained == 6 and batch.account.trained_share == 1.0
    assert batch.trained_tokens(0) == 5 and batch.trained_tokens(1) == 1


def test_compact_filter_and_length_budget_are_named_in_the_account():
    eps = [_episode([([1], [5, 6, 7, 8])], 1.0), _episode([([1], [9])], 0.0, stop="timeout"),
           _episode([([1], [3])], 0.5), _episode([([1], [4])], 0.2)]
    batch = _batch(eps, 4, max_episode_tokens=3)
    assert batch.account.dropped == {"length_budget": 1, "compact_filter": 1}
    assert batch.account.sampled == batch.account.trained + sum(batch.account.dropped.values())
    assert batch.rows[0].completion_ids == [5, 6, 7] and batch.compact_filtered == 1
    # the timeout still counts in its group's statistics (SandMLE's compact filtering)
    assert batch.advantages == pytest.approx(group_advantages([1.0, 0.0, 0.5, 0.2], 4))


# ------------------------------------------------------------------ importance ratios and top-p
def test_importance_ratios_equal_a_hand_computation():
    torch = pytest.importorskip("torch")
    from sandmle.training.importance import importance_ratios

    trainer = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.1, -3.0, -1.0, 0.0]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5, 0.0], [-0.2, -1.0, -4.0, 0.0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    token = importance_ratios(trainer, sampler, mask, clip_max=None)
    expected = [[math.exp(0.5), math.exp(-1.0), 1.0, 1.0], [math.exp(0.1), math.exp(-2.0), math.exp(3.0), 1.0]]
    assert [x for row in token.tolist() for x in row] == pytest.approx([x for row in expected for x in row], rel=1e-6)
    capped = importance_ratios(trainer, sampler, mask, clip_max=3.0)
    assert capped[1, 2].item() == pytest.approx(3.0) and capped[0, 0].item() == pytest.approx(math.exp(0.5))
    masked = importance_ratios(trainer, sampler, mask, constraint="mask", clip_max=3.0)
    assert masked[1, 2].item() == 0.0 and masked[1, 3].item() == 1.0
    seq = importance_ratios(trainer, sampler, mask, level="sequence", clip_max=None)
    assert seq[0, 0].item() == pytest.approx(math.exp(0.5 - 1.0)) and seq[0, 3].item() == 1.0
    assert seq[1, 1].item() == pytest.approx(math.exp(0.1 - 2.0 + 3.0))


def test_top_p_logprob_is_renormalised_over_the_nucleus():
    torch = pytest.importorskip("torch")
    from sandmle.training.importance import nucleus_logprob

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    # top_p 0.7: cumulative mass before each token 0, 0.5, 0.8, ... -> nucleus {0, 1}, mass 0.8
    assert nucleus_logprob(logits, 1, temperature=1.0, top_p=0.7) == pytest.approx(math.log(0.3 / 0.8))
    assert nucleus_logprob(logits, 2, temperature=1.0, top_p=0.7) == -math.inf
    assert nucleus_logprob(logits, 2, temperature=1.0, top_p=1.0) == pytest.approx(math.log(0.15))
    hot = torch.softmax(logits / 2.0, -1)
    assert nucleus_logprob(logits, 0, temperature=2.0, top_p=1.0) == pytest.approx(math.log(hot[0].item()), rel=1e-5)
