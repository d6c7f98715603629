"""Importance ratios between the policy that sampled a rollout and the policy being trained.

With one update per batch of rollouts (``ppo_epochs: 1``) the PPO ratio is exactly 1 and the clip
range never acts; what can still differ is the *sampler* from the *trainer*: a faster inference
engine (ctranslate2, vLLM), another dtype or kernel, a KV cache, or ``top_p < 1`` (the sampler
draws from the renormalised nucleus, the trainer scores the full softmax). The rollout records
each sampled token's log-probability under the distribution it was actually drawn from, so the
correction is

    rho_t = exp(log pi_trainer(y_t) - log pi_sampler(y_t))

per token (``level="token"``) or, for the whole sequence, ``exp(sum_t ...)`` over its trained
tokens (``level="sequence"``), bounded as TRL 1.16 bounds its vLLM correction
(``trl/trainer/grpo_trainer.py`` ~L2655-2705): ``"truncate"`` clamps to ``[clip_min, clip_max]``,
``"mask"`` sets ratios outside that range to 0. Tokens outside ``mask`` get ratio 1.

The ratio multiplies the per-token policy-gradient loss (truncated importance sampling). Since it
is non-negative and detached, folding it into a per-token advantage gives the same loss for the
clipped objective: ``-min(c1*A*rho, c2*A*rho) = rho * -min(c1*A, c2*A)``.

torch is imported lazily: the functions take and return tensors of shape ``(B, T)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Level = Literal["token", "sequence"]
Constraint = Literal["truncate", "mask"]


def importance_ratios(trainer_logps: Any, sampler_logps: Any, mask: Any, *, level: Level = "token",
                      constraint: Constraint = "truncate", clip_min: float | None = None,
                      clip_max: float | None = 3.0) -> Any:
    """Bounded importance ratios ``pi_trainer / pi_sampler``, shape ``(B, T)`` (sequence level is
    broadcast over the row's tokens). NaN sampler logprobs (unknown) give a ratio of 1."""
    import torch

    mask = mask.to(trainer_logps.dtype)
    diff = torch.nan_to_num((trainer_logps - sampler_logps) * mask, nan=0.0)
    if level == "sequence":
        diff = diff.sum(-1, keepdim=True).expand_as(trainer_logps)
    elif level != "token":
        raise ValueError(f"unknown importance level {level!r}: token or sequence")
    ratio = torch.exp(diff)
    low = -math.inf if clip_min is None else clip_min
    high = math.inf if clip_max is None else clip_max
    if constraint == "truncate":
        ratio = ratio.clamp(min=low, max=high)
    elif constraint == "mask":
        ratio = ratio.masked_fill((ratio < low) | (ratio > high), 0.0)
    else:
        raise ValueError(f"unknown importance constraint {constraint!r}: truncate or mask")
    return torch.where(mask.bool(), ratio, torch.ones_like(ratio))


def nucleus_logprob(logits: Any, token: int, *, temperature: float, top_p: float) -> float:
    """Log-probability of ``token`` under the distribution a temperature + top-p sampler draws
    from: ``softmax(logits / temperature)`` restricted to the smallest set of most likely tokens
    whose mass reaches ``top_p`` (the top token always stays), renormalised. ``-inf`` for a token
    outside the nucleus. With ``top_p = 1`` it is the plain log-softmax."""
    import torch

    logp = torch.log_softmax(logits.float() / temperature, -1)
    if top_p >= 1.0:
        return float(logp[token])
    probs = logp.exp()
    sorted_p, order = torch.sort(probs, descending=True)
    keep = torch.cumsum(sorted_p, -1) - sorted_p < top_p
    kept = order[keep]
    if not bool((kept == token).any()):
        return -math.inf
    return float(logp[token] - torch.log(sorted_p[keep].sum()))
