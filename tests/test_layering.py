"""The house's one-way dependency rule (``DESIGN.md``, "Layout"), checked on the source text.

- ``core`` imports no other room (it reaches components only through the registry);
- no room imports ``sandmle.plugins`` (integrations plug in; nothing depends on them);
- ``plugins/`` is one sub-package per integration, each with a docstring saying what it
  integrates, and each its own entry point in the ``sandmle`` group.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ["core", "generators", "scaffolds", "graders", "sandboxes", "evaluation", "training"]


def _imported_modules(path: Path) -> set[str]:
    """Absolute ``sandmle.*`` modules a file imports (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m.startswith("sandmle.")}


def _room_of(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_core_or_rooms_but_never_plugins(room):
    offenders = []
    for path in sorted((ROOT / room).rglob("*.py")):
        for module in _imported_modules(path):
            target = _room_of(module)
            if target == "plugins" or (room == "core" and target != "core"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_plugins_is_one_documented_sub_package_per_integration_each_an_entry_point():
    loose = [p.name for p in (ROOT / "plugins").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside an integration's sub-package: {loose}"
    packages = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py"))
    for name in packages:
        doc = ast.get_docstring(ast.parse((ROOT / "plugins" / name / "__init__.py").read_text()))
        assert doc and "Uses ``core``" in doc, f"plugins/{name}/__init__.py must say what it integrates and which rooms it uses"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry_points = project["entry-points"]["sandmle"]
    assert {f"sandmle.plugins.{name}" for name in packages} <= set(entry_points.values())
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert {f"sandmle.plugins.{name}" for name in packages} <= listed  # else a wheel would miss them
