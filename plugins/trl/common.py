"""What the Hugging Face based trainers (``sft``, ``grpo``) share: loading the policy to train
(optionally with a LoRA adapter), the callback that drives progress, metrics and checkpoint
markers, resuming, and the final model. Imported only when a trainer runs (torch, transformers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from sandmle.core.interfaces import TrainResult
from sandmle.core.registry import require
from sandmle.training.checkpoints import FINAL, mark_complete, prune
from sandmle.training.config import LoraSettings
from sandmle.training.job import TrainJob
from sandmle.training.progress import TrainProgress


def fix_special_tokens(model: Any, tokenizer: Any) -> None:
    """Make the tokenizer's EOS the model's end-of-reply token and give it a pad token.

    SmolLM2's GGUF tokenizer reports ``<|im_start|>`` as EOS; its generation config says
    ``<|im_end|>``. A checkpoint saved after this fix carries the right tokens.
    """
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if isinstance(eos, int) and tokenizer.eos_token_id != eos:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def load_policy(job: TrainJob) -> tuple[Any, Any]:
    """The policy's model (in training mode) and tokenizer, loaded fresh from its backend config."""
    from sandmle.plugins.hf.backend import TransformersConfig, load_model_and_tokenizer

    cfg = job.policy_config
    if not isinstance(cfg, TransformersConfig):
        raise TypeError(f"train.policy must be a transformers backend, got {job.section.policy.name!r}")
    model, tokenizer = load_model_and_tokenizer(cfg)
    fix_special_tokens(model, tokenizer)
    model.train()
    return model, tokenizer


def lora_config(settings: LoraSettings | None) -> Any:
    """A peft ``LoraConfig`` for causal LMs (None when LoRA is off)."""
    if settings is None:
        return None
    peft = require("peft", "trl", "LoRA training")
    return peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                           target_modules=settings.target_modules, task_type="CAUSAL_LM")


def hf_common_args(job: TrainJob, *, device: str, scheduler: str = "constant_with_warmup",
                   warmup_steps: int = 0) -> dict[str, Any]:
    """TrainingArguments every HF trainer here shares: steps, checkpoints, logging, seed, and the
    learning-rate schedule. ``constant`` would ignore ``warmup_steps`` (transformers'
    ``get_constant_schedule``), so the constant schedule is ``constant_with_warmup``."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(job.tensorboard_dir)  # transformers 5 dropped logging_dir
    dtype = job.policy_config.dtype
    # Mixed precision only when asked for: TRL's GRPOConfig turns bf16 on by default, and bf16
    # autocast on a CPU without bf16 units made a GRPO update >10x slower than float32 here.
    return dict(bf16=dtype == "bfloat16" and device != "cpu", fp16=dtype == "float16" and device != "cpu",
                output_dir=str(job.out), max_steps=job.section.max_steps, save_strategy="steps",
                save_steps=job.section.save_every, save_total_limit=None, logging_steps=1,
                report_to=["tensorboard"], seed=job.seed, disable_tqdm=True, use_cpu=device == "cpu",
                lr_scheduler_type=scheduler, warmup_steps=warmup_steps, dataloader_num_workers=0, save_only_model=False)


class ProgressCallbackFactory:
    """Builds the ``transformers.TrainerCallback`` that feeds :class:`TrainProgress`, marks
    checkpoints complete and prunes old ones. ``extra(step, step_s)`` adds trainer-specific
    metrics of the step (the GRPO rollout timings)."""

    def __init__(self, job: TrainJob, progress: TrainProgress,
                 extra: Callable[[int, float], dict[str, Any]] | None = None,
                 tokens_of_step: Callable[[int], int] | None = None):
        self.job, self.progress, self.extra, self.tokens_of_step = job, progress, extra, tokens_of_step

    def build(self) -> Any:
        transformers = require("transformers", "trl", "trainers")
        outer = self

        class SandmleProgress(transformers.TrainerCallback):
            def __init__(self) -> None:
                self.t_step = time.perf_counter()

            def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001 - HF signature
                self.t_step = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
                if not logs or state.global_step == 0 or "train_runtime" in logs:
                    return
                metrics = {k.removeprefix("train/"): v for k, v in logs.items()}
                step_s = time.perf_counter() - self.t_step
                metrics["step_s"] = step_s
                if outer.extra is not None:
                    metrics.update(outer.extra(state.global_step, step_s))
                if outer.tokens_of_step is not None and "tokens_per_s" not in metrics:
                    metrics["tokens_per_s"] = outer.tokens_of_step(state.global_step) / max(step_s, 1e-9)
                outer.progress.log(state.global_step, metrics)

            def on_save(self, args, state, control, **kw):  # noqa: ANN001
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ckpt.is_dir():
                    mark_complete(ckpt, state.global_step)
                    prune(Path(args.output_dir), outer.job.section.keep_checkpoints)
                    outer.progress.note(f"[dim]checkpoint {ckpt.name} saved[/]")

        return SandmleProgress()


def save_final(model: Any, tokenizer: Any, job: TrainJob) -> Path:
    """``OUT/final``: the trained model with any LoRA adapter merged, plus its tokenizer."""
    final = job.out / FINAL
    tmp = final.with_name(FINAL + f".tmp{os.getpid()}")
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    merged.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if final.exists():
        import shutil

        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def run_hf_trainer(job: TrainJob, trainer: Any, model: Any, tokenizer: Any, resume_from: Path | None,
                   progress: TrainProgress, extra_metrics: dict[str, Any] | None = None) -> TrainResult:
    """Train (resuming when a checkpoint exists), save the final model, return the result."""
    transformers = require("transformers", "trl", "trainers")
    for noisy in (transformers.PrinterCallback, transformers.ProgressCallback):
        trainer.remove_callback(noisy)  # our rich line replaces the printed dicts and tqdm bars
    if resume_from is not None:
        progress.note(f"resuming from {resume_from.name}")
    with progress:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = save_final(trainer.model if trainer.model is not None else model, tokenizer, job)
    metrics = {k: v for k, v in (output.metrics or {}).items() if isinstance(v, (int, float))}
    metrics.update(extra_metrics or {})
    metrics.update({k: v for k, v in progress.last.items() if k in ("reward", "reward_std", "loss", "eval_loss")})
    return TrainResult(checkpoint_dir=final, steps=int(trainer.state.global_step), metrics=metrics)
