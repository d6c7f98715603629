"""What every trainer shares, with no heavy imports: token sequences and loss masks from sampled
ids, GRPO group advantages, compact filtering, SFT data from trajectories, checkpoints, progress,
the train stage and the ``sandmle train`` / ``sandmle trajectories`` commands.

See ``TRAINING_API.md`` in the repository for how a trainer plugin uses these pieces.
"""

from .advantages import SANDMLE_MASKED_STOP_REASONS, apply_compact_filter, compact_filter, group_advantages
from .sequences import MissingTokenIdsError, TokenSequence, trajectory_segments, trajectory_sequence

__all__ = [
    "SANDMLE_MASKED_STOP_REASONS", "MissingTokenIdsError", "TokenSequence", "apply_compact_filter",
    "compact_filter", "group_advantages", "trajectory_segments", "trajectory_sequence",
]
