"""The ``vllm`` backend (CUDA only): on a GPU machine it must give what ``ctranslate2`` gives on
CPU (prompt ids from the shared chat template, sampled ids, one sampling logprob per id, equal to
a transformers forward pass). Without a CUDA device this is reported as not run, with the reason;
what runs everywhere is the refusal a CPU user sees."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from sandmle.core.errors import SandmleError
from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling
from sandmle.plugins.engine.vllm_backend import cuda_available

MSGS = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a fruit."}]


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA device")
def test_without_cuda_the_backend_refuses_clearly():
    with pytest.raises(SandmleError, match="needs a CUDA device"):
        get_registry().create("backends", "vllm", {})


@pytest.mark.skipif(not cuda_available(), reason="not run: no CUDA device")
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="not run: vllm not installed (sandmle[vllm])")
def test_vllm_sampled_ids_and_logprobs_match_transformers(smollm2):
    import torch

    engine = get_registry().create("backends", "vllm", {"max_new_tokens": 16, "dtype": "float32"})
    c = asyncio.run(engine.complete(MSGS, sampling=Sampling(seed=1, max_tokens=16)))
    assert c.prompt_token_ids == smollm2.prompt_ids(MSGS)
    assert c.token_ids and len(c.logprobs) == len(c.token_ids)
    with torch.no_grad():
        logits = smollm2.model(torch.tensor([c.prompt_token_ids + c.token_ids])).logits[0, len(c.prompt_token_ids) - 1:-1]
    ref = torch.log_softmax(logits.float(), -1)[torch.arange(len(c.token_ids)), torch.tensor(c.token_ids)]
    assert c.logprobs == pytest.approx(ref.tolist(), abs=5e-3)
    asyncio.run(engine.aclose())
