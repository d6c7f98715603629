"""The components' arguments: light to import, so registering the plugin stays cheap."""

from __future__ import annotations

from pydantic import Field

from sandmle.core import ComponentConfig


class OneShotConfig(ComponentConfig):
    """Arguments of ``one-shot``."""

    exec_timeout_s: float = Field(120.0, gt=0, description="limit of the one execution")
    max_tokens: int = Field(1024, ge=16, description="completion budget of the one model call")


class ExactMatchConfig(ComponentConfig):
    """Arguments of ``exact-match``."""

    case_sensitive: bool = Field(True, description="compare labels with their case")
