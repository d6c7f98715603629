"""One GRPO step's episodes -> training rows, every sampled token of every turn included.

Trajectory-wise GRPO gives every assistant token of an episode the episode's advantage (SandMLE
trains with rLLM, which does exactly that). An episode is one or more *segments*
(:func:`~sandmle.training.sequences.trajectory_segments`): a new one starts wherever the scaffold
edited its history (ReAct cuts an invented ``<tool_response>``, the release prompt strips earlier
replies, the backend drops special tokens from the text), so each segment is trained as its own
row, in exactly the context the model sampled it in, with its episode's advantage. Nothing is
spliced, and nothing sampled is silently left out: :class:`TokenAccount` says where every sampled
token went.

The order of the filters, each named in the account when it removes tokens:

1. ``harness_failure``: episodes whose stop reason is the harness's fault (``unknown``, ``error``,
   ``backend_error``) leave their group *before* the advantages (see
   :func:`~sandmle.training.advantages.group_advantages_without`);
2. ``compact_filter``: episodes whose stop reason the recipe masks (SandMLE: ``timeout``) keep
   their place in the group statistics but are not trained;
3. ``zero_spread``: a group whose kept rewards are all equal has advantage 0 everywhere; its rows
   are skipped (and a step where every group is like that skips the update);
4. ``length_budget``: tokens cut from a segment longer than the episode budget (a safety net; the
   budget is enforced while generating).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .advantages import ScaleRewards, group_advantages_without, zero_spread_groups
from .sequences import TokenSequence

HARNESS_FAILURE = "harness_failure"
COMPACT_FILTER = "compact_filter"
ZERO_SPREAD = "zero_spread"
LENGTH_BUDGET = "length_budget"
NO_TOKEN_IDS = "no_token_ids"


@dataclass
class EpisodeTokens:
    """What the batch builder needs of one episode."""

    segments: list[TokenSequence]
    reward: float
    stop_reason: str
    sampled_tokens: int  # every token the policy sampled in the episode, all turns

    @property
    def segment_tokens(self) -> int:
        return sum(s.model_tokens for s in self.segments)


@dataclass
class GrpoRow:
    """One segment to train: prompt, completion, loss mask, sampling logprobs, the episode's
    advantage, and which episode (index in the step) it came from."""

    prompt_ids: list[int]
    completion_ids: list[int]
    mask: list[int]
    logprobs: list[float]
    advantage: float
    episode: int


@dataclass
class TokenAccount:
    """Where the step's sampled tokens went: ``trained`` reached the loss, ``dropped[cause]`` did
    not. ``sampled == trained + sum(dropped.values())`` always."""

    sampled: int = 0
    trained: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, cause: str, tokens: int) -> None:
        if tokens:
            self.dropped[cause] = self.dropped.get(cause, 0) + tokens

    @property
    def trained_share(self) -> float:
        """Share of sampled tokens that reached the loss (1.0 when nothing was sampled)."""
        return self.trained / self.sampled if self.sampled else 1.0

    def metrics(self) -> dict[str, float]:
        out = {"sampled_tokens": float(self.sampled), "trained_sampled_tokens": float(self.trained),
               "trained_token_share": self.trained_share}
        out |= {f"dropped_tokens/{k}": float(v) for k, v in sorted(self.dropped.items())}
        return out


@dataclass
class GrpoBatch:
    """A step's rows plus the bookkeeping the trainer logs."""

    rows: list[GrpoRow]
    rewards: list[float]  # per episode
    advantages: list[float]  # per episode
    account: TokenAccount
    harness_failures: int = 0
    compact_filtered: int = 0
    zero_spread_groups: int = 0
    groups: int = 0
    extra: dict[str, float] = field(default_factory=dict)  # the trainer's own step metrics, logged alongside

    def trained_tokens(self, episode: int) -> int:
        """Sampled tokens of ``episode`` that reached the loss."""
        return sum(sum(r.mask) for r in self.rows if r.episode == episode)

    @property
    def skip_update(self) -> bool:
        """No row carries a learning signal: the optimizer step would be a zero gradient."""
        return not self.rows

    def metrics(self) -> dict[str, float]:
        return {**self.extra, **self.account.metrics(), "harness_failures": float(self.harness_failures),
                "compact_filtered": float(self.compact_filtered), "groups": float(self.groups),
                "zero_spread_groups": float(self.zero_spread_groups), "trained_rows": float(len(self.rows)),
                "update_skipped": float(self.skip_update)}


def build_grpo_batch(episodes: Sequence[EpisodeTokens], group_size: int, *, harness: Iterable[str],
                     masked: Iterable[str], max_episode_tokens: int, scale: ScaleRewards = "group",
                     eps: float = 1e-4, skip_zero_spread: bool = True) -> GrpoBatch:
    """Rows for every segment of every episode that carries a learning signal (see the module
    docstring for the filters). ``episodes`` come as consecutive groups of ``group_size``."""
    harness, masked = set(harness), set(masked)
    rewards = [e.reward for e in episodes]
    failed = [e.stop_reason in harness for e in episodes]
    advantages = group_advantages_without(rewards, group_size, failed, scale=scale, eps=eps)
    flat = zero_spread_groups(rewards, group_size, failed)
    account = TokenAccount(sampled=sum(e.sampled_tokens for e in episodes))
    batch = GrpoBatch(rows=[], rewards=[float(r) for r in rewards], advantages=advantages, account=account, harness_failures=sum(failed),
                      zero_spread_groups=sum(flat), groups=len(flat))
    for index, episode in enumerate(episodes):
        # tokens sampled but not in any segment: turns without recorded ids
        account.drop(NO_TOKEN_IDS, episode.sampled_tokens - episode.segment_tokens)
        tokens = episode.segment_tokens
        if failed[index]:
            account.drop(HARNESS_FAILURE, tokens)
            continue
        if episode.stop_reason in masked:
            batch.compact_filtered += 1
            account.drop(COMPACT_FILTER, tokens)
            continue
        if skip_zero_spread and flat[index // group_size]:
            account.drop(ZERO_SPREAD, tokens)
            continue
        for segment in episode.segments:
            kept = segment.truncate(max_episode_tokens)
            account.drop(LENGTH_BUDGET, segment.model_tokens - kept.model_tokens)
            if not kept.model_tokens:
                continue
            account.trained += kept.model_tokens
            batch.rows.append(GrpoRow(list(kept.prompt_ids), list(kept.completion_ids), list(kept.mask),
                                      list(kept.logprobs), advantages[index], index))
    return batch
