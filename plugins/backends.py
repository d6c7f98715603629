"""Entry-point plugin ``backends``: ``baseline``, ``openai``, ``litellm``, ``transformers``.

Each factory imports its heavy client library only when the backend is built.
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from sandmle.scaffolds.baseline import BaselineConfig, make_baseline

    register("baseline", make_baseline, config=BaselineConfig,
             description="scripted AutoML agent speaking every scaffold's protocol")
    try:
        from .backend_openai import LitellmConfig, OpenAIConfig, make_litellm, make_openai

        register("openai", make_openai, config=OpenAIConfig,
                 description="any OpenAI-compatible server (vLLM, SGLang, llama.cpp)")
        register("litellm", make_litellm, config=LitellmConfig, description="any provider litellm supports")
    except ImportError:  # pragma: no cover - module lands later in the same change set
        pass
    try:
        from .backend_transformers import TransformersConfig, make_transformers

        register("transformers", make_transformers, config=TransformersConfig,
                 description="a local Hugging Face model (e.g. SmolLM2 from a GGUF file)")
    except ImportError:  # pragma: no cover
        pass
