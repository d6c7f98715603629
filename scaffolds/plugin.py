"""Registers the built-in scaffolds and the scripted ``baseline`` backend that speaks their
protocols, through the same hooks a third-party plugin uses."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_scaffolds(register: Any) -> None:
    from .react import ReactConfig, make_react

    register("react", make_react, config=ReactConfig, description="SandMLE's ReAct loop (think, tool call, answer)")
    try:
        from .aide import AideConfig, make_aide

        register("aide", make_aide, config=AideConfig, description="AIDE's greedy tree search (draft, debug, improve)")
    except ImportError:  # pragma: no cover - module lands later in the same change set
        pass
    try:
        from .mledojo import MledojoConfig, make_mledojo

        register("mledojo", make_mledojo, config=MledojoConfig,
                 description="MLE-Dojo's interactive actions with position-score feedback")
    except ImportError:  # pragma: no cover
        pass


@hookimpl
def register_backends(register: Any) -> None:
    from .baseline import BaselineConfig, make_baseline

    register("baseline", make_baseline, config=BaselineConfig,
             description="scripted AutoML agent speaking every scaffold's protocol")


@hookimpl
def register_commands(cli: Any) -> None:
    try:
        from .commands import rollout, show
    except ImportError:  # pragma: no cover
        return
    cli.add_command(rollout)
    cli.add_command(show)
