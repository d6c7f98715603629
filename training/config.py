"""Settings every GRPO-style trainer shares (a trainer's config model subclasses them).

Defaults are SandMLE's released training settings (``train_mle_syn_qwen3_8b.sh``): 16 tasks a
step, 4 rollouts each, lr 1e-6, clip ratio 0.2 / 0.28 (DAPO's clip-higher), no KL loss,
seq-mean-token-mean loss aggregation, temperature 1.0, 8192 prompt and 32768 response tokens.
The episode budget (15 model calls, 1200 s, 300 s per execution) is the scaffold's own
``limits``, whose defaults are the same numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig


LrScheduler = Literal["constant_with_warmup", "linear", "cosine"]

#: Learning rates when a recipe names none, by trainer and parameterisation. Sources:
#: - GRPO, full fine-tuning: 1e-6, SandMLE's release (``train_mle_syn_qwen3_8b.sh``,
#:   ``actor.optim.lr=1e-6``, Qwen3-8B, every weight).
#: - GRPO, LoRA: 1e-5. "LoRA Without Regret" (Schulman et al., Thinking Machines 2025; TRL's guide
#:   ``docs/source/lora_without_regret.md``) finds the best LoRA rate about 10x the full
#:   fine-tuning rate, in RL as in SFT; at 1e-6 a LoRA adapter barely moves in a few steps.
#: - SFT, full fine-tuning: 2e-5 (the usual instruction-tuning rate; TRL's SFT examples).
#: - SFT, LoRA: 2e-4, the rate of TRL's LoRA SFT example in the same guide (and PEFT's examples).
DEFAULT_LR: dict[tuple[str, bool], float] = {
    ("grpo", False): 1e-6, ("grpo", True): 1e-5, ("sft", False): 2e-5, ("sft", True): 2e-4}


def default_lr(trainer: str, lora: bool) -> float:
    """The documented default learning rate of ``trainer`` (``sft`` or ``grpo``) with or without LoRA."""
    return DEFAULT_LR[(trainer, bool(lora))]


class LoraSettings(ComponentConfig):
    """Train a LoRA adapter (peft) instead of every weight."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class GRPOSettings(ComponentConfig):
    """Trajectory-wise GRPO: one reward per episode, advantages normalised within each task's group."""

    batch_tasks: int = Field(16, ge=1, description="tasks per step (SandMLE: train_batch_size=16)")
    n: int = Field(4, ge=1, description="rollouts per task, the GRPO group (SandMLE: rollout.n=4)")
    lr: float = Field(1e-6, gt=0)
    epsilon: float = Field(0.2, ge=0, description="lower clip ratio")
    epsilon_high: float = Field(0.28, ge=0, description="upper clip ratio (SandMLE: clip_ratio_high=0.28)")
    beta: float = Field(0.0, ge=0, description="KL coefficient (SandMLE: use_kl_loss=False)")
    loss_type: Literal["grpo", "dapo", "bnpo", "dr_grpo"] = Field(
        "grpo", description="grpo = seq-mean-token-mean (SandMLE); dapo = token-mean")
    scale_rewards: Literal["group", "batch", "none"] = "group"
    ppo_epochs: int = Field(1, ge=1, description="updates per batch of rollouts (>1 makes clipping act)")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_prompt_tokens: int = Field(8192, ge=16, description="longest first prompt")
    max_episode_tokens: int = Field(32768, ge=16, description="length budget of an episode's completion "
                                    "(sampled + observation tokens); the rollout stops there")
    max_new_tokens: int = Field(2048, ge=1, description="longest single reply")
    concurrency: int | None = Field(None, ge=1, description="episodes at once (default: the whole batch)")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lora: LoraSettings | None = None

    @property
    def episodes_per_step(self) -> int:
        return self.batch_tasks * self.n
