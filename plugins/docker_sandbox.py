"""Entry-point plugin `docker_sandbox`."""

from __future__ import annotations

from sandmle.core.hookspecs import hookimpl  # noqa: F401  (hook implementations go here)
