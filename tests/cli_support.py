"""Running the ``sandmle`` command line in this process (a subprocess costs seconds of imports)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*argv, env={...}) -> (exit code, stdout, stderr with whitespace normalised)``.

    Plugins are looked up afresh for each call; ``env["PYTHONPATH"]`` (its first entry) goes on
    ``sys.path`` for the call, so distributions found there are discovered as if installed."""
    from sandmle.core import plugins
    from sandmle.core.cli import main

    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                if key == "PYTHONPATH":
                    m.syspath_prepend(value.split(os.pathsep)[0])
                else:
                    m.setenv(key, value)
            plugins.reset()
            try:
                main(list(argv))
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
            finally:
                plugins.reset()
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    return run
