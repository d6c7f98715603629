"""Conformance checks for component authors, also loaded as a pytest plugin (``pytest11``).

Each check is a function registered with :func:`check` for one component kind. Third-party
authors run every check for their component::

    from sandmle.core.testing import run_checks
    results = run_checks("graders", MyGrader(), task=some_task)
    assert all(r.passed for r in results), [r for r in results if not r.passed]

or, inside pytest, use the ``sandmle_conformance`` fixture. Checks receive the component plus
keyword context (a task, a sandbox, ...) and raise ``AssertionError`` with a reason on failure.
"""

from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from .registry import KINDS

_CHECKS: dict[str, list[Callable[..., Any]]] = {kind: [] for kind in KINDS}


def check(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a conformance check for components of ``kind``."""
    if kind not in _CHECKS:
        raise ValueError(f"unknown component kind {kind!r}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _CHECKS[kind].append(fn)
        return fn

    return deco


@dataclass
class CheckResult:
    """Outcome of one conformance check."""

    kind: str
    name: str
    passed: bool
    detail: str = ""
    wall_s: float = 0.0


def checks_for(kind: str) -> list[Callable[..., Any]]:
    """The registered checks of ``kind`` (importing the modules that define the built-in ones)."""
    _import_builtin_checks()
    return list(_CHECKS[kind])


def run_checks(kind: str, component: Any, **context: Any) -> list[CheckResult]:
    """Run every check of ``kind`` against ``component``; never raises."""
    import asyncio

    results = []
    for fn in checks_for(kind):
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in context.items() if k in params}
        t0 = time.perf_counter()
        try:
            out = fn(component, **kwargs)
            if inspect.iscoroutine(out):
                asyncio.run(out)
            results.append(CheckResult(kind, fn.__name__, True, (fn.__doc__ or "").strip().split("\n")[0],
                                       time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - a failed check is a result
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else traceback.format_exc(limit=3)
            results.append(CheckResult(kind, fn.__name__, False, detail, time.perf_counter() - t0))
    return results


# Each built-in package keeps the checks for its own kind next to its components.
_BUILTIN_CHECK_MODULES = (
    "sandmle.sandboxes.conformance",
    "sandmle.scaffolds.conformance",
    "sandmle.graders.conformance",
)


def _import_builtin_checks() -> None:
    import importlib

    for mod in _BUILTIN_CHECK_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


# ----------------------------------------------------------------------------- pytest plugin
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed to use the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def sandmle_conformance() -> Callable[..., list[CheckResult]]:
        """``sandmle_conformance(kind, component, **context)`` runs the checks and fails the test
        with every failed check listed."""

        def run(kind: str, component: Any, **context: Any) -> list[CheckResult]:
            results = run_checks(kind, component, **context)
            failed = [r for r in results if not r.passed]
            if failed:
                pytest.fail("conformance failures:\n" + "\n".join(f"- {r.name}: {r.detail}" for r in failed))
            return results

        return run

    @pytest.fixture
    def sandmle_registry():
        """A fresh registry with every installed plugin loaded."""
        from .plugins import build_manager

        return build_manager().fill_registry()
