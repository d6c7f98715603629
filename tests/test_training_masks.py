"""Masks and token bookkeeping against the real SmolLM2 backend and the real ReAct scaffold.

A recorded multi-turn episode must give a loss mask that is 1 exactly on the tokens the backend
sampled, with every prompt, template and tool-response token at 0, and the whole episode in one
sequence (the backend extends earlier samples instead of re-tokenising them).
"""

from __future__ import annotations

import asyncio

import pytest
from scaffolds_support import generate_tasks, run_episode

from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling
from sandmle.training import trajectory_segments, trajectory_sequence
from sandmle.training.chat import plain_messages, render, stop_token_ids, transcript_sequence
from sandmle.training.rollout import BUDGET_STOP_REASON, BudgetedBackend, run_episodes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return generate_tasks(tmp_path_factory.mktemp("masks"), ["iris-multiclass"])[0]


@pytest.fixture(scope="module")
def sandbox():
    sb = get_registry().create("sandboxes", "local")
    yield sb
    asyncio.run(sb.shutdown())


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
