"""Named setups for the scaffold configs, and the per-scaffold ``sampling`` block.

A scaffold config that derives from :class:`PresetConfig` accepts ``preset: <name>``: the named
preset fills every field the user did not set (nested blocks such as ``limits`` and ``sampling``
are merged key by key), so ``{preset: sandmle-release, limits: {max_llm_calls: 20}}`` is the
release's setup with one limit changed. Without a preset every field keeps its documented default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from sandmle.core.interfaces import ComponentConfig
from sandmle.core.records import Sampling


class SamplingConfig(ComponentConfig):
    """Sampling parameters of every model call a scaffold makes (passed to ``Backend.complete``).

    The defaults are sandmle's evaluation defaults (temperature 1.0, top_p 1.0, 2048 new tokens);
    ``seed: null`` uses the episode's seed, so repeated episodes differ and reruns repeat.
    """

    temperature: float = Field(1.0, ge=0.0, description="0 = greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(2048, ge=1, description="new tokens per call")
    seed: int | None = Field(None, description="fixed sampling seed; null = the episode's seed")
    stop: list[str] | None = None
    ignore_eos: bool = Field(False, description="sample exactly max_tokens, past the model's stop tokens "
                             "(a fixed workload for throughput benchmarks)")

    def for_episode(self, seed: int) -> Sampling:
        """The :class:`Sampling` one episode sends with each call."""
        values = self.model_dump(exclude={"seed"})
        return Sampling(**values, seed=self.seed if self.seed is not None else seed)


def merge_preset(preset: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` on top of ``preset``; nested dicts merge key by key (``given`` wins)."""
    merged = dict(preset)
    for key, value in given.items():
        base = merged.get(key)
        merged[key] = merge_preset(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return merged


class PresetConfig(ComponentConfig):
    """A component config with named presets (:attr:`PRESETS`, selected by ``preset``).

    Subclasses declare ``PRESETS`` (name -> field values) and a ``preset`` field typed as a
    ``Literal`` of those names (so an unknown name is a validation error listing the choices).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in cls.PRESETS:
            return merge_preset(cls.PRESETS[data["preset"]], data)
        return data  # no preset, or an unknown one the ``preset`` field will reject
