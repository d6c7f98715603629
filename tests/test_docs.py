"""The documentation site: it builds with ``mkdocs build --strict`` (a broken reference fails),
its generated reference pages say what the code says, its Python examples run, and every
``sandmle ...`` command it shows parses against the real command line (the cheap ones run)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from cli_support import cli  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def blocks(page: str, language: str) -> list[str]:
    """The page's code blocks in ``language``, except included files (tested as installed
    distributions) and blocks titled "abridged" (interface sketches)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [body for lang, info, body in FENCE.findall(text)
            if lang == language and "--8<--" not in body and "abridged" not in info]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # Start from no link farm, as a fresh clone does (a farm left by an earlier build once hid a
    # build that only failed on fresh clones).
    shutil.rmtree(ROOT / "build" / "docs-src", ignore_errors=True)
    proc = mkdocs_build(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _text(site: Path, page: str) -> str:
    html = (site / page / "index.html").read_text(encoding="utf-8")
    return re.sub(r"<[^>]+>", "", html)


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    assert sorted(pages(config["nav"])) == PAGES


def test_site_builds_strictly_with_generated_references(site):
    from sandmle.core import hookspecs
    from sandmle.core.registry import KINDS
    from sandmle.core.testing import checks_for

    recipes = _text(site, "reference/recipes")
    for needle in ("keep_max_mb", "ScaffoldLimits", "max_llm_calls", "NoiseConfig", "num_drafts",
                   "scaffolds: [aide]", "tasks: {source: {name: directory, args: {...}}}"):
        assert needle in recipes, needle
    cli_page = _text(site, "reference/cli")
    for needle in ("sandmle rollout", "--keep-files / --no-keep-files", "--backend-args", "sandmle recipe validate",
                   "sandmle sandbox check", "sandmle tasks export"):
        assert needle in cli_page, needle
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    usage = re.findall(r"<pre[^>]*>(?:<span></span>)?<code[^>]*>(.*?)</code></pre>", html, re.DOTALL)
    usage = [re.sub(r"<[^>]+>", "", u) for u in usage]
    assert any(u.startswith("Usage: sandmle generate [OPTIONS]") for u in usage), usage[:3]  # blocks, not inline
    assert len([u for u in usage if u.startswith("Usage: ")]) >= 20
    from sandmle.graders.metrics import METRIC_NAMES

    metrics = _text(site, "reference/metrics")  # generated from the code: every metric, its direction
    for name in METRIC_NAMES:
        assert re.search(rf"\b{name}\s*(lower|higher)", metrics), name
    assert re.search(r"mape\s*lower\s.{0,200}?percent \(not a fraction\)", metrics, re.S)
    assert re.search(r"SandmleError\s+1\s+Base class", cli_page) and re.search(r"RecipeError\s+2\s+A recipe", cli_page)
    graders = _text(site, "plugins/graders")
    for needle in ("Tiers are exclusive", "gold_threshold", "(N - p + 1) / N", "Ties", "write_task(",
                   "metric_lower_is_better", "at_or_above_median"):
        assert needle in graders, needle
    checks = _text(site, "plugins/conformance")
    for kind in KINDS:
        for fn in checks_for(kind):
            assert fn.__name__ in checks, fn.__name__
    hooks = _text(site, "reference/hooks")
    for name in (n for n in vars(hookspecs) if n.startswith("register_")):
        assert f"{name}(" in hooks, name
    assert ":class:" not in hooks and "``" not in hooks
    records = _text(site, "reference/records")
    for field in ("stdout_tail", "format_ok", "stop_reason", "valid_submission", "human_rank", "answers_path"):
        assert field in records, field
    assert "class EfficientMedalReward(Reward)" in _text(site, "plugins/rewards")  # snippets included


def test_a_broken_reference_fails_the_strict_build(tmp_path):
    """The site's own configuration on a one-page site: a good reference builds, a broken one
    (an object that does not exist) fails the build and is named."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    handler = config["plugins"][-1]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(ROOT / p) for p in handler["paths"]]
    docs = tmp_path / "docs"
    docs.mkdir()
    config.update(docs_dir=str(docs), nav=["index.md"], hooks=[str(DOCS / "hooks.py")])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    (docs / "index.md").write_text("# Good\n\n::: sandmle.core.records.Turn\n")
    good = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert good.returncode == 0, good.stderr[-3000:]
    (docs / "index.md").write_text("# Broken\n\n::: sandmle.core.records.NoSuchRecord\n")
    broken = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert broken.returncode != 0 and "sandmle.core.records.NoSuchRecord could not be found" in broken.stderr


# ----------------------------------------------------------------------------- Python examples
PYTHON_PAGES = [p for p in PAGES if blocks(p, "python")]


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory) -> Path:
    """What the examples refer to: a task folder ``toy-task`` in the working directory."""
    from sandmle.graders.toy import make_toy_task

    work = tmp_path_factory.mktemp("docs-examples")
    make_toy_task(work / "toy-task", "binary")
    return work


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_examples_run(page, example_dir, examples_on_path, monkeypatch, capsys):
    """The page's ```python blocks run in order in one namespace, in a folder holding a task.
    Blocks that define test functions are run too: the functions are defined, not called."""
    monkeypatch.chdir(example_dir)
    namespace: dict = {"__name__": f"docs_{page.replace('/', '_')}"}
    for i, code in enumerate(blocks(page, "python")):
        try:
            exec(compile(code, f"{page}[python block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page}, python block {i} failed: {type(exc).__name__}: {exc}\n{code}") from exc
    if page == "reference/sandbox-session.md":  # what the page says the session prints
        out = capsys.readouterr().out
        assert "0 /workspace" in out and "train.csv" in out, out


# ----------------------------------------------------------------------------- shell examples
def sandmle_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """(page, argv after ``sandmle``, environment assignments) for every command the docs show."""
    found = []
    for page in PAGES:
        for body in blocks(page, "bash"):
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                if not line:
                    continue
                words = shlex.split(line)
                env = {}
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    key, _, value = words.pop(0).partition("=")
                    env[key] = value
                if words and words[0] == "sandmle":
                    found.append((page, words[1:], env))
    return found


COMMANDS = sandmle_commands()


def _resolve(argv: list[str]) -> None:
    """Parse ``argv`` against the real command tree without running it. Paths that must exist
    (``runs/tasks/<task>``) are placeholders in the docs: only that error is tolerated."""
    from sandmle.core.cli import build_cli

    ctx = build_cli().make_context("sandmle", list(argv), resilient_parsing=False)
    cmd, args = ctx.command, ctx.protected_args + ctx.args
    while isinstance(cmd, click.Group) and args:
        name, cmd, args = cmd.resolve_command(ctx, args)
        assert cmd is not None, f"no command {name!r}"
        try:
            ctx = cmd.make_context(name, args, parent=ctx)
        except click.BadParameter as exc:
            if "does not exist" in exc.format_message():
                return
            raise
        args = ctx.protected_args + ctx.args if isinstance(cmd, click.Group) else []


def test_docs_show_commands():
    assert len(COMMANDS) > 25
    shown = {words[0] for _, words, _ in COMMANDS if words}
    assert {"rollout", "eval", "report", "plugins", "list", "recipe", "grade", "sandbox"} <= shown


@pytest.mark.parametrize("page,argv,env", COMMANDS, ids=[f"{p}:{' '.join(a)[:60]}" for p, a, _ in COMMANDS])
def test_shell_examples_parse(page, argv, env, examples_on_path):
    from sandmle.core import plugins

    plugins.reset()
    try:
        if argv and argv[0] == "--version":
            return
        _resolve(argv)
    except click.exceptions.Exit:  # --help
        pass
    except click.ClickException as exc:
        raise AssertionError(f"{page}: `sandmle {' '.join(argv)}` does not parse: {exc.format_message()}") from exc
    finally:
        plugins.reset()


CHEAP = ("--version", "--help", "plugins", "list", "recipe")


@pytest.mark.parametrize("page,argv,env", [c for c in COMMANDS if c[1] and c[1][0] in CHEAP],
                         ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None)
def test_cheap_shell_examples_run(page, argv, env, cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = cli(*argv, env=env)
    assert code == 0, f"{page}: sandmle {' '.join(argv)} -> {code}: {err}"
    assert out or argv[0] == "--version"


# ----------------------------------------------------------------------------- the guide per kind
KIND_PAGES = {"scaffolds": "scaffolds", "graders": "graders", "rewards": "rewards", "backends": "backends",
              "sandboxes": "sandboxes", "task_sources": "task-sources", "generators": "generators",
              "trainers": "trainers", "executors": "executors", "commands": "commands"}


@pytest.mark.parametrize("kind,page", KIND_PAGES.items())
def test_every_kind_has_a_guide_with_an_installable_worked_example(kind, page):
    text = (DOCS / "plugins" / f"{page}.md").read_text(encoding="utf-8")
    included = re.findall(r'--8<-- "([^"]+)"', text)
    assert any(p.endswith("pyproject.toml") for p in included) or kind == "graders", "no pyproject shown"
    assert any(p.endswith(".py") for p in included), "no plugin code shown"
    for path in included:
        assert (ROOT / path).is_file(), path
    plugin = [ROOT / p for p in included if Path(p).name == "plugin.py"]
    if kind == "graders":  # the grader shares its distribution (and plugin.py) with the scaffold
        plugin = [ROOT / "examples/sandmle-plugin-example/sandmle_plugin_example/plugin.py"]
    assert f"def register_{kind}(" in plugin[0].read_text(), f"{plugin[0]} has no register_{kind}"
    assert f"`register_{kind}(" in (DOCS / "plugins" / "index.md").read_text()


def test_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 120
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 5
    for link in links:
        assert (ROOT / link).is_file(), link

