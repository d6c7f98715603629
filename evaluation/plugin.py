"""Registers the built-in evaluation through the same hooks a third-party plugin uses."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl

from . import conformance  # noqa: F401  (registers the executor conformance checks)
from .executors import LocalExecutorConfig


def _make_local(config: LocalExecutorConfig) -> Any:
    from .executors import make_local_executor

    return make_local_executor(config)


@hookimpl
def register_executors(register: Any) -> None:
    register("local", _make_local, config=LocalExecutorConfig,
             description="episodes as asyncio tasks on one machine, concurrency sized to its cores")


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import compare_cmd, eval_cmd, report_cmd

    for command in (eval_cmd, report_cmd, compare_cmd):
        cli.add_command(command)
