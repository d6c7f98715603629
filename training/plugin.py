"""Entry-point plugin ``training``: the ``train`` and ``trajectories`` commands."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import train_cmd, trajectories_group

    cli.add_command(train_cmd)
    existing = cli.commands.get("trajectories")
    if existing is None:
        cli.add_command(trajectories_group)
    else:  # another plugin made the group first: add our subcommand to it
        for cmd in trajectories_group.commands.values():
            existing.add_command(cmd)
