"""Episode -> token sequences with loss masks, from the ids the backend actually sampled.

A trainer must train on exactly the tokens the policy sampled, in exactly the context it sampled
them in. Re-tokenising the transcript breaks both (BPE merges differ across message boundaries,
scaffolds edit text, chat templates strip whitespace). So a sequence is assembled from the ids
recorded on each :class:`~sandmle.core.records.Turn`:

- ``prompt_token_ids`` of the first turn is the prompt (never trained);
- each turn's ``token_ids`` (what was sampled) get mask 1;
- what the next turn's prompt adds after them (the closing template tokens, the tool response,
  the next generation header) gets mask 0.

This works when the next prompt *extends* the previous prompt + sample, which the
``transformers`` backend guarantees for an unedited transcript. When it does not (the scaffold
edited the reply, dropped old turns to fit the context, or AIDE starts each stage afresh), the
episode splits into several *segments*, each one consistent on its own; nothing is ever spliced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandmle.core.errors import SandmleError
from sandmle.core.records import Trajectory


class MissingTokenIdsError(SandmleError):
    """A trajectory turn carries no sampled token ids (its backend does not report them)."""


@dataclass
class TokenSequence:
    """One prompt and the completion that followed it, with a per-token loss mask.

    ``mask[i]`` is 1 where ``completion_ids[i]`` was sampled by the policy, 0 where the
    environment or the chat template put it there. ``logprobs[i]`` is the sampling log-probability
    of a mask-1 token and 0.0 elsewhere.
    """

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)  # indices into Trajectory.turns
    truncated: bool = False  # cut to a length budget by :meth:`truncate`

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)

    @property
    def ids(self) -> list[int]:
        """Prompt and completion, as the model saw them."""
        return self.prompt_ids + self.completion_ids

    @property
    def full_mask(self) -> list[int]:
        """Mask over :attr:`ids` (prompt tokens are 0)."""
        return [0] * len(self.prompt_ids) + self.mask

    @property
    def model_tokens(self) -> int:
        return sum(self.mask)

    @property
    def reward_index(self) -> int | None:
        """Completion index of the last sampled token: where a trajectory-wise reward sits."""
        for i in range(len(self.mask) - 1, -1, -1):
            if self.mask[i]:
                return i
        return None

    def _extend(self, ids: list[int], mask_value: int, logprobs: list[float] | None = None) -> None:
        self.completion_ids += ids
        self.mask += [mask_value] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)

    def truncate(self, max_completion_tokens: int) -> "TokenSequence":
        """A copy whose completion holds at most ``max_completion_tokens`` tokens."""
        if len(self.completion_ids) <= max_completion_tokens:
            return self
        n = max_completion_tokens
        return TokenSequence(list(self.prompt_ids), self.completion_ids[:n], self.mask[:n],
                             self.logprobs[:n], list(self.turns), truncated=True)


def _turn_ids(traj: Trajectory, index: int) -> tuple[list[int], list[int], list[float]]:
    turn = traj.turns[index]
    if turn.token_ids is None or turn.prompt_token_ids is None:
        raise MissingTokenIdsError(
            f"trajectory {traj.task_id}/{traj.scaffold}: turn {index} has no sampled token ids "
            f"(backend {traj.backend!r} does not report them); RL needs a backend that does, such "
            "as 'transformers'")
    logprobs = turn.logprobs if turn.logprobs is not None and len(turn.logprobs) == len(turn.token_ids) \
        else [0.0] * len(turn.token_ids)
    return list(turn.prompt_token_ids), list(turn.token_ids), [float(x) for x in logprobs]


def trajectory_segments(traj: Trajectory) -> list[TokenSequence]:
    """Every prefix-consistent run of turns of ``traj`` as one :class:`TokenSequence`, in order.

    Raises :class:`MissingTokenIdsError` when a turn has no sampled ids. An episode without turns
    has no segments.
    """
    segments: list[TokenSequence] = []
    current: TokenSequence | None = None
    for index in range(len(traj.turns)):
        prompt, sampled, logprobs = _turn_ids(traj, index)
        if current is not None:
            so_far = current.ids
            if len(prompt) >= len(so_far) and prompt[:len(so_far)] == so_far:
                current._extend(prompt[len(so_far):], 0)  # template glue + observation
            else:
                segments.append(current)
                current = None
        if current is None:
            current = TokenSequence(prompt_ids=prompt)
        current._extend(sampled, 1, logprobs)
        current.turns.append(index)
    if current is not None:
        segments.append(current)
    return segments


def trajectory_sequence(traj: Trajectory) -> TokenSequence:
    """The one sequence a one-row-per-episode trainer (TRL's GRPO) trains on: the episode's last
    segment, which holds its final reply (where the trajectory reward belongs). For ReAct and
    MLE-Dojo episodes on the ``transformers`` backend that is the whole episode; earlier segments
    exist only when the scaffold rewrote its history. An episode without turns yields an empty
    sequence (no tokens, nothing to train)."""
    segments = trajectory_segments(traj)
    return segments[-1] if segments else TokenSequence(prompt_ids=[])
