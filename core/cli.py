"""The ``sandmle`` command line: a click group whose sub-commands come from plugins.

The core's own commands live in :mod:`sandmle.core.commands`, registered through the same
``register_commands`` hook as every other plugin's.
"""

from __future__ import annotations

import sys
import warnings

import click
from rich.console import Console
from rich.markup import escape

from .errors import SandmleError
from .plugins import PluginLoadWarning, _sandmle_version, get_manager

console = Console()
err_console = Console(stderr=True)


# Command groups several plugins add subcommands to; whichever plugin asks first creates it.
SHARED_GROUPS = {"tasks": "Inspect and export task sets."}


def subgroup(cli: click.Group, name: str) -> click.Group:
    """The shared command group ``name`` of ``cli`` (created on first use), for plugins'
    ``register_commands`` to add subcommands to: ``subgroup(cli, "tasks").add_command(cmd)``."""
    existing = cli.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name, help=SHARED_GROUPS.get(name))
    cli.add_command(group)
    return group


def build_cli() -> click.Group:
    """The root group with every plugin's commands added."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(_sandmle_version(), prog_name="sandmle")
    def cli() -> None:
        """sandmle: generate micro-scale MLE tasks, roll out agents, grade, train and evaluate."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # printed below, once each
        manager = get_manager()
        manager.add_commands(cli)
    for failure in manager.failures:
        # One line per broken plugin; everything else keeps working.
        err_console.print("[bold red]error:[/]", escape(f"plugin {failure.name!r} {failure.error}"),
                          highlight=False, soft_wrap=True)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one-screen messages with their exit code."""
    try:
        cli = build_cli()
        cli.main(args=argv, prog_name="sandmle", standalone_mode=False)
    except SandmleError as exc:
        err_console.print("[bold red]error:[/]", escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # python -m sandmle.core.cli
    main()
