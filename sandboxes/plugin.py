"""Registers the built-in sandboxes and the ``sandmle sandbox`` commands."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl

from .local import LocalSandboxConfig


def _make_local(config: LocalSandboxConfig) -> Any:
    from .local import make_local

    return make_local(config)


@hookimpl
def register_sandboxes(register: Any) -> None:
    register("local", _make_local, config=LocalSandboxConfig,
             description="bubblewrap-isolated Python with a warm pool of pre-imported workers")
    # Every sandmle process starts here: folders of runs that were killed go now, not only when
    # the next sandbox starts (a resumed run with nothing left to do starts none).
    from .local import BASE_PREFIX
    from .stale import remove_stale_dirs

    try:
        remove_stale_dirs(BASE_PREFIX)
    except OSError:
        pass


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import sandbox_group

    cli.add_command(sandbox_group)
