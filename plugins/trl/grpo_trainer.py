"""TRL's ``GRPOTrainer`` taught to train whole trajectories.

TRL 1.16's ``rollout_func`` path wants exactly one row per prompt (advantages come from
``rewards.view(-1, num_generations)``), so an episode that a scaffold split into several segments
could only hand in one of them. This subclass replaces ``_generate_and_score_completions`` (the
place where TRL turns rollouts into a training batch) for our rollouts only: the rollout returns a
:class:`~sandmle.training.grpo_batch.GrpoBatch` (one row per segment, each carrying its episode's
advantage, harness failures and zero-spread groups already out), and this module pads it into
the tensors TRL's loss reads. Everything after that, the clipped loss, its aggregation, the
optimizer, is TRL's own.

Three more things happen here:

- a step whose batch has no row (every group had zero spread, or every episode failed) skips the
  update: the loss is a constant with no path to the weights, so no forward or backward pass runs
  and the optimizer, finding no gradients, leaves the weights alone;
- ``importance_correction``: when the sampler and the trainer differ, the recorded sampling
  logprobs give truncated importance ratios (:func:`sandmle.training.importance.importance_ratios`)
  folded into per-token advantages;
- the step's token accounting (share of sampled tokens that reached the loss, and why the rest did
  not) and its reward statistics go to TRL's metrics.
"""

from __future__ import annotations

from typing import Any

from sandmle.training.grpo_batch import GrpoBatch
from sandmle.training.importance import importance_ratios

SKIP_KEY = "sandmle_skip_update"


def pad_rows(batch: GrpoBatch, *, pad_id: int, multiple: int, device: Any) -> dict[str, Any]:
    """The batch's rows as TRL's padded tensors (prompts left-padded, completions right-padded),
    topped up with empty rows (mask 0, advantage 0) to a multiple of ``multiple`` rows so TRL can
    split it into its accumulation steps."""
    import torch

    rows = list(batch.rows)
    n = max(len(rows), 1)
    n = -(-n // multiple) * multiple
    prompts = [r.prompt_ids for r in rows] + [[pad_id]] * (n - len(rows))
    completions = [r.completion_ids for r in rows] + [[pad_id]] * (n - len(rows))
    masks = [r.mask for r in rows] + [[0]] * (n - len(rows))
    logps = [r.logprobs for r in rows] + [[0.0]] * (n - len(rows))
    advantages = [r.advantage for r in rows] + [0.0] * (n - len(rows))
    width_p = max(len(p) for p in prompts)
    width_c = max(len(c) for c in completions)

    def left(seqs, value):
        return torch.tensor([[value] * (width_p - len(s)) + list(s) for s in seqs], device=device)

    def right(seqs, value, dtype=None):
        return torch.tensor([list(s) + [value] * (width_c - len(s)) for s in seqs], device=device, dtype=dtype)

    return {
        "prompt_ids": left(prompts, pad_id),
        "prompt_mask": left([[1] * len(p) for p in prompts], 0),
        "completion_ids": right(completions, pad_id),
        "completion_mask": right([[1] * len(c) for c in completions], 0),
        "tool_mask": right(masks, 0),
        "sampling_per_token_logps": right(logps, 0.0, dtype=torch.float32),
        "advantages": torch.tensor(advantages, device=device, dtype=torch.float32),
    }


def make_trainer_class(trl: Any) -> type:
    """``GRPOTrainer`` subclass bound to the installed TRL (imported lazily by the caller)."""
    import torch
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.grpo_trainer import use_adapter

    class TrajectoryGRPOTrainer(trl.GRPOTrainer):
        """GRPO on whole trajectories: every segment of every episode, its episode's advantage."""

        #: set by the caller: (mode, clip_min, clip_max) or None for no correction
        importance_correction: tuple[str, float | None, float | None] | None = None

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            if self.rollout_func is None or not self.model.training:
                return super()._generate_and_score_completions(inputs)
            prompts = [x["prompt"] for x in inputs]
            # An external generator (the engine, standing in for TRL's vLLM generation) gets the
            # live weights once per optimizer step, as TRL's own rollout_func branch does
            # (trl 1.16 grpo_trainer.py L2200-2205), which this method replaces.
            if getattr(self, "use_vllm", False) and self.state.global_step != self._last_loaded_step:
                self.vllm_generation.sync_weights()
                self._last_loaded_step = self.state.global_step
            batch: GrpoBatch = self.rollout_func(prompts, self)
            device = self.accelerator.device
            metrics = self._metrics["train"]
            rewards = torch.tensor([float(r) for r in getattr(batch, "rewards", [])] or [0.0])
            metrics["reward"].append(rewards.mean().item())
            metrics["reward_std"].append(rewards.std().item() if rewards.numel() > 1 else 0.0)
            metrics["frac_reward_zero_std"].append(batch.zero_spread_groups / max(batch.groups, 1))
            for name, value in batch.metrics().items():
                metrics[f"sandmle/{name}"].append(value)
            out = pad_rows(batch, pad_id=self._tokenizer.pad_token_id, multiple=self.args.steps_per_generation,
                           device=device)
            if batch.skip_update:
                out[SKIP_KEY] = torch.tensor(True)
                out["num_items_in_batch"] = torch.tensor(0, device=device)
                return out
            loss_mask = out["completion_mask"] * out["tool_mask"]
            out["num_items_in_batch"] = loss_mask.sum()
            ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
            attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
            keep = out["completion_ids"].size(1)
            size = self.args.per_device_train_batch_size
            generate_every = self.args.steps_per_generation * self.num_iterations
            need_old = self.args.gradient_accumulation_steps % generate_every != 0
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                old = None
                if need_old or self.importance_correction is not None:
                    old, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, attention, keep,
                                                                        batch_size=size)
                if need_old:
                    out["old_per_token_logps"] = old
                if self.importance_correction is not None:
                    mode, low, high = self.importance_correction
                    level, constraint = mode.split("_")
                    ratio = importance_ratios(old, out["sampling_per_token_logps"], loss_mask, level=level,
                                              constraint=constraint, clip_min=low, clip_max=high)
                    # how far the sampler's recorded logprobs are from the trainer's, on trained tokens
                    # (TRL's name for it on its vLLM path, trl 1.16 grpo_trainer.py L2860-2870)
                    gap = (old - out["sampling_per_token_logps"]).abs()[loss_mask.bool()]
                    if gap.numel():
                        metrics["sampling/sampling_logp_difference/mean"].append(gap.mean().item())
                        metrics["sampling/sampling_logp_difference/max"].append(gap.max().item())
                    # rho >= 0 and detached: rho * -min(c1*A, c2*A) == -min(c1*A*rho, c2*A*rho)
                    out["advantages"] = out["advantages"].unsqueeze(1) * ratio
                    trained = ratio[loss_mask.bool()]
                    if trained.numel():
                        metrics["sampling/importance_sampling_ratio/mean"].append(trained.mean().item())
                        metrics["sampling/importance_sampling_ratio/min"].append(trained.min().item())
                        metrics["sampling/importance_sampling_ratio/max"].append(trained.max().item())
                if self.beta != 0.0:
                    if self.ref_model is not None:
                        ref, _, _ = self._get_per_token_logps_and_entropies(self.ref_model, ids, attention, keep,
                                                                            batch_size=size)
                    else:
                        model = self.accelerator.unwrap_model(self.model)
                        with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
                            ref, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, attention, keep,
                                                                                batch_size=size)
                    out["ref_per_token_logps"] = ref
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            if SKIP_KEY in inputs:
                # no forward, no backward into the weights: the optimizer finds no gradient
                return torch.zeros((), device=self.accelerator.device, requires_grad=True)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return TrajectoryGRPOTrainer
