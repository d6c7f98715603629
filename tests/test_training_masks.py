"""Masks and token bookkeeping against the real SmolLM2 backend and the real ReAct scaffold.

A recorded multi-turn episode must give a loss mask that is 1 exactly on the tokens the backend
sampled, with every prompt, template and tool-response token at 0, and the whole episode in one
sequence (the backend extends earlier samples instead of re-tokenising them).
"""

from __future__ import annotations

import asyncio

import pytest
from scaffolds_support import run_episode

from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling
from sandmle.training import trajectory_segments, trajectory_sequence
from sandmle.training.chat import plain_messages, render, stop_token_ids, transcript_sequence
from sandmle.training.rollout import BUDGET_STOP_REASON, BudgetedBackend, run_episodes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task(generated_tasks):
    return generated_tasks(["iris-multiclass"])[0]


def test_recorded_react_episode_masks_exactly_the_sampled_tokens(smollm2, task, sandbox):
    react = get_registry().create("scaffolds", "react", {"limits": {"max_llm_calls": 3, "exec_timeout_s": 20}})
    traj, _ = run_episode(react, smollm2, sandbox, task)
    assert len(traj.turns) == 3
    assert len(trajectory_segments(traj)) == 1  # the scaffold kept the replies: one sequence
    seq = trajectory_sequence(traj)
    assert seq.prompt_ids == traj.turns[0].prompt_token_ids
    sampled = [t for turn in traj.turns for t in turn.token_ids]
    assert [t for t, m in zip(seq.completion_ids, seq.mask) if m] == sampled
    assert [lp for lp, m in zip(seq.logprobs, seq.mask) if m] == [lp for t in traj.turns for lp in t.logprobs]
    # the sequence is exactly what the model saw before its last reply, plus that reply
    assert seq.ids == traj.turns[-1].prompt_token_ids + traj.turns[-1].token_ids
    # what the mask leaves out is the template and the scaffold's messages, rendered
    env = smollm2.tokenizer.decode([t for t, m in zip(seq.completion_ids, seq.mask) if not m])
    assert "<|im_start|>" in env
    for message in traj.messages[3:]:
        if message["role"] == "user":
            assert message["content"][:40] in env


def test_sft_transcript_masks_each_reply_and_its_end_token(smollm2):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fit a model."},
                {"role": "assistant", "content": "<think>Look.</think>\n<answer>submission</answer>"},
                {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "Done."}]
    tok = smollm2.tokenizer
    seq = transcript_sequence(tok, messages, smollm2.stop_ids)
    assert seq.ids == tok(render(tok, plain_messages(messages), False), add_special_tokens=False)["input_ids"]
    trained = tok.decode([t for t, m in zip(seq.completion_ids, seq.mask) if m])
    assert trained == "<think>Look.</think>\n<answer>submission</answer><|im_end|>Done.<|im_end|>"
    assert stop_token_ids(tok, smollm2.model.generation_config) == smollm2.stop_ids


def test_concurrent_requests_are_batched_and_seeded_per_request(smollm2):
    msgs = [{"role": "user", "content": "Name a colour."}]

    async def go():
        return await asyncio.gather(*[smollm2.complete(msgs, sampling=Sampling(seed=s, max_tokens=6))
                                      for s in range(3)])
    batches = smollm2.stats.batches
    together = asyncio.run(go())
    assert smollm2.stats.batches == batches + 1  # one batch for the three
    alone = asyncio.run(smollm2.complete(msgs, sampling=Sampling(seed=1, max_tokens=6)))
    assert alone.token_ids == together[1].token_ids


def test_length_budget_stops_the_episode(smollm2, task, sandbox):
    react = get_registry().create("scaffolds", "react", {"limits": {"max_llm_calls": 5, "exec_timeout_s": 20}})
    reward = get_registry().create("rewards", "milestone")
    grader = get_registry().create("graders", "default")
    budget = BudgetedBackend(smollm2, max_prompt_tokens=4096, max_episode_tokens=40, max_new_tokens=24,
                             temperature=1.0, top_p=1.0, seed=0)
    [outcome] = asyncio.run(run_episodes([(task, 0)], scaffold=react, backends=[budget], sandbox=sandbox,
                                         grader=grader, reward=reward, concurrency=1))
    assert outcome.stop_reason == BUDGET_STOP_REASON
    seq = outcome.sequence()
    assert 0 < len(seq.completion_ids) <= 40 + 24 and len(outcome.trajectory.turns) < 5


def test_kv_cache_of_earlier_turns_gives_the_same_replies(smollm2):
    """The next turn encodes only its new tokens, and samples exactly what a full re-encode would."""
    from sandmle.plugins.hf.backend import TransformersBackend, TransformersConfig

    fresh = TransformersBackend.from_model(smollm2.model, smollm2.tokenizer,
                                           TransformersConfig(max_new_tokens=24, kv_cache_tokens=0))

    async def conversation(backend):
        msgs = [{"role": "user", "content": "Name a fruit."}]
        replies = []
        for seed in (5, 6, 7):
            c = await backend.complete(msgs, sampling=Sampling(seed=seed, max_tokens=8))
            replies.append(c)
            msgs = msgs + [{"role": "assistant", "content": c.text}, {"role": "user", "content": "Another."}]
        return replies

    cached_before = smollm2.stats.cached_prompt_tokens
    with_cache, without = asyncio.run(conversation(smollm2)), asyncio.run(conversation(fresh))
    assert smollm2.stats.cached_prompt_tokens > cached_before and fresh.stats.cached_prompt_tokens == 0
    for a, b in zip(with_cache, without):
        assert a.prompt_token_ids == b.prompt_token_ids and a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)


def _trajectory_of(completions, scaffold="react"):
    from sandmle.core.records import Trajectory, Turn

    return Trajectory(task_id="t", scaffold=scaffold, backend="transformers", turns=[
        Turn(messages_in=1, text=c.text, prompt_token_ids=c.prompt_token_ids, token_ids=c.token_ids,
             logprobs=c.logprobs) for c in completions])


def test_edited_reply_episode_trains_all_of_its_sampled_tokens(smollm2):
    """A 2-turn episode whose first reply the scaffold cut (as ReAct cuts an invented
    ``<tool_response>``): two segments, each a row in the context the model saw, 100% trained."""
    from sandmle.training.grpo_batch import EpisodeTokens, build_grpo_batch
    from sandmle.training.rollout import HARNESS_STOP_REASONS

    async def episode(seed):
        msgs = [{"role": "user", "content": "Write a short Python comment about data."}]
        first = await smollm2.complete(msgs, sampling=Sampling(seed=seed, max_tokens=16))
        cut = first.text[: max(1, len(first.text) // 2)]  # the scaffold keeps only what came before the cut
        msgs = msgs + [{"role": "assistant", "content": cut}, {"role": "user", "content": "Observation: ok"}]
        second = await smollm2.complete(msgs, sampling=Sampling(seed=seed + 1, max_tokens=16))
        return [first, second]

    episodes = [asyncio.run(episode(seed)) for seed in (11, 23)]
    trajs = [_trajectory_of(e) for e in episodes]
    sampled = [sum(len(c.token_ids) for c in e) for e in episodes]
    segments = [trajectory_segments(t) for t in trajs]
    assert [len(s) for s in segments] == [2, 2]
    # the last segment alone (what was trained before) leaves the first reply out of the loss
    assert trajectory_sequence(trajs[0]).model_tokens == len(episodes[0][1].token_ids) < sampled[0]
    batch = build_grpo_batch([EpisodeTokens(s, r, "answer", n) for s, r, n in zip(segments, (1.0, 0.0), sampled)],
                             2, harness=HARNESS_STOP_REASONS, masked=["timeout"], max_episode_tokens=4096)
    assert batch.account.trained == batch.account.sampled == sum(sampled) and batch.account.trained_share == 1.0
    for row, completion in zip(batch.rows, [c for e in episodes for c in e]):
        # each row is exactly the prompt the model saw and the ids it sampled there, all masked in
        assert row.prompt_ids == completion.prompt_token_ids and row.completion_ids == completion.token_ids
        assert row.mask == [1] * len(completion.token_ids) and row.logprobs == completion.logprobs
    assert [r.advantage for r in batch.rows] == pytest.approx([batch.advantages[0]] * 2 + [batch.advantages[1]] * 2)


def test_aide_episode_with_fresh_stage_prompts_is_trained_whole(smollm2, task, sandbox):
    """AIDE starts every stage from a fresh prompt: a real episode has several segments, and the
    batch still trains every token it sampled."""
    from sandmle.training.grpo_batch import EpisodeTokens, build_grpo_batch
    from sandmle.training.rollout import HARNESS_STOP_REASONS

    aide = get_registry().create("scaffolds", "aide", {"steps": 2, "num_drafts": 1, "parse_attempts": 1,
                                                       "limits": {"max_llm_calls": 3, "exec_timeout_s": 20}})
    traj, _ = run_episode(aide, smollm2, sandbox, task)
    sampled = sum(len(t.token_ids) for t in traj.turns)
    segments = trajectory_segments(traj)
    assert len(traj.turns) >= 2 and len(segments) >= 2
    other = EpisodeTokens(segments, 0.0, "answer", sampled)
    batch = build_grpo_batch([EpisodeTokens(segments, 1.0, "answer", sampled), other], 2,
                             harness=HARNESS_STOP_REASONS, masked=[], max_episode_tokens=1 << 20)
    assert batch.account.trained == 2 * sampled and batch.account.trained_share == 1.0
    assert len(batch.rows) == 2 * len(segments)


def test_top_p_logprobs_are_the_nucleus_distribution(smollm2):
    """Under ``top_p < 1`` the recorded logprob is the renormalised nucleus' (what the token was
    drawn from), not the full softmax's: the importance ratio to the trainer needs exactly that."""
    import torch

    from sandmle.training.importance import nucleus_logprob

    msgs = [{"role": "user", "content": "Name three colours."}]
    c = asyncio.run(smollm2.complete(msgs, sampling=Sampling(seed=4, temperature=0.8, top_p=0.6, max_tokens=8)))
    ids = torch.tensor([c.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logits = smollm2.model(ids).logits[0, len(c.prompt_token_ids) - 1:-1].float()
    nucleus = [nucleus_logprob(logits[i], t, temperature=0.8, top_p=0.6) for i, t in enumerate(c.token_ids)]
    full = torch.log_softmax(logits / 0.8, -1)[torch.arange(len(c.token_ids)), torch.tensor(c.token_ids)].tolist()
    assert c.logprobs == pytest.approx(nucleus, abs=2e-3)
    assert all(n >= f - 1e-6 for n, f in zip(nucleus, full)) and any(n > f + 1e-3 for n, f in zip(nucleus, full))
