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
