"""Entry-point plugin `backends`."""

from __future__ import annotations

from sandmle.core.hookspecs import hookimpl  # noqa: F401  (hook implementations go here)
