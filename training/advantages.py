"""Trajectory-wise GRPO advantages and compact filtering (no heavy imports).

One scalar reward per episode; the ``n`` episodes of one task form a group; an episode's
advantage is its reward minus the group mean, divided by the group's standard deviation plus
``eps`` (SandMLE: ``adv_estimator=grpo``). The standard deviation is the unbiased (Bessel) one,
as in TRL 1.16 (``trl/trainer/utils.py:nanstd``, used at ``grpo_trainer.py`` ~L2770) and veRL
(``torch.std`` in ``core_algos.compute_grpo_outcome_advantage``). TRL adds ``eps = 1e-4``, veRL
``1e-6``. A group whose rewards are all equal gets advantage 0 for every member.

Compact filtering (rLLM, which SandMLE trains with): episodes that ended for a reason the policy
is not to blame for are dropped from the loss *after* advantages are computed, so they still
count in their group's mean and spread. SandMLE's release masks ``timeout`` and ``unknown``
(``train_mle_syn_qwen3_8b.sh``: ``mask_timeout=True``, ``mask_unknown=True``, every other
``mask_*`` False).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

#: Stop reasons SandMLE's release masks out of the loss.
SANDMLE_MASKED_STOP_REASONS: tuple[str, ...] = ("timeout", "unknown")

ScaleRewards = Literal["group", "batch", "none"]


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_advantages(rewards: Sequence[float], group_size: int, *, scale: ScaleRewards = "group",
                     eps: float = 1e-4) -> list[float]:
    """GRPO advantages of ``rewards`` laid out as consecutive groups of ``group_size``.

    ``scale="group"`` divides by each group's std (GRPO), ``"batch"`` by the std of the whole
    batch, ``"none"`` not at all (Dr. GRPO).
    """
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    batch_std = _std(rewards)
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start:start + group_size]]
        mean = sum(group) / len(group)
        std = {"group": _std(group), "batch": batch_std, "none": None}[scale]
        for r in group:
            centred = r - mean
            out.append(centred if std is None else centred / (std + eps))
    return out


def compact_filter(stop_reasons: Iterable[str], masked: Iterable[str] = SANDMLE_MASKED_STOP_REASONS
                   ) -> list[bool]:
    """``keep[i]`` is False when episode ``i`` stopped for one of the ``masked`` reasons."""
    masked = set(masked)
    return [reason not in masked for reason in stop_reasons]


def apply_compact_filter(masks: Sequence[Sequence[int]], keep: Sequence[bool]) -> list[list[int]]:
    """Loss masks with every token of a filtered-out episode set to 0."""
    if len(masks) != len(keep):
        raise ValueError(f"{len(masks)} masks but {len(keep)} keep flags")
    return [list(m) if k else [0] * len(m) for m, k in zip(masks, keep)]


def group_advantages_without(rewards: Sequence[float], group_size: int, dropped: Sequence[bool], *,
                             scale: ScaleRewards = "group", eps: float = 1e-4) -> list[float]:
    """:func:`group_advantages` with the ``dropped`` episodes taken out of their groups first.

    A harness failure (the sandbox, the grader or the backend broke; stop reasons in
    :data:`sandmle.training.rollout.HARNESS_STOP_REASONS`) says nothing about the policy, so it must
    not set its group's baseline: rLLM drops such episodes before it groups them. With rewards
    ``[0.3, 0.3, 0.3, failed]`` the three real episodes get advantage 0 (no spread among them), not
    the +0.5 a zero reward for the failure would hand them. A dropped episode's advantage is 0 (it
    is not trained either). ``scale="batch"`` uses the spread of the kept episodes of the batch.
    """
    if len(dropped) != len(rewards):
        raise ValueError(f"{len(rewards)} rewards but {len(dropped)} dropped flags")
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    kept_all = [float(r) for r, d in zip(rewards, dropped) if not d]
    batch_std = _std(kept_all)
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        members = range(start, start + group_size)
        kept = [float(rewards[i]) for i in members if not dropped[i]]
        mean = sum(kept) / len(kept) if kept else 0.0
        std = {"group": _std(kept), "batch": batch_std, "none": None}[scale]
        for i in members:
            if dropped[i]:
                out.append(0.0)
                continue
            centred = float(rewards[i]) - mean
            out.append(centred if std is None else centred / (std + eps))
    return out


def zero_spread_groups(rewards: Sequence[float], group_size: int, dropped: Sequence[bool] | None = None,
                       *, tol: float = 1e-9) -> list[bool]:
    """Per group: True when its kept episodes all have the same reward (or fewer than two are
    kept). Such a group has advantage 0 everywhere, so training on it only costs time."""
    dropped = dropped if dropped is not None else [False] * len(rewards)
    out = []
    for start in range(0, len(rewards), group_size):
        kept = [float(rewards[i]) for i in range(start, start + group_size) if not dropped[i]]
        out.append(len(kept) < 2 or max(kept) - min(kept) <= tol)
    return out
