"""Core CLI: --version, plugins, list, run with stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandmle.core.cli import main
from sandmle.core.plugins import _sandmle_version
from sandmle.core.registry import KINDS


def _run(capsys, *argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit as exc:  # click's --version exits 0
        assert exc.code in (0, None)
    return capsys.readouterr().out


def test_version(capsys):
    assert _sandmle_version() in _run(capsys, "--version")


def test_plugins_json_lists_every_builtin_registration(capsys):
    report = json.loads(_run(capsys, "plugins", "--all", "--json"))
    assert set(report) == {"plugins", "failed", "clashes", "blocked"}  # one shape, failures or not
    rows = report["plugins"]
    by_name = {r["name"]: r for r in rows}
    assert "sandmle.core.commands" in by_name
    assert by_name["sandmle.scaffolds.plugin"]["components"]["scaffolds"] == ["aide", "mledojo", "react"]
    assert "register_scaffolds" in by_name["sandmle.scaffolds.plugin"]["hooks"]
    assert all(r["version"] for r in rows if r["builtin"])
    # entry-point plugins of our own distribution are built-in too, and registered like any plugin
    assert by_name["openai"]["builtin"] and "litellm" in by_name["openai"]["components"]["backends"]


def test_plugins_without_all_hides_builtins(capsys):
    rows = json.loads(_run(capsys, "plugins", "--json"))["plugins"]
    assert not any(r["builtin"] for r in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_list_every_kind(capsys, kind):
    items = json.loads(_run(capsys, "list", kind, "--json"))
    assert isinstance(items, list)
    for item in items:
        assert item["name"] and item["plugin"]


def test_list_accepts_singular(capsys):
    names = [i["name"] for i in json.loads(_run(capsys, "list", "scaffold", "--json"))]
    assert {"react", "aide", "mledojo"} <= set(names)


def test_run_prints_plan_and_writes_run_metadata(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: plan-only\noutput_dir: {tmp_path / 'out'}\n")
    out = _run(capsys, "run", str(recipe))
    assert "recipe plan-only: plan" in out and "nothing to run" in out
    assert "plugins (" in out and "sandmle.scaffolds.plugin" in out
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert meta["recipe"]["name"] == "plan-only"
    assert meta["resolved"]["scaffolds[0]"]["limits"]["max_llm_calls"] >= 1
    assert any(p["name"] == "sandmle.core.commands" for p in meta["plugins"])


@pytest.mark.parametrize("spelling", ["task_sources", "task-sources", "task_source", "task-source", "Task-Sources"])
def test_list_accepts_every_spelling_of_a_kind(capsys, spelling):
    names = [i["name"] for i in json.loads(_run(capsys, "list", spelling, "--json"))]
    assert {"directory", "sandmle-release"} <= set(names)


def test_list_refuses_an_unknown_kind_naming_the_kinds(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "widgets"])
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'widgets' is not a component kind; kinds: generators, scaffolds" in err


def test_list_json_schemas_carry_their_defs(capsys):
    items = {i["name"]: i for i in json.loads(_run(capsys, "list", "scaffolds", "--json"))}
    schema = items["react"]["config"]
    assert schema["properties"]["limits"]["$ref"] == "#/$defs/ScaffoldLimits"
    assert set(schema["$defs"]["ScaffoldLimits"]["properties"]) == {"max_llm_calls", "max_wall_s", "exec_timeout_s"}

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for kind in KINDS:  # every $ref of every component resolves inside its own schema
        for item in json.loads(_run(capsys, "list", kind, "--json")):
            for ref in refs(item["config"]):
                assert ref.startswith("#/$defs/") and ref.split("/")[-1] in item["config"]["$defs"], (item["name"], ref)


def test_plugins_table_never_cuts_plugin_names(capsys, monkeypatch):
    from rich.console import Console

    from sandmle.core import cli

    monkeypatch.setattr(cli, "console", Console(width=60, force_terminal=False))
    out = _run(capsys, "plugins", "--all")
    for name in ("sandmle.evaluation.plugin", "sandmle.generators.plugin", "sandmle.scaffolds.plugin"):
        assert name in out, f"{name} cut in:\n{out}"
    assert "…" not in out.split("┃ plugin")[1].split("\n")[2]


def test_loading_every_plugin_imports_no_heavy_library():
    """Every ``sandmle`` command loads all plugins to build its command line; a plugin that
    imports pandas/sklearn/torch at registration made even ``sandmle --help`` take seconds (it
    took 7 s). Factories and commands import them when used. A fresh interpreter, so that
    nothing imported by other tests hides a regression."""
    heavy = ["pandas", "numpy", "scipy", "sklearn", "torch", "transformers", "langgraph", "litellm",
             "ray", "verl", "trl"]
    code = ("import sys\nfrom sandmle.core.cli import build_cli\nbuild_cli()\n"
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "", f"imported while loading plugins: {proc.stdout.strip()}"


_FLOOR = """
import sys, importlib.metadata, click, pluggy, pydantic, rich.console, rich.table, yaml
class Model(pydantic.BaseModel):
    x: int = 1
print(len(sys.modules))
"""

_CLI = """
import sys
from sandmle.core.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", len(sys.modules), ",".join(sorted(m for m in sys.modules if m.split(".")[0] == "pytest"
      or m in ("sandmle.sandboxes.local", "sandmle.evaluation.executors", "sandmle.core.testing"))))
"""


@pytest.mark.parametrize("argv", [["--help"], ["list", "scaffolds"]])
def test_help_and_list_import_little_beyond_their_libraries(argv):
    """``sandmle --help`` took 3.8 s: it imported pytest (through the conformance checks), the
    local sandbox (asyncio, ctypes) and the executors for nothing. Counted in a fresh interpreter
    as modules imported, relative to the floor of the libraries any command needs (click, pluggy,
    pydantic, rich, yaml): 551 modules, 1.77x the floor, before; 418 (--help) and 439 (list)
    after. Not a wall-clock assertion (the machine is shared); `sandmle --help` measured 0.4 s."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    floor = subprocess.run([sys.executable, "-c", _FLOOR], capture_output=True, text=True, timeout=120, env=env)
    proc = subprocess.run([sys.executable, "-c", _CLI, *argv], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES"))
    _, count, unwanted = (line.split(" ") + [""])[:3]
    assert unwanted == "", f"{argv} imported {unwanted}"
    ratio = int(count) / int(floor.stdout.strip())
    assert ratio < 1.6, f"{argv}: {count} modules, {ratio:.2f}x the libraries' floor of {floor.stdout.strip()}"


def test_exit_codes_are_what_the_cli_reference_says(tmp_path, capsys):
    """docs/reference/cli.md "Exit codes": a plain SandmleError exits 1, invalid input 2."""
    with pytest.raises(SystemExit) as info:
        main(["generate", "--out", "/proc/sandmle-run"])  # SandmleError("--out: ... /proc ...")
    assert info.value.code == 1 and "lies under /proc" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sead: 1\n")
    with pytest.raises(SystemExit) as info:
        main(["recipe", "validate", str(recipe)])
    assert info.value.code == 2
