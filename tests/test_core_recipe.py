"""Recipes: schema, component resolution, and one-screen errors with YAML paths (exit code 2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandmle.core.cli import main
from sandmle.core.errors import RecipeError
from sandmle.core.plugins import get_registry
from sandmle.core.recipe import load_recipe, parse_recipe, resolve

GOOD = """
name: demo
seed: 3
tasks:
  generator: {name: procedural}
  n: 4
sandbox: local
backend: baseline
scaffolds: [react, {name: aide, args: {num_drafts: 2}}]
evaluation:
  seeds: [0, 1]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _cli_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 25, "a recipe error must fit on one screen"
    return " ".join(err.split())  # rich wraps long lines; compare on normalised whitespace


def test_good_recipe_parses_names_and_specs(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert [s.name for s in recipe.scaffolds] == ["react", "aide"]
    assert recipe.scaffolds[1].args == {"num_drafts": 2}
    assert recipe.tasks[0].generator.name == "procedural"
    assert recipe.stages() == ["generate", "evaluate"]
    assert [p.name for p in recipe.policies()] == ["baseline"]  # defaults to the recipe backend
    resolve(recipe, get_registry())
    assert recipe.scaffolds[1].config.num_drafts == 2


def test_unknown_key_names_path_and_valid_keys(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("seed: 3", "sead: 3"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "sead: unknown key (did you mean 'seed'?)" in err
    assert "valid keys:" in err and "output_dir" in err


def test_unknown_nested_key(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: [0, 1]\n  concurency: 2"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "evaluation.concurency: unknown key (did you mean 'concurrency'?)" in err


def test_unknown_component_lists_choices(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("[react,", "[reactt,"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "scaffolds[0]: unknown scaffold 'reactt'; valid choices:" in err
    for name in ("react", "aide", "mledojo"):
        assert name in err


def test_wrong_type_in_section(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("n: 4", "n: many"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "tasks[0].n:" in err and "valid integer" in err and "'many'" in err


def test_wrong_type_in_component_args(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("num_drafts: 2", "num_drafts: lots"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "scaffolds[1].args.num_drafts:" in err and "'lots'" in err


def test_unknown_component_argument(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("num_drafts: 2", "num_draft: 2"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "scaffolds[1].args.num_draft: unknown argument for scaffold 'aide' (did you mean 'num_drafts'?); valid arguments:" in err
    assert "num_drafts" in err


def test_missing_recipe_file(tmp_path, capsys):
    err = _cli_error(capsys, "recipe", "validate", str(tmp_path / "nope.yaml"))
    assert "recipe file not found" in err


def test_missing_task_directory(tmp_path, capsys):
    path = _write(tmp_path, f"""
        tasks:
          source: {{name: directory, args: {{path: {tmp_path / 'no-such-dir'}}}}}
        evaluation: {{}}
    """)
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "tasks[0].source.args.path" in err


def test_missing_plugin_file(tmp_path, capsys):
    path = _write(tmp_path, "plugins: [./not_here.py]\n")
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "plugins[0]: cannot load plugin './not_here.py'" in err


def test_invalid_yaml_names_line(tmp_path, capsys):
    path = _write(tmp_path, "name: x\nscaffolds: [react\n")
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "not valid YAML" in err and "line" in err


def test_generator_and_source_are_exclusive():
    with pytest.raises(RecipeError, match="exactly one of 'generator' or 'source'"):
        parse_recipe({"tasks": {"generator": "procedural", "source": "directory"}})
    with pytest.raises(RecipeError, match="a recipe must be a YAML mapping"):
        parse_recipe(["not", "a", "mapping"])


def test_errors_are_collected_not_first_only(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD.replace("[react,", "[reactt,").replace("backend: baseline", "backend: gpt-nope")))
    with pytest.raises(RecipeError) as err:
        resolve(recipe, get_registry())
    paths = [p for p, _ in err.value.problems]
    assert "backend" in paths and "scaffolds[0]" in paths


def test_local_py_plugin_from_recipe(tmp_path, capsys):
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent("""
        from sandmle.core import hookimpl, ComponentConfig

        class Cfg(ComponentConfig):
            level: int = 1

        @hookimpl
        def register_rewards(register):
            register("local-reward", lambda cfg: cfg, config=Cfg)
    """))
    path = _write(tmp_path, f"plugins: [{tmp_path / 'my_plugin.py'}]\nreward: {{name: local-reward, args: {{level: 5}}}}\n")
    main(["recipe", "validate", str(path)])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long temporary paths
    assert "is valid" in out and "local-reward(level=5)" in out


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    """The installed console script, as a user runs it."""
    path = _write(tmp_path, GOOD.replace("sandbox: local", "sandbox: {name: local, args: {nope: 1}}"))
    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "recipe", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "sandbox.args.nope: unknown argument for sandbox 'local'" in " ".join(proc.stderr.split())


def test_unknown_keys_and_unknown_components_are_reported_in_one_run(tmp_path, capsys):
    """Unknown keys used to stop validation before component names were looked at, so a second
    run found the rest; now one run reports both, names with a "did you mean"."""
    path = _write(tmp_path, GOOD.replace("seed: 3", "sead: 3").replace("[react,", "[reakt,")
                  .replace("backend: baseline", "backend: baselin"))
    err = _cli_error(capsys, "recipe", "validate", str(path))
    assert "sead: unknown key (did you mean 'seed'?)" in err
    assert "scaffolds[0]: unknown scaffold 'reakt'; valid choices: aide, mledojo, react; did you mean 'react'?" in err
    assert "backend: unknown backend 'baselin';" in err and "did you mean 'baseline'?" in err


def test_validate_json_reports_problems_and_plan(tmp_path, capsys):
    import json

    bad = _write(tmp_path, GOOD.replace("seed: 3", "sead: 3").replace("[react,", "[reakt,"))
    with pytest.raises(SystemExit) as info:
        main(["recipe", "validate", str(bad), "--json"])
    assert info.value.code == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {p["path"] for p in report["problems"]} == {"sead", "scaffolds[0]"}
    good = _write(tmp_path, GOOD)
    main(["recipe", "validate", str(good), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] and report["problems"] == [] and report["stages"] == ["generate", "evaluate"]
    assert {"where": "scaffolds[1]", "kind": "scaffold", "component": "aide(num_drafts=2)"} in report["plan"]
    assert report["commands"]["eval"] == {"ready": True, "problem": None}
    assert report["commands"]["train"]["ready"] is False


def test_validate_says_which_commands_would_refuse_the_recipe(tmp_path, capsys):
    """A recipe without evaluation: validated as fine, then `sandmle eval` refused it."""
    path = _write(tmp_path, GOOD.replace("evaluation:\n  seeds: [0, 1]\n", ""))
    main(["recipe", "validate", str(path)])
    out = " ".join(capsys.readouterr().out.split())
    assert "sandmle run: ready" in out
    assert "sandmle eval: would refuse (no evaluation: section" in out
    err = _cli_error(capsys, "recipe", "validate", str(path), "--for", "eval")
    assert "sandmle eval would refuse it: no evaluation: section" in err
    with pytest.raises(SystemExit) as info:  # what `eval` itself says about the same recipe
        main(["eval", str(path)])
    assert info.value.code != 0 and "no 'evaluation' section" in capsys.readouterr().err
    main(["recipe", "validate", str(path), "--for", "run"])  # generating alone is a run
