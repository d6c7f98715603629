"""Integration with remote chat-completion APIs: the ``openai`` backend (any OpenAI-compatible
server: vLLM, SGLang, llama.cpp) and the ``litellm`` backend (any provider litellm supports).

Uses ``core`` only (interfaces, records, registry). The client libraries load when a backend is
built.
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from .backends import LitellmConfig, OpenAIConfig, make_litellm, make_openai

    register("openai", make_openai, config=OpenAIConfig,
             description="any OpenAI-compatible server (vLLM, SGLang, llama.cpp)")
    register("litellm", make_litellm, config=LitellmConfig, description="any provider litellm supports")
