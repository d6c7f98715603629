"""The shipped quickstart recipe end to end through ``sandmle run`` (generate -> evaluate ->
report), with only its size and output directory changed so it fits the test budget
(``make quickstart`` runs it unchanged in CI)."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from test_eval_requirements import skip_unless_components  # noqa: E402  (tests/ is on sys.path)


def test_quickstart_recipe_is_shipped_and_valid():
    path = Path(str(resources.files("sandmle.recipes") / "quickstart.yaml"))
    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "recipe", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    skip_unless_components()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = yaml.safe_load(path.read_text())
    assert data["scaffolds"] == ["react", "aide", "mledojo"] and data["backend"] == "baseline"


def test_quickstart_runs_end_to_end(tmp_path):
    skip_unless_components()
    data = yaml.safe_load((Path(str(resources.files("sandmle.recipes"))) / "quickstart.yaml").read_text())
    data["tasks"]["n"] = 2
    data["tasks"]["seeds"] = ["breast-cancer-binary", "co2-forecast"]
    data["output_dir"] = str(tmp_path / "qs")
    recipe = tmp_path / "quickstart.yaml"
    recipe.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "run", str(recipe)],
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"report:{tmp_path / 'qs' / 'report.md'}" in "".join(out.split())  # wrapped or not
    rows = [yaml.safe_load(line) for line in (tmp_path / "qs" / "results.jsonl").read_text().splitlines()]
    assert sorted({r["scaffold"] for r in rows}) == ["aide", "mledojo", "react"] and len(rows) == 6
    assert all(r["status"] == "ok" and r["grade_valid_submission"] for r in rows), \
        [(r["task_id"], r["scaffold"], r.get("error")) for r in rows]
    assert (tmp_path / "qs" / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("name", ["quickstart", "cross_scaffold", "eval_mlebench_lite"])
def test_shipped_recipes_parse(name):
    """Structure (keys, types) of every shipped recipe; component names are checked by
    ``sandmle recipe validate`` in the end-to-end tests once all components are registered."""
    from sandmle.core.recipe import load_recipe
    from sandmle.core.runner import shipped_recipe

    recipe = load_recipe(shipped_recipe(name))
    assert recipe.evaluation is not None and recipe.tasks
    assert "evaluate" in recipe.stages()


@pytest.mark.parametrize("command", [["eval"], ["run"], ["recipe", "validate"]])
def test_unknown_recipe_name_lists_the_shipped_ones(command):
    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", *command, "no-such-recipe"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    shipped = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
    assert "quickstart" in shipped and f"shipped: {', '.join(shipped)})" in proc.stdout + proc.stderr


def test_shipped_recipe_validates_by_bare_name():
    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "recipe", "validate", "quickstart"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stdout and "evaluate" in proc.stdout
