"""The ``grpo`` trainer's run: TRL's ``GRPOTrainer`` with our episodes as its ``rollout_func``.

TRL 1.16 contract (``trl/trainer/grpo_trainer.py``, ``_generate``): ``rollout_func(prompts,
trainer)`` gets the generation batch (each prompt repeated ``num_generations`` times in a row) and
returns ``prompt_ids``, ``completion_ids``, ``logprobs`` plus optional ``env_mask`` (1 = policy
token) and any extra keys, which reach the reward functions as keyword arguments. TRL computes
group advantages from the rewards, then the loss on ``completion_mask * env_mask``; it does not
truncate this path, so the length budget is enforced while generating
(:class:`~sandmle.training.rollout.BudgetedBackend`).

What we hand-write is only what TRL cannot know: running a scaffold episode per prompt, the
masks from sampled ids, the reward, and the per-step timings. The rollout hands back a
:class:`~sandmle.training.grpo_batch.GrpoBatch` (every segment of every episode, its episode's
advantage; harness failures out of their groups, compact filtering, zero-spread groups skipped),
which :mod:`.grpo_trainer` turns into TRL's tensors instead of TRL's one-row-per-prompt path.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import TrainResult
from sandmle.core.registry import require
from sandmle.training.grpo_batch import GrpoBatch, build_grpo_batch
from sandmle.training.job import TrainJob
from sandmle.training.progress import TrainProgress
from sandmle.training.rollout import HARNESS_STOP_REASONS, BudgetedBackend, EpisodeOutcome, run_episodes

from .grpo import GrpoConfig


@dataclass
class StepStats:
    """Timings and outcomes of one generation batch (one optimizer step)."""

    rollout_s: float = 0.0
    generate_s: float = 0.0
    generated_tokens: int = 0
    encoded_prompt_tokens: int = 0  # prompt tokens the model had to encode (not from the KV cache)
    exec_s: float = 0.0
    grade_s: float = 0.0
    episodes: int = 0
    masked: int = 0
    train_tokens: int = 0
    rewards: list[float] = field(default_factory=list)
    stop_reasons: dict[str, int] = field(default_factory=dict)
    format_rate: float = 0.0
    valid_rate: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    batch: GrpoBatch | None = None

    def metrics(self) -> dict[str, float]:
        n = max(self.episodes, 1)
        mean = sum(self.rewards) / n
        out = {"rollout_s": self.rollout_s, "generate_s": self.generate_s, "exec_s": self.exec_s,
               "grade_s": self.grade_s, "generated_tokens": self.generated_tokens,
               "encoded_prompt_tokens": self.encoded_prompt_tokens,
               "generation_tokens_per_s": self.generated_tokens / self.generate_s if self.generate_s else 0.0,
               "episodes": self.episodes, "masked_episodes": self.masked, "train_tokens": self.train_tokens,
               "reward_mean": mean, "format_rate": self.format_rate, "valid_rate": self.valid_rate}
        out |= {f"stop/{k}": v for k, v in self.stop_reasons.items()}
        out |= {f"reward_parts/{k}": v for k, v in self.parts.items()}
        if self.batch is not None:
            out |= self.batch.metrics()
        return out


class EpisodeRollout:
    """``rollout_func`` for TRL: one scaffold episode per prompt (a task id), all concurrent, the
    trainer's live model generating for them in batches."""

    def __init__(self, job: TrainJob, cfg: GrpoConfig, tokenizer: Any):
        from sandmle.plugins.hf.backend import TransformersConfig

        self.job, self.cfg, self.tokenizer = job, cfg, tokenizer
        self.tasks = {t.id: t for t in job.require_tasks()}
        self.scaffold, self.reward = job.scaffold(), job.reward()
        self.grader, self.sandbox = job.grader(), job.sandbox()
        policy = job.policy_config
        self.backend_config = TransformersConfig(
            model=policy.model, device=policy.device, dtype=policy.dtype, max_new_tokens=cfg.max_new_tokens,
            max_batch=cfg.generation_batch, batch_wait_s=cfg.generation_wait_s, name=policy.name)
        self.stats: dict[int, StepStats] = {}
        self.outcomes: list[EpisodeOutcome] = []
        self._backend: Any = None
        self.progress: TrainProgress | None = None
        self.engine: Any = None  # sandmle.plugins.engine.refresh.EngineSync when rollout_backend is an engine

    def backend_for(self, model: Any) -> Any:
        from sandmle.plugins.hf.backend import TransformersBackend

        if self.engine is not None:  # rollouts on the engine, refreshed by TRL's weight sync
            self._backend = self.engine.backend
            return self._backend
        if self._backend is None or self._backend.model is not model:
            self._backend = TransformersBackend.from_model(model, self.tokenizer, self.backend_config)
        return self._backend

    def __call__(self, prompts: list[str], trainer: Any) -> GrpoBatch:
        step = int(trainer.state.global_step) + 1  # the optimizer step these rollouts feed
        backend = self.backend_for(trainer.accelerator.unwrap_model(trainer.model))
        backend.clear_kv_cache()  # keys/values of the previous step came from the previous weights
        cfg, before = self.cfg, backend.stats.as_dict()
        jobs = [(self.tasks[p], self.job.seed * 1_000_003 + step * 1_009 + i) for i, p in enumerate(prompts)]
        budgeted = [BudgetedBackend(backend, max_prompt_tokens=cfg.max_prompt_tokens,
                                    max_episode_tokens=cfg.max_episode_tokens, max_new_tokens=cfg.max_new_tokens,
                                    temperature=cfg.temperature, top_p=cfg.top_p, seed=seed) for _, seed in jobs]
        t0 = time.perf_counter()
        done: list[EpisodeOutcome] = []

        def on_done(outcome: EpisodeOutcome) -> None:
            done.append(outcome)
            if self.progress is not None:
                self.progress.status(f"step {step}: {len(done)}/{len(jobs)} episodes rolled out, "
                                     f"{backend.stats.generated_tokens - before['generated_tokens']:.0f} tokens generated")

        if self.progress is not None:
            self.progress.status(f"step {step}: rolling out {len(jobs)} episodes")
        outcomes = asyncio.run(run_episodes(
            jobs, scaffold=self.scaffold, backends=budgeted, sandbox=self.sandbox, grader=self.grader,
            reward=self.reward, concurrency=cfg.concurrency or len(jobs), on_done=on_done))
        if self.progress is not None:
            self.progress.status(f"step {step}: updating the policy on {len(jobs)} episodes")
        stats = StepStats(rollout_s=time.perf_counter() - t0, episodes=len(outcomes))
        backend.clear_kv_cache()  # free the memory before the update
        after = backend.stats.as_dict()
        stats.generate_s = after["generate_s"] - before["generate_s"]
        stats.generated_tokens = int(after["generated_tokens"] - before["generated_tokens"])
        stats.encoded_prompt_tokens = int((after["prompt_tokens"] - after["cached_prompt_tokens"])
                                          - (before["prompt_tokens"] - before["cached_prompt_tokens"]))
        batch = step_batch(outcomes, stats, group_size=cfg.n, masked=self.job.section.compact_filtering,
                           max_episode_tokens=cfg.max_episode_tokens, scale=cfg.scale_rewards,
                           skip_zero_spread=cfg.skip_zero_spread)
        self.stats[step] = stats
        self.outcomes = outcomes
        batch.extra = stats.metrics()
        if self.progress is not None and batch.skip_update:
            self.progress.note(f"step {step}: nothing to train ({batch.zero_spread_groups}/{batch.groups} groups "
                               f"without reward spread, {batch.harness_failures} harness failures, "
                               f"{batch.compact_filtered} filtered): update skipped")
        if cfg.save_rollouts:
            self._save(step, outcomes, batch)
        return batch

    def _save(self, step: int, outcomes: list[EpisodeOutcome], batch: GrpoBatch) -> None:
        folder = self.job.out / "rollouts"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (o, adv) in enumerate(zip(outcomes, batch.advantages)):
            rec = o.record()
            rec["advantage"], rec["trained_tokens"] = adv, batch.trained_tokens(i)
            rec["segments"] = len(o.segments())
            lines.append(json.dumps(rec, default=str))
        path = folder / f"step-{step:06d}.jsonl"
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def step_batch(outcomes: list[EpisodeOutcome], stats: StepStats, *, group_size: int, masked: list[str],
               max_episode_tokens: int, scale: str = "group", skip_zero_spread: bool = True) -> GrpoBatch:
    """The step's training rows (:func:`~sandmle.training.grpo_batch.build_grpo_batch`: every
    segment of every episode; harness failures out of their groups before the advantages; compact
    filtering; zero-spread groups skipped) and its statistics, filled into ``stats``."""
    batch = build_grpo_batch([o.tokens() for o in outcomes], group_size, harness=HARNESS_STOP_REASONS,
                             masked=masked, max_episode_tokens=max_episode_tokens, scale=scale,  # type: ignore[arg-type]
                             skip_zero_spread=skip_zero_spread)
    n = max(len(outcomes), 1)
    stats.batch = batch
    stats.masked = batch.compact_filtered + batch.harness_failures
    stats.train_tokens = sum(len(r.prompt_ids) + len(r.completion_ids) for r in batch.rows)
    for outcome in outcomes:
        stats.rewards.append(outcome.reward_total)
        stats.stop_reasons[outcome.stop_reason] = stats.stop_reasons.get(outcome.stop_reason, 0) + 1
        stats.grade_s += outcome.grade_s
        stats.valid_rate += outcome.grade.valid_submission / n
        if outcome.trajectory is not None:
            stats.format_rate += outcome.trajectory.format_rate / n
            stats.exec_s += sum(e.wall_s for t in outcome.trajectory.turns for e in t.executions)
        for k, v in (outcome.reward.parts if outcome.reward else {}).items():
            stats.parts[k] = stats.parts.get(k, 0.0) + v / n
    return batch


def _reward_function(rollout: EpisodeRollout) -> Any:
    def sandmle_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        """TRL requires a reward function, but never calls it on our path: the episode's reward is
        computed in the rollout (it needs the graded submission) and the advantages in
        :func:`~sandmle.training.grpo_batch.build_grpo_batch`."""
        raise SandmleError("sandmle_reward is not called: TrajectoryGRPOTrainer builds its batch itself")

    return sandmle_reward


def run_grpo(cfg: GrpoConfig, recipe: Any, tasks: list[Any]) -> TrainResult:
    """Train with TRL's GRPOTrainer on the recipe's tasks in its training scaffold."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trl = require("trl", "trl", "grpo trainer")
    datasets = require("datasets", "trl", "grpo trainer")
    if not trl.__version__.startswith("1.16."):
        raise SandmleError(f"the grpo trainer is tested with trl 1.16 (rollout_func is experimental); "
                           f"found trl {trl.__version__}: pip install 'sandmle[trl]'")
    from .common import ProgressCallbackFactory, hf_common_args, load_policy, lora_config, run_hf_trainer
    from .grpo_trainer import make_trainer_class

    job = TrainJob.create(recipe, tasks)
    job.require_tasks()
    resume = job.prepare_output()
    model, tokenizer = load_policy(job)
    rollout = EpisodeRollout(job, cfg, tokenizer)
    # enough rows that every generation batch holds batch_tasks distinct tasks when there are that many
    ids = [t.id for t in job.tasks]
    rows = ids * max(1, math.ceil(cfg.batch_tasks / len(ids)))
    dataset = datasets.Dataset.from_dict({"prompt": rows})
    device = job.policy_config.device
    args = trl.GRPOConfig(
        **hf_common_args(job, device=device, scheduler=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps),
        per_device_train_batch_size=cfg.micro_batch,
        gradient_accumulation_steps=cfg.episodes_per_step // cfg.micro_batch,
        num_generations=cfg.n, learning_rate=cfg.learning_rate, beta=cfg.beta, epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.ppo_epochs, temperature=cfg.temperature, top_p=cfg.top_p,
        mask_truncated_completions=False,  # the budget is enforced in the rollout; filtering is ours
        max_completion_length=cfg.max_episode_tokens, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, gradient_checkpointing=cfg.gradient_checkpointing,
        remove_unused_columns=False, log_completions=False)

    def step_metrics(step: int, step_s: float) -> dict[str, Any]:
        stats = rollout.stats.get(step)
        if stats is None:
            return {}
        engine = rollout.engine.metrics(step) if rollout.engine is not None else {}
        # the rest of the step: forward, backward, optimizer
        update_s = max(step_s - stats.rollout_s - engine.get("refresh_s", 0.0), 1e-9)
        return {**stats.metrics(), **engine, "update_s": update_s, "training_tokens_per_s": stats.train_tokens / update_s,
                "tokens_per_s": stats.generated_tokens / stats.generate_s if stats.generate_s else 0.0}

    initial = int(resume.name.split("-")[-1]) if resume else 0
    progress = TrainProgress(job.out, job.section.max_steps, initial_step=initial, console=job.console, title="grpo")
    rollout.progress = progress
    factory = ProgressCallbackFactory(job, progress, extra=step_metrics)
    callback = factory.build()
    trainer_class = make_trainer_class(trl)
    trainer = trainer_class(model=model, reward_funcs=[_reward_function(rollout)], args=args, train_dataset=dataset,
                            processing_class=tokenizer, rollout_func=rollout,
                            peft_config=lora_config(cfg.lora), callbacks=[callback])
    if cfg.importance_correction != "none":
        trainer.importance_correction = (cfg.importance_correction, cfg.importance_clip_min, cfg.importance_clip_max)
    if cfg.rollout_backend != "transformers":
        from sandmle.plugins.engine.refresh import engine_for_grpo

        rollout.engine = engine_for_grpo(trainer, tokenizer, cfg, job, progress)
    job.write_info(group_size=cfg.n, batch_tasks=cfg.batch_tasks)
    try:
        return run_hf_trainer(job, trainer, model, tokenizer, resume, progress)
    finally:
        asyncio.run(rollout.sandbox.shutdown())
