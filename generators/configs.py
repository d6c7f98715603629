"""The config models of the generators, apart from the generators themselves: registering a
generator needs only its config, while the generators import pandas, scikit-learn, the metrics
and langgraph (seconds), which ``sandmle --help`` should not pay for."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig


class NoiseConfig(ComponentConfig):
    """Ranges the procedural generator samples its adversarial noise from (per task)."""

    label_noise: tuple[float, float] = Field((0.0, 0.06), description="share of redrawn labels")
    target_noise: tuple[float, float] = Field((0.1, 0.4), description="regression noise / signal std")
    latent_weight: tuple[float, float] = Field((0.1, 0.4), description="unobserved cause / signal std")
    missing_rate: tuple[float, float] = Field((0.0, 0.08), description="NaN share in affected columns")
    outlier_rate: tuple[float, float] = Field((0.0, 0.02))
    irrelevant_features: tuple[int, int] = (1, 4)
    correlated_features: tuple[int, int] = (0, 2)


class ThresholdPolicy(ComponentConfig):
    """Where medal thresholds go; positions on the anchor scale 0 = median reference score,
    1 = best reference score, 2 = oracle score (see the module docstring)."""

    kind: Literal["calibrated", "positions"] = "calibrated"
    median: float = Field(0.0, ge=0.0, le=2.0)
    bronze: float = Field(0.8, ge=0.0, le=2.0)
    silver: float = Field(1.3, ge=0.0, le=2.0)
    gold: float = Field(1.6, ge=0.0, le=2.0)
    max_se_per_gap: float = Field(0.5, gt=0.0, description="bootstrap SE / smallest threshold gap, at most")
    min_headroom_se: float = Field(4.0, ge=0.0, description="oracle - best reference, in SEs, at least")
    widen: bool = Field(True, description="widen gaps that are below the noise instead of rejecting")
    bootstrap: int = Field(60, ge=10, description="bootstrap resamples of the test set")


class ProceduralConfig(ComponentConfig):
    """Config of the ``procedural`` generator."""

    rows: tuple[int, int] = Field((50, 200), description="training rows, sampled per task")
    test_rows: tuple[int, int] = Field((1000, 2000), description="test rows of table and text tasks: "
                                       "micro training, but enough test rows to keep medals above the noise")
    media_test_rows: tuple[int, int] = Field((300, 500), description="test files of image and sound tasks")
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    thresholds: ThresholdPolicy = Field(default_factory=ThresholdPolicy)
    workers: int = Field(2, ge=1, description="candidates verified concurrently")
    solver_timeout_s: float = Field(120.0, gt=0)
    max_attempts_factor: float = Field(3.0, ge=1.0, description="stop after n * this many candidates")


class MultiAgentConfig(ProceduralConfig):
    """Config of ``multiagent``: the procedural knobs plus the backend and retry bounds."""

    backend: str = Field("litellm", description="registered backend name")
    backend_args: dict[str, Any] = Field(default_factory=dict)
    max_parse_retries: int = Field(1, ge=0)
    max_debug_rounds: int = Field(2, ge=0)
    code_timeout_s: float = Field(60.0, gt=0)
