"""Shared by the evaluation tests: which real components an end-to-end study needs."""

from __future__ import annotations

import pytest

NEEDED = {"task_sources": ["directory"], "backends": ["baseline"],
          "scaffolds": ["react", "aide", "mledojo"], "graders": ["default"], "rewards": ["milestone"]}


def missing_components() -> list[str]:
    from sandmle.core.plugins import get_manager

    manager = get_manager()
    manager.fill_registry()
    return [f"{kind}/{name}" for kind, names in NEEDED.items() for name in names
            if name not in manager.registry.names(kind)]


def skip_unless_components() -> None:
    """Skip (loudly, naming what is missing) while another area's components are not registered."""
    missing = missing_components()
    if missing:
        pytest.skip("end-to-end evaluation needs components not registered yet: " + ", ".join(missing))
