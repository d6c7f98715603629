"""Registers the built-in evaluation through the same hooks a third-party plugin uses."""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl

# The executor checks register themselves when run_checks first asks for them
# (core.testing imports evaluation.conformance); the config is named, not imported, because
# executors.py imports asyncio, which `sandmle --help` does not need.


def _make_local(config: Any) -> Any:
    from .executors import make_local_executor

    return make_local_executor(config)


@hookimpl
def register_executors(register: Any) -> None:
    register("local", _make_local, config="sandmle.evaluation.executors:LocalExecutorConfig",
             description="episodes as asyncio tasks on one machine, concurrency sized to its cores")


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import compare_cmd, eval_cmd, report_cmd

    for command in (eval_cmd, report_cmd, compare_cmd):
        cli.add_command(command)
