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
from cli_support import cli  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]


def _sandmle(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandmle.core.cli", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


@pytest.fixture
def example_installed(examples_on_path):
    """The example distributions, installed once per test session (see conftest.py)."""
    return examples_on_path


def test_example_plugin_is_listed_with_version(example_installed):
    proc = _sandmle("plugins", "--json", env=example_installed)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["plugins"]
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


def fake_distribution(site: Path, dist: str, entry: str, source: str) -> dict[str, str]:
    """An installed distribution ``dist`` whose ``sandmle`` entry point ``entry`` is a module
    holding ``source``: real entry-point metadata (a dist-info folder) in ``site``, found through
    PYTHONPATH (subprocesses) or ``sys.path`` (in-process), so the shared environment stays clean.
    Returns the subprocess environment."""
    module = dist.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[sandmle]\n{entry} = {module}\n")
    return {"PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_broken_plugin_is_reported_and_cli_still_works(tmp_path, cli):
    env = fake_distribution(tmp_path, "broken-sandmle-plugin", "broken", "raise RuntimeError('boom at import')\n")
    proc = _sandmle("plugins", "--all", "--json", env=env)  # once as a real process
    assert proc.returncode == 0
    assert "plugin 'broken' failed to load: RuntimeError: boom at import" in " ".join(proc.stderr.split())
    report = json.loads(proc.stdout)
    [failure] = report["failed"]
    assert failure["name"] == "broken" and failure["error"].startswith("failed to load: RuntimeError: boom at import")
    assert "SANDMLE_BLOCK_PLUGINS=broken" in failure["error"]
    assert any(r["name"] == "sandmle.scaffolds.plugin" for r in report["plugins"])
    code, out, _ = cli("list", "graders", env=env)
    assert code == 0 and "default" in out
    code, _, err = cli("plugins", env={**env, "SANDMLE_LOAD_PLUGINS": "openai"})
    assert "boom" not in err  # the allowlist keeps it from being imported at all
    code, out, err = cli("plugins", env={**env, "SANDMLE_BLOCK_PLUGINS": "broken"})
    assert "boom" not in err and "blocked by SANDMLE_BLOCK_PLUGINS: broken" in out


MISSPELLED = """
    from sandmle.core import hookimpl

    @hookimpl
    def register_grader(register):
        register("never-registered", lambda cfg: None)
"""


def test_misspelled_hook_is_one_error_and_the_cli_keeps_working(tmp_path, cli):
    env = fake_distribution(tmp_path, "sandmle-typo", "typo", MISSPELLED)
    code, out, err = cli("--help", env=env)
    assert code == 0 and "Traceback" not in err
    assert "Commands:" in out and "rollout" in out
    assert err.count("error:") == 1 and "warning" not in err.lower()
    for part in ("plugin 'typo'", "'register_grader'", "did you mean 'register_graders'?",
                 "SANDMLE_BLOCK_PLUGINS=typo", "pip uninstall sandmle-typo"):
        assert part in err, part
    code, out, _ = cli("list", "graders", "--json", env=env)
    assert code == 0 and "never-registered" not in out
    assert "default" in [g["name"] for g in json.loads(out)]
    code, out, err = cli("--help", env={**env, "SANDMLE_BLOCK_PLUGINS": "typo"})
    assert code == 0 and err == ""


CLASH = """
    from sandmle.core import hookimpl

    @hookimpl
    def register_graders(register):
        def make(config):
            return "{who}"
        register("exact", make, description="exact match by {who}")
"""


def test_name_clash_fails_only_the_commands_that_use_the_name(tmp_path, cli):
    env = fake_distribution(tmp_path, "sandmle-alpha", "alpha", CLASH.format(who="alpha"))
    env = fake_distribution(tmp_path, "sandmle-beta", "beta", CLASH.format(who="beta"))
    code, out, err = cli("--help", env=env)
    assert code == 0 and err == ""
    code, out, _ = cli("list", "scaffolds", env=env)
    assert code == 0 and "react" in out
    [clash] = json.loads(cli("plugins", "--json", env=env)[1])["clashes"]
    assert clash["kind"] == "graders" and clash["name"] == "exact" and clash["plugins"] == ["alpha", "beta"]
    listed = json.loads(cli("list", "graders", "--json", env=env)[1])
    assert {(g["name"], g["plugin"], g["clash"]) for g in listed if g["name"] == "exact"} == {
        ("exact", "alpha", True), ("exact", "beta", True)}
    recipe = tmp_path / "r.yaml"
    recipe.write_text("grader: exact\n")
    code, _, err = cli("recipe", "validate", str(recipe), env=env)
    assert code == 2 and "Traceback" not in err
    assert "grader: grader 'exact' is registered by several plugins: 'alpha', 'beta'" in err
    assert "'alpha/exact' or 'beta/exact'" in err and "SANDMLE_BLOCK_PLUGINS=beta" in err
    recipe.write_text("grader: beta/exact\n")
    assert cli("recipe", "validate", str(recipe), env=env)[0] == 0
    recipe.write_text("grader: default\n")  # another grader of the same kind is unaffected
    assert cli("recipe", "validate", str(recipe), env=env)[0] == 0
    recipe.write_text("grader: exact\n")
    assert cli("recipe", "validate", str(recipe), env={**env, "SANDMLE_BLOCK_PLUGINS": "beta"})[0] == 0
