"""Learning-rate schedule and defaults of the HF trainers: warmup really ramps the rate (read from
the real transformers scheduler the trainers build), and the default rate follows the
parameterisation (LoRA or full fine-tuning)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sandmle.core.plugins import get_registry
from sandmle.training.config import DEFAULT_LR

pytest.importorskip("transformers")


def _job(tmp_path):
    # hf_common_args reads only these attributes of a TrainJob
    return SimpleNamespace(tensorboard_dir=tmp_path / "tb", out=tmp_path, seed=0,
                           policy_config=SimpleNamespace(dtype="float32"),
                           section=SimpleNamespace(max_steps=6, save_every=100))


def _lrs(tmp_path, **schedule):
    import torch
    import transformers

    from sandmle.plugins.trl.common import hf_common_args

    args = transformers.TrainingArguments(**hf_common_args(_job(tmp_path), device="cpu", **schedule),
                                          learning_rate=1e-3)
    trainer = transformers.Trainer(model=torch.nn.Linear(2, 1), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=6)
    lrs = []
    for _ in range(5):
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    return lrs


def test_warmup_ramps_the_learning_rate_over_the_first_steps(tmp_path):
    assert _lrs(tmp_path, warmup_steps=2) == pytest.approx([0.0, 5e-4, 1e-3, 1e-3, 1e-3])
    assert _lrs(tmp_path, warmup_steps=0) == pytest.approx([1e-3] * 5)  # the default: no warmup, constant
    linear = _lrs(tmp_path, scheduler="linear", warmup_steps=2)
    assert linear[:3] == pytest.approx([0.0, 5e-4, 1e-3]) and linear[3] < 1e-3 and linear[4] < linear[3]


def test_default_learning_rate_follows_the_parameterisation():
    registry = get_registry()
    grpo_full = registry.get("trainers", "grpo").config(batch_tasks=1, n=2, micro_batch=2)
    grpo_lora = registry.get("trainers", "grpo").config(batch_tasks=1, n=2, micro_batch=2, lora={"r": 8})
    assert (grpo_full.learning_rate, grpo_lora.learning_rate) == (1e-6, 1e-5) == (DEFAULT_LR[("grpo", False)],
                                                                                  DEFAULT_LR[("grpo", True)])
    assert registry.get("trainers", "grpo").config(batch_tasks=1, n=2, micro_batch=2, lr=3e-5).learning_rate == 3e-5
    sft = registry.get("trainers", "sft").config
    assert sft(data="x.jsonl").learning_rate == 2e-5 and sft(data="x.jsonl", lora={"r": 8}).learning_rate == 2e-4
    with pytest.raises(ValueError):
        sft(data="x.jsonl", lr_scheduler="constant")  # would ignore warmup_steps
