"""MkDocs hooks: reference pages generated from the code, so they cannot drift from it.

- Loading this module links every ``sandmle.*`` package folder (``core/`` -> ``sandmle/core``)
  under ``build/docs-src`` so mkdocstrings finds the modules statically (the editable install's
  import hook is invisible to static tools). It happens at import, while MkDocs reads the config:
  mkdocstrings drops search paths that do not exist when its handler starts (it globs them), which
  is before any ``on_config`` hook of ours runs on a fresh clone.
- ``on_page_markdown`` replaces markers with generated Markdown:

  ``<!-- sandmle:cli -->``               every command of ``sandmle`` (from click)
  ``<!-- sandmle:recipe -->``            the recipe's own sections (from the pydantic models)
  ``<!-- sandmle:components -->``        every built-in component's arguments, nested models included
  ``<!-- sandmle:kinds -->``             kinds, their hooks and built-in components
  ``<!-- sandmle:hooks -->``             every hookspec with its parameters
  ``<!-- sandmle:checks -->``            every conformance check, per kind, with what it needs
"""

from __future__ import annotations

import inspect
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- sandmle:(\w+) -->")


def link_packages() -> None:
    """Symlink each package folder under ``build/docs-src/sandmle`` (idempotent)."""
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    farm = ROOT / "build" / "docs-src" / "sandmle"
    farm.mkdir(parents=True, exist_ok=True)
    for package, folder in package_dirs.items():
        link = farm / package.split(".", 1)[1]
        if link.is_symlink() and link.resolve() == (ROOT / folder).resolve():
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(ROOT / folder, target_is_directory=True)


link_packages()


def on_config(config: Any) -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: rst_to_md(GENERATORS[m.group(1)]()), markdown)


# Docstrings use Sphinx roles (:class:`sandmle.core.records.Grade`); on the site they read as code.
ROLE_HTML = re.compile(r":(?:class|func|data|attr|mod|meth|doc):<code>~?([^<]*?)</code>")
ROLE_MD = re.compile(r":(?:class|func|data|attr|mod|meth|doc):`~?([^`]*?)`")


# ``x`` (reST inline code), but not a ``` fence: replacing every `` turned each fence into
# inline text (the CLI reference's usage blocks rendered as one line of code).
RST_CODE = re.compile(r"(?<!`)``([^`\n]+?)``(?!`)")


def rst_to_md(text: str) -> str:
    """Sphinx roles and ``double backticks`` as Markdown inline code; code fences kept."""
    return RST_CODE.sub(r"`\1`", ROLE_MD.sub(r"`\1`", text))


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return ROLE_HTML.sub(r"<code>\1</code>", html)


# ----------------------------------------------------------------------------- helpers
def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type_name(t: Any) -> str:
    """A type as a reader writes it in YAML terms: ``int | None``, ``list[str]``, ``component``."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else name
    if t is type(None):
        return "None"
    if t is typing.Any:
        return "any"
    if isinstance(t, type):
        return "component" if t.__name__ == "ComponentSpec" else t.__name__
    return str(t)


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "*required*"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "*required*"
    if isinstance(value, BaseModel):  # a component spec shows its name, a nested model its table
        return f"`{value.name}`" if type(value).__name__ == "ComponentSpec" else f"see {type(value).__name__}"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "[" + ", ".join(getattr(v, "name", type(v).__name__) for v in value) + "]"
    return f"`{value!r}`"


def _nested(annotation: Any) -> list[type]:
    """Pydantic models inside ``annotation`` (``Limits``, ``Limits | None``, ``list[Spec]``)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def model_table(model: type, seen: set[type] | None = None, title: str | None = None,
                expand: bool = True) -> str:
    """A Markdown table of a pydantic model's fields, followed by tables of its nested models
    (unless ``expand`` is False)."""
    seen = set() if seen is None else seen
    seen.add(model)
    lines = [f"**{title or model.__name__}**", ""]
    doc = inspect.cleandoc(model.__doc__ or "")
    if doc and "Usage docs" not in doc:
        lines += [doc.split("\n\n")[0].replace("\n", " "), ""]
    if not model.model_fields:
        return "\n".join(lines + ["(no arguments)", ""])
    lines += ["| argument | type | default | description |", "|---|---|---|---|"]
    nested: list[type] = []
    for name, field in model.model_fields.items():
        lines.append(f"| `{name}` | `{_cell(_type_name(field.annotation))}` | {_cell(_default(field))} | "
                     f"{_cell(field.description or '')} |")
        nested += [m for m in _nested(field.annotation) if m not in seen and m not in nested]
    lines.append("")
    for sub in nested if expand else []:
        if sub not in seen:
            lines.append(model_table(sub, seen))
    return "\n".join(lines)


def _registry_and_builtins() -> tuple[Any, set[str]]:
    from sandmle.core.plugins import build_manager

    manager = build_manager()
    registry = manager.fill_registry()
    return registry, {row["name"] for row in manager.plugins() if row["builtin"]}


# ----------------------------------------------------------------------------- generators
def recipe_sections() -> str:
    from sandmle.core.recipe import ComponentSpec, EvaluationSection, Recipe, TasksSection, TrainSection

    sections = ((Recipe, "top level"), (TasksSection, "tasks: (one task set, or a list of them)"),
                (TrainSection, "train:"), (EvaluationSection, "evaluation:"),
                (ComponentSpec, "a `component`: a name, or {name, args}"))
    return "\n".join(model_table(model, title=title, expand=False) for model, title in sections)


#: How a recipe selects a component of each kind.
RECIPE_KEY = {"generators": "tasks: {{generator: {name}}}", "scaffolds": "scaffolds: [{name}]",
              "graders": "grader: {name}", "rewards": "reward: {name}", "trainers": "train: {{trainer: {name}}}",
              "sandboxes": "sandbox: {name}", "backends": "backend: {name}",
              "task_sources": "tasks: {{source: {{name: {name}, args: {{...}}}}}}",
              "executors": "evaluation: {{executor: {name}}}"}


def components() -> str:
    from sandmle.core.registry import KINDS

    registry, builtins = _registry_and_builtins()
    out = []
    for kind in KINDS:
        infos = [i for i in registry.entries(kind) if i.plugin in builtins]
        if not infos:
            continue
        out += [f"### {kind.replace('_', ' ')}", ""]
        for info in infos:
            extra = f" (needs `pip install 'sandmle[{info.extra}]'`)" if info.extra else ""
            usage = RECIPE_KEY[kind].format(name=info.name)
            out += [f"#### `{info.name}`", "", f"{info.description}{extra}. Registered by `{info.plugin}`; "
                    f"in a recipe: `{usage}`.", "", model_table(info.config), ""]
    return "\n".join(out)


def kinds() -> str:
    from sandmle.core.registry import KINDS

    registry, builtins = _registry_and_builtins()
    lines = ["| kind | hook | built-in components |", "|---|---|---|"]
    for kind in KINDS:
        names = ", ".join(f"`{i.name}`" for i in registry.entries(kind) if i.plugin in builtins) or "(none yet)"
        lines.append(f"| {kind.replace('_', ' ')} | `register_{kind}(register)` | {names} |")
    return "\n".join(lines) + "\n"


def hooks() -> str:
    from sandmle.core import hookspecs

    out = []
    for name, fn in vars(hookspecs).items():
        if not hasattr(fn, "sandmle_spec"):  # pluggy marks every hookspec with its project's name
            continue
        params = ", ".join(inspect.signature(fn).parameters)
        doc = inspect.cleandoc(fn.__doc__ or "")
        body, _, param_text = doc.partition(":param ")
        out += [f"### `{name}({params})`", "", body.strip(), ""]
        for part in (":param " + param_text).split(":param ")[1:] if param_text else []:
            pname, _, desc = part.partition(":")
            out += [f"`{pname.strip()}`", f":   {' '.join(desc.split())}", ""]
    return "\n".join(out)


def checks() -> str:
    from sandmle.core.registry import KINDS
    from sandmle.core.testing import checks_for

    out = []
    for kind in KINDS:
        fns = checks_for(kind)
        out += [f"### {kind.replace('_', ' ')} ({len(fns)} check{'s' if len(fns) != 1 else ''})", "",
                "| check | what it asserts | context it uses |", "|---|---|---|"]
        for fn in fns:
            context = [p for p in list(inspect.signature(fn).parameters)[1:]]
            summary = " ".join(inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].split())
            out.append(f"| `{fn.__name__}` | {_cell(summary)} | {', '.join(f'`{c}`' for c in context) or '-'} |")
        out.append("")
    return "\n".join(out)


def cli() -> str:
    import click

    from sandmle.core.cli import build_cli

    root = build_cli()
    out: list[str] = []

    def walk(cmd: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        if len(path) > 1:
            out.extend([f"### `{' '.join(path)}`", "", "```text", cmd.get_usage(ctx).strip(), "```", "",
                        inspect.cleandoc(cmd.help or ""), ""])
            rows = []
            for p in cmd.params:
                kind = p.type.name
                if isinstance(p.type, click.Choice):
                    kind = " \\| ".join(f"`{c}`" for c in p.type.choices)
                if isinstance(p, click.Argument):
                    rows.append((f"`{p.human_readable_name}`", kind, "*required*" if p.required else "", ""))
                elif isinstance(p, click.Option) and not p.hidden:
                    names = " / ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
                    default = p.default
                    shown = ("" if default is None or "Sentinel" in repr(default) or (p.is_flag and not p.secondary_opts)
                             else f"`{default}`")
                    rows.append((names, "flag" if p.is_flag and not p.secondary_opts else kind, shown,
                                 _cell(p.help or "")))
            if rows:
                out.extend(["| parameter | type | default | description |", "|---|---|---|---|"])
                out.extend(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
                out.append("")
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], path + [name], ctx)

    walk(root, ["sandmle"], None)
    return "\n".join(out)


# The formula and unit of each built-in metric (sandmle.graders.metrics). The table below is
# built from the code's own list: a metric added there without a line here fails the docs build.
METRIC_FORMULAS: dict[str, tuple[str, str]] = {
    "accuracy": ("share of rows whose label equals the answer", "fraction 0-1"),
    "balanced_accuracy": ("mean over classes of the recall of that class", "fraction 0-1"),
    "f1": ("2·precision·recall / (precision + recall) of the positive class (1)", "fraction 0-1"),
    "f1_macro": ("unweighted mean of each class's F1", "fraction 0-1"),
    "f1_micro": ("F1 of the pooled true/false positives and negatives of every class", "fraction 0-1"),
    "f1_weighted": ("mean of each class's F1 weighted by its count in the answers", "fraction 0-1"),
    "qwk": ("Cohen's kappa with quadratic weights: 1 - Σ w·O / Σ w·E, w = (i-j)²", "-1 to 1"),
    "roc_auc": ("area under the ROC curve of P(class 1) (multi-class: one-vs-rest, macro)", "fraction 0-1"),
    "roc_auc_macro": ("ROC AUC per class, one-vs-rest, unweighted mean", "fraction 0-1"),
    "roc_auc_micro": ("ROC AUC of every (row, class) probability pooled", "fraction 0-1"),
    "mean_column_auc": ("mean over target columns of that column's ROC AUC; rows whose answers sum "
                        "below 0 (Kaggle's 'not scored' -1 rows) dropped", "fraction 0-1"),
    "log_loss": ("-mean Σ_c y_c·log p_c, p clipped to [eps, 1-eps], not renormalised (sklearn's)", "nats ≥ 0"),
    "multi_log_loss": ("the same as log_loss, for one column per class", "nats ≥ 0"),
    "rmse": ("√(mean (y - ŷ)²)", "the target's unit"),
    "mse": ("mean (y - ŷ)²", "the target's unit squared"),
    "mae": ("mean |y - ŷ|", "the target's unit"),
    "rmsle": ("√(mean (log(1+y) - log(1+ŷ))²); negative predictions are refused", "log units ≥ 0"),
    "mean_column_rmsle": ("mean over target columns of that column's RMSLE", "log units ≥ 0"),
    "mape": ("100 · mean |y - ŷ| / max(|y|, eps)", "percent (not a fraction)"),
    "smape": ("100 · mean 2|ŷ - y| / (|y| + |ŷ|), 0 where both are 0", "percent, 0-200"),
    "r2": ("1 - Σ(y - ŷ)² / Σ(y - ȳ)²", "≤ 1 (can be negative)"),
    "map_at_3": ("mean of 1/rank of the true label among the first 3 space-separated guesses (0 if absent)",
                 "fraction 0-1"),
    "map_at_5": ("the same with 5 guesses", "fraction 0-1"),
    "spearman": ("Spearman rank correlation of y and ŷ (0 when undefined)", "-1 to 1"),
    "pearson": ("Pearson correlation of y and ŷ (0 when undefined)", "-1 to 1"),
    "sequence_accuracy": ("share of rows whose text equals the answer exactly", "fraction 0-1"),
    "word_accuracy": ("share of word positions equal to the answer's, over all rows (the longer of the "
                      "two word lists counts)", "fraction 0-1"),
}


def metrics() -> str:
    from sandmle.graders.metrics import ALIASES, METRIC_NAMES, get_metric

    missing = sorted(set(METRIC_NAMES) - set(METRIC_FORMULAS))
    stale = sorted(set(METRIC_FORMULAS) - set(METRIC_NAMES))
    if missing or stale:
        raise KeyError(f"docs/hooks.py METRIC_FORMULAS is out of date: add {missing}, remove {stale}")
    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    out = ["| metric | better | formula | unit | also spelled |", "|---|---|---|---|---|"]
    for name in METRIC_NAMES:
        formula, unit = METRIC_FORMULAS[name]
        better = "lower" if get_metric(name).lower_is_better else "higher"
        spelled = ", ".join(f"`{a}`" for a in sorted(aliases.get(name, [])))
        out.append(f"| `{name}` | {better} | {_cell(formula)} | {_cell(unit)} | {spelled} |")
    return "\n".join(out)


def exit_codes() -> str:
    """Every user-facing error class of the core with the exit code ``sandmle`` ends with."""
    import sandmle.core.arguments  # noqa: F401  (defines ArgumentError)
    import sandmle.core.task  # noqa: F401  (defines MetricClashError)
    from sandmle.core.errors import SandmleError

    def walk(cls: type) -> list[type]:
        return [cls] + [c for sub in cls.__subclasses__() for c in walk(sub)]

    rows = ["| error | exit code | raised for |", "|---|---|---|"]
    for cls in walk(SandmleError):
        if not cls.__module__.startswith("sandmle.core"):
            continue
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        rows.append(f"| `{cls.__name__}` | {cls.exit_code} | {_cell(doc)} |")
    return "\n".join(rows)


GENERATORS = {"exit_codes": exit_codes, "metrics": metrics, "cli": cli, "recipe": recipe_sections, "components": components, "kinds": kinds,
              "hooks": hooks, "checks": checks}
