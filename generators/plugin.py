"""Registers the built-in generators through the same hooks a third-party plugin uses."""

from __future__ import annotations

from sandmle.core.hookspecs import hookimpl  # noqa: F401  (hook implementations go here)
