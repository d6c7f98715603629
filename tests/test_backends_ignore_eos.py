"""``Sampling.ignore_eos``: a reply of exactly ``max_tokens`` on every local backend (the fixed
workload of ``benchmarks/generation_speed.py --fixed-length``), the same sample up to where the
model would have stopped, and the scaffold's sampling config passes it through.

Real SmolLM2 on each backend (the session fixtures in conftest.py); greedy, so the reply that
ignores the stop tokens must begin with exactly the reply that stopped.
"""

from __future__ import annotations

import asyncio

import pytest

from sandmle.core.records import Sampling
from sandmle.scaffolds.presets import SamplingConfig

MSGS = [{"role": "system", "content": "You answer with one word."}, {"role": "user", "content": "Name a fruit."}]
LIMIT = 16  # within every fixture's max_new_tokens (24); small: the transformers backend is slow


@pytest.mark.parametrize("fixture", ["smollm2", "smollm2_ct2", "smollm2_openvino"])
def test_a_reply_that_ignores_eos_runs_to_its_limit_past_the_stop(fixture, request):
    backend = request.getfixturevalue(fixture)
    stopped = asyncio.run(backend.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=LIMIT)))
    assert stopped.finish_reason == "stop" and len(stopped.token_ids) < LIMIT  # the premise: it stops early
    full = asyncio.run(backend.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=LIMIT, ignore_eos=True)))
    assert len(full.token_ids) == LIMIT and full.finish_reason == "length"
    assert full.token_ids[:len(stopped.token_ids)] == stopped.token_ids  # the stop token itself included
    assert len(full.logprobs) == LIMIT
    # a plain request after it stops at its stop token again (no state leaks between requests)
    again = asyncio.run(backend.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=LIMIT)))
    assert again.token_ids == stopped.token_ids


def test_the_scaffold_sampling_config_passes_ignore_eos_through():
    assert SamplingConfig(ignore_eos=True, max_tokens=7).for_episode(3).ignore_eos is True
    assert SamplingConfig().for_episode(3).ignore_eos is False
