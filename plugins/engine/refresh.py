"""GRPO rollouts on the engine: the ``grpo`` trainer's hook that keeps the engine's weights equal
to the policy's, and TRL's correction for sampling with an engine other than the trained model.

TRL 1.16's ``GRPOTrainer`` already knows this situation from its vLLM path, and we use exactly
its machinery rather than a copy of it:

- before generating for a new optimizer step it calls ``self.vllm_generation.sync_weights()``
  when ``use_vllm`` is set (``trl/trainer/grpo_trainer.py``, ``_generate``, the ``rollout_func``
  branch); :class:`EngineSync` stands in for ``vllm_generation``, and its ``sync_weights`` merges
  the live policy (LoRA adapter merged into a copy), converts it and loads it into the engine;
- with ``vllm_importance_sampling_correction`` it recomputes the old policy's logprobs of the
  sampled ids, weights the loss by the (truncated or masked) ratio of the trainer's to the
  engine's probabilities, and logs ``sampling/sampling_logp_difference/mean`` (the mean absolute
  difference of the two logprobs over trained tokens) and ``sampling/importance_sampling_ratio/*``.

Nothing else in TRL reads ``use_vllm`` on the ``rollout_func`` path (it also gates the vLLM
server and the tool loop, which this path never enters); tests/test_engine_grpo.py pins the
lines this relies on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .backend import CTranslate2Backend, CTranslate2Config
from .convert import ct2_cache_dir, convert_live_model


class EngineSync:
    """The engine serving a trainer's policy, refreshed from the live model after every update.

    ``refresh_s[step]``: seconds the refresh before ``step``'s rollouts took (merge + convert +
    load). Conversions alternate between two folders, so the one being served is never rewritten.
    """

    def __init__(self, trainer: Any, tokenizer: Any, *, temperature: float, config: CTranslate2Config,
                 folder: Path | None = None, note: Any = None):
        self.trainer, self.tokenizer, self.temperature, self.config = trainer, tokenizer, temperature, config
        self.folder = folder or ct2_cache_dir() / "live" / f"{id(self):x}"
        self.backend: CTranslate2Backend | None = None
        self.refresh_s: dict[int, float] = {}
        self.note = note
        self._slot = 0

    def sync_weights(self) -> None:
        """Convert the live policy and serve it (TRL calls this once per optimizer step)."""
        t0 = time.perf_counter()
        step = int(self.trainer.state.global_step) + 1  # the step whose rollouts these weights generate
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        self._slot ^= 1
        dest = convert_live_model(model, self.tokenizer, self.folder / f"slot{self._slot}",
                                  temperature=self.temperature)
        if self.backend is None:
            self.backend = CTranslate2Backend(self.config, path=dest)
        else:
            self.backend.load(dest)
        self.refresh_s[step] = time.perf_counter() - t0
        if self.note is not None:
            self.note(f"step {step}: engine weights refreshed in {self.refresh_s[step]:.1f}s")

    def metrics(self, step: int) -> dict[str, float]:
        return {"refresh_s": self.refresh_s[step]} if step in self.refresh_s else {}


def attach_engine(trainer: Any, tokenizer: Any, *, temperature: float, config: CTranslate2Config,
                  is_mode: str, is_clip_max: float | None, is_clip_min: float | None = None,
                  folder: Path | None = None, note: Any = None) -> EngineSync:
    """Make ``trainer`` (TRL's GRPOTrainer with a ``rollout_func``) treat the engine as its external
    generator: weight sync before each step's rollouts, importance-sampling correction in the loss."""
    sync = EngineSync(trainer, tokenizer, temperature=temperature, config=config, folder=folder, note=note)
    trainer.use_vllm = True  # read on the rollout_func path only for sync and the IS correction (see above)
    trainer.vllm_generation = sync
    trainer._last_loaded_step = -1
    trainer.vllm_importance_sampling_correction = True
    trainer.vllm_importance_sampling_mode = is_mode
    trainer.vllm_importance_sampling_clip_max = is_clip_max
    trainer.vllm_importance_sampling_clip_min = is_clip_min
    return sync


def engine_for_grpo(trainer: Any, tokenizer: Any, cfg: Any, job: Any, progress: Any) -> EngineSync:
    """The ``grpo`` trainer's engine (``rollout_backend``): settings from its config and policy."""
    config = CTranslate2Config(compute_type=cfg.rollout_compute_type, threads=cfg.rollout_threads,
                               max_new_tokens=cfg.max_new_tokens, max_batch=cfg.generation_batch,
                               batch_wait_s=cfg.generation_wait_s, name="ctranslate2")
    return attach_engine(trainer, tokenizer, temperature=cfg.temperature, config=config,
                         is_mode=cfg.importance_sampling, is_clip_max=cfg.importance_sampling_cap,
                         folder=job.out / "engine", note=progress.note)
