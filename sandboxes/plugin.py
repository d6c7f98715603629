"""Registers the built-in sandboxes and the ``sandmle sandbox`` commands."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


def _make_local(config: Any) -> Any:
    from .local import make_local

    return make_local(config)


@hookimpl
def register_sandboxes(register: Any) -> None:
    # Named, not imported: sandboxes.local pulls in asyncio and ctypes, which `sandmle --help`
    # and `sandmle list` do not need.
    register("local", _make_local, config="sandmle.sandboxes.local:LocalSandboxConfig",
             description="bubblewrap-isolated Python with a warm pool of pre-imported workers")
    # Every sandmle process starts here: folders of runs that were killed go now, not only when
    # the next sandbox starts (a resumed run with nothing left to do starts none).
    from .stale import BASE_PREFIX, remove_stale_dirs

    try:
        remove_stale_dirs(BASE_PREFIX)
    except OSError:
        pass


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import sandbox_group

    cli.add_command(sandbox_group)
