"""Integration with TRL: the ``sft`` trainer (assistant-only SFT on trajectories) and the ``grpo``
trainer (trajectory-wise GRPO through TRL's ``GRPOTrainer`` and ``rollout_func``).

Uses ``core``, ``training`` (token sequences, advantages, checkpoints, progress), ``evaluation``
(episodes for rollouts) and the ``hf`` integration (loading the policy). Config models import
nothing heavy; torch, transformers, TRL and peft load when a trainer is built (extra ``sandmle[trl]``).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl


@hookimpl
def register_trainers(register: Any) -> None:
    from .sft import SftConfig, make_sft
    from .grpo import GrpoConfig, make_grpo

    register("sft", make_sft, config=SftConfig, extra="trl",
             description="supervised fine-tuning on exported trajectories, assistant tokens only")
    register("grpo", make_grpo, config=GrpoConfig, extra="trl",
             description="trajectory-wise GRPO (TRL GRPOTrainer + rollout_func) in any scaffold")
