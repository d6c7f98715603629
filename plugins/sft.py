"""``sft``: supervised fine-tuning on saved trajectories with assistant-only loss masks.

Plain ``transformers.Trainer`` on pre-tokenised rows (``labels`` = -100 off the mask): TRL's
``SFTTrainer`` would need a chat template with generation tags for its assistant-only loss, which
SmolLM2's has not, and it adds nothing else here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig, Trainer, TrainResult
from sandmle.training.config import LoraSettings


class SftConfig(ComponentConfig):
    """SFT data and optimisation (steps come from ``train.max_steps``)."""

    data: Path = Field(..., description="SFT JSONL from `sandmle trajectories export`")
    heldout_data: Path | None = Field(None, description="default: DATA's .heldout.jsonl when it exists")
    lr: float = Field(2e-5, gt=0)
    micro_batch: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1, description="sequences per step = micro_batch x grad_accum")
    max_length: int = Field(4096, ge=16, description="tokens per sequence (longer ones are cut at the end)")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int | None = Field(None, ge=1, description="held-out loss every N steps (default: at the end)")
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None


class SftTrainer(Trainer):
    """Fine-tunes the policy's model on the assistant replies of exported transcripts."""

    def __init__(self, config: SftConfig):
        self.config = config

    def train(self, recipe, tasks) -> TrainResult:  # noqa: ANN001 - Trainer contract
        from .hf_training import run_sft

        return run_sft(self.config, recipe, tasks)


def make_sft(config: SftConfig) -> SftTrainer:
    """Registry factory for ``sft``."""
    return SftTrainer(config)
