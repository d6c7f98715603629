"""Conformance checks for component authors, also loaded as a pytest plugin (``pytest11``).

Each check is a function registered with :func:`check` for one component kind; every kind has
checks (``checks_for(kind)`` lists them). Third-party authors run every check for their component::

    from sandmle.core.testing import run_checks
    results = run_checks("graders", MyGrader(), task=some_task)
    assert all(r.passed for r in results), [r for r in results if not r.passed]

or, inside pytest, use the ``sandmle_conformance`` fixture. Checks receive the component plus
the keyword context their signature names (a task, a sandbox, ...), raise ``AssertionError`` with
a reason on failure, and :class:`CheckSkipped` when they need context that was not given.
"""

from __future__ import annotations

import inspect
import sys
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


class CheckSkipped(Exception):
    """Raised by a check that needs context it was not given (the reason says which)."""


@dataclass
class CheckResult:
    """Outcome of one conformance check: ``passed``, or failed with ``detail`` saying why, or
    ``skipped`` (``passed`` is then False too: a skipped check proves nothing)."""

    kind: str
    name: str
    passed: bool
    detail: str = ""
    wall_s: float = 0.0
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("passed" if self.passed else "failed")


def checks_for(kind: str) -> list[Callable[..., Any]]:
    """The registered checks of ``kind`` (importing the modules that define the built-in ones)."""
    _import_builtin_checks()
    return list(_CHECKS[kind])


def run_checks(kind: str, component: Any, *, only: list[str] | None = None,
               **context: Any) -> list[CheckResult]:
    """Run every check of ``kind`` (or those named in ``only``) against ``component``; never raises.

    ``context`` holds what checks may use (``task=``, ``sandbox=``, ``recipe=``, ...): each check
    receives the keys its signature names."""
    import asyncio

    if kind not in _CHECKS:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    checks = checks_for(kind)
    if only is not None:
        unknown = sorted(set(only) - {fn.__name__ for fn in checks})
        if unknown:
            raise ValueError(f"no {kind} check named {unknown}")
        checks = [fn for fn in checks if fn.__name__ in only]
    results = []
    for fn in checks:
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in context.items() if k in params}
        t0 = time.perf_counter()
        try:
            out = fn(component, **kwargs)
            if inspect.iscoroutine(out):
                asyncio.run(out)
            summary = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
            results.append(CheckResult(kind, fn.__name__, True, summary, time.perf_counter() - t0))
        except CheckSkipped as skip:
            results.append(CheckResult(kind, fn.__name__, False, str(skip), time.perf_counter() - t0, skipped=True))
        except Exception as exc:  # noqa: BLE001 - a failed check is a result
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else traceback.format_exc(limit=3)
            results.append(CheckResult(kind, fn.__name__, False, detail, time.perf_counter() - t0))
    return results


# Each built-in package keeps the checks for its own kind next to its components.
_BUILTIN_CHECK_MODULES = (
    "sandmle.core.conformance",
    "sandmle.evaluation.conformance",
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
# The fixtures exist only inside pytest: pytest loads this module as its plugin (``pytest11``)
# after importing itself, while the CLI imports it for ``check`` alone and must not pay for
# importing pytest (a quarter of a second).
pytest = sys.modules.get("pytest")

if pytest is not None:

    @pytest.fixture
    def sandmle_conformance() -> Callable[..., list[CheckResult]]:
        """``sandmle_conformance(kind, component, **context)`` runs the checks and fails the test
        with every failed check listed."""

        def run(kind: str, component: Any, **context: Any) -> list[CheckResult]:
            results = run_checks(kind, component, **context)
            failed = [r for r in results if not r.passed and not r.skipped]
            if failed:
                pytest.fail("conformance failures:\n" + "\n".join(f"- {r.name}: {r.detail}" for r in failed))
            return results

        return run

    @pytest.fixture
    def sandmle_registry():
        """A fresh registry with every installed plugin loaded."""
        from .plugins import build_manager

        return build_manager().fill_registry()
