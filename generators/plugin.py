"""Registers the built-in generators and the ``generate`` / ``tasks show`` commands."""

from __future__ import annotations

from typing import Any

import click

from sandmle.core.hookspecs import hookimpl

from .configs import MultiAgentConfig, ProceduralConfig


def _make_procedural(config: ProceduralConfig) -> Any:
    from .procedural import make_procedural

    return make_procedural(config)


def _make_multiagent(config: Any) -> Any:
    from .multiagent import make_multiagent

    return make_multiagent(config)


@hookimpl
def register_generators(register: Any) -> None:
    register("procedural", _make_procedural, config=ProceduralConfig,
             description="hidden-rule micro tasks from real-data seeds, verified in the sandbox (no LLM)")
    register("multiagent", _make_multiagent, config=MultiAgentConfig,
             description="SandMLE's four LLM roles (langgraph) + the same verification; needs a backend")


@hookimpl
def register_commands(cli: click.Group) -> None:
    from sandmle.core.cli import subgroup

    from .commands import generate_cmd, show_cmd

    cli.add_command(generate_cmd)
    subgroup(cli, "tasks").add_command(show_cmd)

