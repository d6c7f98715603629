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
    assert "between 1 and 4096, or 'auto'" in found["evaluation.concurrency"]
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
    no_traceback(sandmle("recipe", "validate", str(recipe)), "evaluation.concurrency", "between 1 and 4096")
    no_traceback(sandmle("eval", str(recipe)), "evaluation.concurrency")


def test_executor_concurrency_is_checked_too():
    from sandmle.core.plugins import get_registry
    from sandmle.evaluation.executors import resolve_concurrency

    recipe = parse_recipe({"evaluation": {"executor": {"name": "local", "args": {"concurrency": 0}}}})
    with pytest.raises(RecipeError) as info:
        resolve(recipe, get_registry())
    assert "between 1 and 4096" in dict(info.value.problems)["evaluation.executor.args.concurrency"]
    with pytest.raises(ValueError):
        resolve_concurrency(-2)


# ----------------------------------------------------------------------------- issue 26, item 10
BOMB = "".join(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9) if i else '1, 2, 3, 4, 5, 6, 7, 8, 9'}]\n"
               for i in range(9))


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_refused_at_once(tmp_path):
    """Nine lines that expand to 9**9 values: validating it took over 60 s (pydantic walked the
    expansion). The reader counts the expanded size on the node graph and stops at 100,000."""
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(BOMB)
    no_traceback(sandmle("recipe", "validate", recipe), "alias bomb", "line ")
    many = tmp_path / "aliases.yaml"
    many.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 300) + "]\n")
    no_traceback(sandmle("recipe", "validate", many), "more than 256 aliases")
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [*a]\n")
    no_traceback(sandmle("recipe", "validate", loop), "contains it")


def test_anchors_and_merge_keys_still_work(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: anchors\nscaffolds: &s [react]\nevaluation: {scaffolds: *s, seeds: [0, 1]}\n"
                      "sandbox: &box {name: local, args: {cpu_s: 30}}\n")
    loaded = load_recipe(recipe)
    assert [s.name for s in loaded.eval_scaffolds()] == ["react"] and loaded.sandbox.args == {"cpu_s": 30}
    merged = tmp_path / "m.yaml"
    merged.write_text("x-base: &base {n: 2, generator: procedural}\ntasks: {<<: *base, n: 3}\n")
    with pytest.raises(RecipeError) as info:  # merge key works; x-base is an unknown key, not a YAML error
        load_recipe(merged)
    assert list(dict(info.value.problems)) == ["x-base"]


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path):
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("[" * 20_000)
    no_traceback(sandmle("recipe", "validate", recipe), "nested more than 64 levels deep")


def test_duplicate_keys_name_the_key_and_both_lines(tmp_path):
    recipe = tmp_path / "dup.yaml"
    recipe.write_text("name: first\nseed: 1\nevaluation:\n  seeds: [0]\n  seeds: [1, 2]\n")
    no_traceback(sandmle("recipe", "validate", recipe), "line 5, column 3: duplicate key 'seeds' (first at line 4)")
    recipe.write_text("name: first\nseed: 1\nname: second\n")
    no_traceback(sandmle("recipe", "validate", recipe), "line 3, column 1: duplicate key 'name' (first at line 1)")


@pytest.mark.parametrize("body, where, words", [
    ("scaffolds: []", "scaffolds", "at least 1 item"),
    ('output_dir: "/"', "output_dir", "root"),
    ("evaluation: {concurrency: 1000000000000000000000000000000}", "evaluation.concurrency", "between 1 and 4096"),
    ('name: "run\\nforged\\u001b[31m"', "name", "control characters"),
    ("seed: -1", "seed", "greater than or equal to 0"),
    ("evaluation: {keep_max_mb: .nan}", "evaluation.keep_max_mb", "finite number"),
    ("evaluation: {seeds: [0, 99999999999]}", "evaluation.seeds[1]", "less than or equal to 4294967295"),
    ("tasks: {generator: procedural, n: 100000000000}", "tasks[0].n", "less than or equal to 1000000"),
    ("train: {trainer: sft, keep_checkpoints: 0}", "train.keep_checkpoints", "greater than or equal to 1"),
    ("sandbox: {name: local, args: {cpu_s: 100000000000000000000}}", "sandbox.args.cpu_s", "out of range"),
    ("reward: {name: milestone, args: {weights: {format: .inf}}}", "reward.args.weights.format", "finite number"),
])
def test_values_no_run_can_use_are_refused_with_their_path(tmp_path, body, where, words):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body + "\n")
    ran = sandmle("recipe", "validate", recipe)
    no_traceback(ran, where, words)
    assert ran.returncode == 2
