"""Recipe values that used to hang, raise deep inside a run or mislead: refused when the recipe
is validated, each with its YAML path."""

from __future__ import annotations

import pytest

from sandmle.core.errors import RecipeError
from sandmle.core.recipe import load_recipe, output_dir_problem, parse_recipe, resolve

from test_reliability_cli import no_traceback, sandmle


def problems(data):
    with pytest.raises(RecipeError) as info:
        parse_recipe(data)
    return dict(info.value.problems)


@pytest.mark.parametrize("value", [0, -2])
def test_concurrency_must_be_positive_or_auto(value):
    found = problems({"evaluation": {"concurrency": value}})
    assert "at least 1 or 'auto'" in found["evaluation.concurrency"]
    assert parse_recipe({"evaluation": {"concurrency": "auto"}}).evaluation.concurrency == "auto"
    assert parse_recipe({"evaluation": {"concurrency": 3}}).evaluation.concurrency == 3


def test_names_are_folder_names_and_unique():
    assert "plain name" in problems({"name": "../../etc"})["name"]
    assert "plain name" in problems({"tasks": {"name": "a/b", "generator": "procedural"}})["tasks[0].name"]
    twice = [{"name": "x", "generator": "procedural"}, {"name": "x", "generator": "procedural"}]
    assert any("used twice" in msg for msg in problems({"tasks": twice}).values())
    assert "repeated" in problems({"evaluation": {"seeds": [0, 1, 0]}})["evaluation.seeds"]


def test_binary_recipe_and_folder_are_user_errors(tmp_path):
    binary = tmp_path / "r.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 20)
    with pytest.raises(RecipeError, match="not a text"):
        load_recipe(binary)
    with pytest.raises(RecipeError, match="is a folder"):
        load_recipe(tmp_path)


def test_output_dir_must_be_writable_folder(tmp_path):
    from sandmle.core.plugins import get_registry

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is not a folder" in output_dir_problem(a_file)
    assert "which is a file" in output_dir_problem(a_file / "run")
    assert "/proc" in output_dir_problem("/proc/self/run")
    assert output_dir_problem(tmp_path / "new" / "run") is None
    recipe = parse_recipe({"output_dir": str(a_file / "run")})
    with pytest.raises(RecipeError) as info:
        resolve(recipe, get_registry())
    assert "output folder unusable" in dict(info.value.problems)["output_dir"]


def test_recipe_validate_and_eval_refuse_zero_concurrency(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntasks: {generator: procedural, n: 1}\nevaluation: {concurrency: 0}\n")
    no_traceback(sandmle("recipe", "validate", str(recipe)), "evaluation.concurrency", "at least 1")
    no_traceback(sandmle("eval", str(recipe)), "evaluation.concurrency")


def test_executor_concurrency_is_checked_too():
    from sandmle.core.plugins import get_registry
    from sandmle.evaluation.executors import resolve_concurrency

    recipe = parse_recipe({"evaluation": {"executor": {"name": "local", "args": {"concurrency": 0}}}})
    with pytest.raises(RecipeError) as info:
        resolve(recipe, get_registry())
    assert "at least 1" in dict(info.value.problems)["evaluation.executor.args.concurrency"]
    with pytest.raises(ValueError):
        resolve_concurrency(-2)
