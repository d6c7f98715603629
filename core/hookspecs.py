"""Hook specifications: one ``register_<kind>s(register)`` hook per component kind, plus
``register_commands`` (CLI sub-commands) and ``metric_lower_is_better`` (what a metric means).

A plugin is any module (or object) with functions decorated by :data:`hookimpl`. Built-in
components register through these very hooks, so a ``pip install``ed plugin is a peer of
the built-ins, not a second-class extension.

Every ``register`` callback has the signature::

    register(name, factory, *, config=None, description="", extra=None)

``factory(config)`` builds the component from a validated instance of ``config`` (a pydantic
model, or ``"module:Class"`` naming one, imported when first needed; ``None`` means the
component takes no arguments). Keep factories cheap to *register*:
import heavy dependencies inside the factory so that ``sandmle plugins`` stays fast and a
missing optional dependency only fails when the component is actually used.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("sandmle")
hookimpl = pluggy.HookimplMarker("sandmle")


@hookspec
def register_generators(register: Any) -> None:
    """Register task generators (turn seed tasks into verified micro-scale tasks).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Generator`.
    """


@hookspec
def register_scaffolds(register: Any) -> None:
    """Register agent scaffolds (the control loop around a policy: ReAct, AIDE, ...).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Scaffold`.
    """


@hookspec
def register_graders(register: Any) -> None:
    """Register graders (submission file -> :class:`sandmle.core.records.Grade`).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Grader`. A grader never raises on a bad
        submission: it returns ``Grade(valid_submission=False, reason=...)``.
    """


@hookspec
def register_rewards(register: Any) -> None:
    """Register rewards (trajectory + grade -> total and a named milestone breakdown).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Reward` whose breakdown has the same keys
        for every trajectory.
    """


@hookspec
def register_trainers(register: Any) -> None:
    """Register trainers (task set -> trained policy checkpoints).

    :param register: call ``register(name, factory, config=ConfigModel, extra="verl")``;
        ``factory(config)`` must return a :class:`sandmle.core.interfaces.Trainer`. Name the pip
        extra that provides heavy dependencies so users get an actionable error.
    """


@hookspec
def register_sandboxes(register: Any) -> None:
    """Register sandboxes (where untrusted agent code runs).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Sandbox`. Run the conformance battery
        (``sandmle sandbox check NAME``) against it before publishing.
    """


@hookspec
def register_backends(register: Any) -> None:
    """Register model backends (chat completion with tools: an LLM API, a local model, a script).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Backend`.
    """


@hookspec
def register_task_sources(register: Any) -> None:
    """Register task sources (where existing tasks come from: a folder, MLE-bench, ...).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.TaskSource`.
    """


@hookspec
def register_executors(register: Any) -> None:
    """Register episode executors (how a study's episodes are scheduled: local pool, Ray, ...).

    :param register: call ``register(name, factory, config=ConfigModel)``; ``factory(config)``
        must return a :class:`sandmle.core.interfaces.Executor`.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``sandmle`` command line.

    :param cli: the root :class:`click.Group`; decorate functions with ``@cli.command()`` (or
        ``cli.add_command``). Keep imports of heavy modules inside the command body.
    """


@hookspec(firstresult=True)
def metric_lower_is_better(metric: str) -> bool | None:
    """Say whether a lower value of ``metric`` is better, if this plugin scores ``metric``.

    Loading a task asks this hook (the first answer that is not ``None`` wins) to fill
    ``lower_is_better`` when ``task.yaml`` leaves it out, and to refuse a task whose metric no
    plugin scores. Return ``None`` for metrics you do not know.

    :param metric: the metric's name as ``task.yaml`` spells it.
    """
