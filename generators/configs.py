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
    """Where medal thresholds go (see :mod:`~sandmle.generators.ladder`).

    ``ladder`` (the default): positions on the ladder of reference solutions the generator runs,
    0 = the median standard model ("default"), 1 = the best standard model ("tuned"), 2 = a tuned
    model on the rule's derived features ("informed"), 3 = the oracle; linear in between. Each
    gap between adjacent thresholds must be at least ``min_gap_se`` bootstrap standard errors of
    the metric. ``calibrated``: the older oracle-anchored scale (0 = median reference,
    1 = best reference, 2 = oracle; silver and gold at ``silver``/``gold``), used where a task has
    no informed reference. ``positions``: MLE-bench's position rules on the reference leaderboard."""

    kind: Literal["ladder", "calibrated", "positions"] = "ladder"
    median: float = Field(0.0, ge=0.0, le=3.0)
    bronze: float = Field(0.8, ge=0.0, le=3.0)
    silver: float = Field(1.3, ge=0.0, le=3.0, description="silver on the oracle-anchored scale (calibrated)")
    gold: float = Field(1.6, ge=0.0, le=3.0, description="gold on the oracle-anchored scale (calibrated)")
    ladder_silver: float = Field(1.15, ge=1.0, le=3.0, description="silver on the ladder (1 tuned, 2 informed)")
    ladder_gold: float = Field(1.4, ge=1.0, le=3.0, description="gold on the ladder (1 tuned, 2 informed)")
    ladder_top: float = Field(2.0, ge=1.0, le=3.0, description="how far widening may push gold on the ladder")
    min_gap_se: float = Field(2.5, gt=0.0, description="ladder: each tier gap in bootstrap SEs, at least")
    max_se_per_gap: float = Field(0.5, gt=0.0, description="calibrated: bootstrap SE / smallest gap, at most")
    min_headroom_se: float = Field(4.0, ge=0.0, description="calibrated: oracle - best reference in SEs")
    widen: bool = Field(True, description="widen gaps that are below the noise instead of rejecting")
    bootstrap: int = Field(500, ge=10, description="bootstrap resamples of the test set")


class ProceduralConfig(ComponentConfig):
    """Config of the ``procedural`` generator."""

    rows: tuple[int, int] = Field((50, 200), description="training rows, sampled per task")
    test_rows: tuple[int, int] = Field((1000, 2000), description="test rows of table and text tasks: "
                                       "micro training, but enough test rows to keep medals above the noise")
    media_test_rows: tuple[int, int] = Field((600, 900), description="test files of image and sound tasks: "
                                             "enough that an AUC gap of a few points clears 2.5 SEs")
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
