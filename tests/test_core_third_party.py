"""A real third-party plugin distribution, pip-installed, and a broken one that must not take
the CLI down."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sandmle-plugin-example"


def _sandmle(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandmle.core.cli", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory):
    """pip-install the example plugin into a private target directory (no deps: sandmle is here)
    and put it on the path: entry points are found exactly as for a site-packages install, and
    the project's environment is left as it was. Yields the PYTHONPATH for subprocesses."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    sys.path.insert(0, str(target))  # for the in-process registry
    try:
        yield {"PYTHONPATH": str(target) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    finally:
        sys.path.remove(str(target))


def test_example_plugin_is_listed_with_version(example_installed):
    proc = _sandmle("plugins", "--json", env=example_installed)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    rows = rows["plugins"] if isinstance(rows, dict) else rows
    example = next(r for r in rows if r["name"] == "example")
    assert example["version"] == importlib.metadata.version("sandmle-plugin-example") == "0.2.0"
    assert example["components"] == {"scaffolds": ["one-shot"], "graders": ["exact-match"]}
    assert not example["builtin"]


def test_example_plugin_is_usable_from_a_recipe(example_installed, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""
        scaffolds: [{name: one-shot, args: {exec_timeout_s: 30}}]
        grader: example/exact-match
    """))
    proc = _sandmle("recipe", "validate", str(recipe), env=example_installed)
    assert proc.returncode == 0, proc.stderr
    assert "one-shot(exec_timeout_s=30)" in proc.stdout and "example/exact-match" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("grader: {name: exact-match, args: {case_sensitive: maybe}}\n")
    proc = _sandmle("recipe", "validate", str(bad), env=example_installed)
    assert proc.returncode == 2 and "grader.args.case_sensitive" in proc.stderr


def test_example_grader_grades_a_real_task(example_installed, tmp_path):
    import pandas as pd

    from sandmle.core.plugins import get_registry
    from sandmle.core.task import Task

    public, private = tmp_path / "prepared" / "public", tmp_path / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    pd.DataFrame({"id": [1, 2, 3, 4], "label": ["a", "b", "a", "b"]}).to_csv(private / "answers.csv", index=False)
    task = Task(id="t", root=tmp_path, public_dir=public, private_dir=private, metric="accuracy",
                lower_is_better=False, target_columns=["label"], answers_path=private / "answers.csv")
    grader = get_registry().create("graders", "example/exact-match")
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"id": [1, 2, 3, 4], "label": ["a", "b", "b", "b"]}).to_csv(sub, index=False)
    grade = grader.grade(task, sub)
    assert grade.valid_submission and grade.score == 0.75
    assert not grader.grade(task, tmp_path / "missing.csv").valid_submission


def test_broken_plugin_is_reported_and_cli_still_works(tmp_path):
    """An installed distribution whose plugin module raises on import: discovered through real
    entry-point metadata on PYTHONPATH (a dist-info directory), so the shared env stays clean."""
    (tmp_path / "broken_sandmle_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    info = tmp_path / "broken_sandmle_plugin-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-sandmle-plugin\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[sandmle]\nbroken = broken_sandmle_plugin\n")
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = _sandmle("plugins", "--all", "--json", env=env)
    assert proc.returncode == 0
    assert "plugin 'broken' failed to load: RuntimeError: boom at import" in " ".join(proc.stderr.split())
    report = json.loads(proc.stdout)
    assert report["failed"] == [{"name": "broken", "error": "RuntimeError: boom at import"}]
    assert any(r["name"] == "sandmle.scaffolds.plugin" for r in report["plugins"])
    proc = _sandmle("list", "graders", env=env)
    assert proc.returncode == 0 and "default" in proc.stdout
    proc = _sandmle("plugins", env={**env, "SANDMLE_LOAD_PLUGINS": "backends"})
    assert "boom" not in proc.stderr  # the allowlist keeps it from being imported at all
