"""GRPO rollouts on the engine: the ``grpo`` trainer's hook that keeps the engine's weights equal
to the policy's.

TRL 1.16's ``GRPOTrainer`` knows an external generator from its vLLM path: before generating for a
new optimizer step it calls ``self.vllm_generation.sync_weights()`` when ``use_vllm`` is set
(``trl/trainer/grpo_trainer.py``, ``_generate``, the ``rollout_func`` branch). The ``grpo``
trainer's whole-trajectory subclass (``sandmle.plugins.trl.grpo_trainer``) keeps that contract:
:class:`EngineSync` stands in for ``vllm_generation``, and its ``sync_weights`` merges the live
policy (LoRA adapter merged into a copy), converts it (ctranslate2) or exports it (openvino) and
loads it into the engine. The
correction for sampling with an engine other than the trained model is the trainer's
``importance_correction`` (on by default for engine rollouts), from the engine's recorded
logprobs; it also logs ``sampling/sampling_logp_difference/mean``, the mean absolute difference
of the engine's and the trainer's logprobs over trained tokens.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .backend import CTranslate2Backend, CTranslate2Config
from .convert import ct2_cache_dir, convert_live_model
from .openvino_backend import OpenVinoBackend, OpenVinoConfig
from .openvino_convert import LiveExporter

EngineConfig = CTranslate2Config | OpenVinoConfig


class EngineSync:
    """The engine serving a trainer's policy, refreshed from the live model after every update.

    ``config`` picks the engine (``CTranslate2Config`` or ``OpenVinoConfig``). ``refresh_s[step]``:
    seconds the refresh before ``step``'s rollouts took (merge + convert + load). Conversions
    alternate between two folders, so the one being served is never rewritten.
    """

    def __init__(self, trainer: Any, tokenizer: Any, *, temperature: float, config: EngineConfig,
                 folder: Path | None = None, note: Any = None):
        self.trainer, self.tokenizer, self.temperature, self.config = trainer, tokenizer, temperature, config
        self.folder = folder or ct2_cache_dir() / "live" / f"{id(self):x}"
        self.backend: CTranslate2Backend | OpenVinoBackend | None = None
        self.refresh_s: dict[int, float] = {}
        self.note = note
        self._slot = 0
        self._exporter = LiveExporter(temperature) if isinstance(config, OpenVinoConfig) else None

    def sync_weights(self) -> None:
        """Convert the live policy and serve it (TRL calls this once per optimizer step)."""
        t0 = time.perf_counter()
        step = int(self.trainer.state.global_step) + 1  # the step whose rollouts these weights generate
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        self._slot ^= 1
        dest = self.folder / f"slot{self._slot}"
        if self._exporter is not None:
            dest = self._exporter(model, self.tokenizer, dest)
        else:
            dest = convert_live_model(model, self.tokenizer, dest, temperature=self.temperature)
        if self.backend is None:
            engine = OpenVinoBackend if self._exporter is not None else CTranslate2Backend
            self.backend = engine(self.config, path=dest)  # type: ignore[arg-type]
        else:
            self.backend.load(dest)
        self.refresh_s[step] = time.perf_counter() - t0
        if self.note is not None:
            self.note(f"step {step}: engine weights refreshed in {self.refresh_s[step]:.1f}s")

    def metrics(self, step: int) -> dict[str, float]:
        return {"refresh_s": self.refresh_s[step]} if step in self.refresh_s else {}


def attach_engine(trainer: Any, tokenizer: Any, *, temperature: float, config: EngineConfig,
                  folder: Path | None = None, note: Any = None) -> EngineSync:
    """Make ``trainer`` (the ``grpo`` trainer's GRPOTrainer) treat the engine as its external
    generator: the live weights go to the engine before each optimizer step's rollouts."""
    sync = EngineSync(trainer, tokenizer, temperature=temperature, config=config, folder=folder, note=note)
    trainer.use_vllm = True  # read on the rollout path only for the weight sync (see above)
    trainer.vllm_generation = sync
    trainer._last_loaded_step = -1
    # TRL's own vLLM-path correction would expect tensors our batch does not carry; the trainer's
    # importance_correction does that job from the recorded logprobs.
    trainer.vllm_importance_sampling_correction = False
    return sync


def engine_for_grpo(trainer: Any, tokenizer: Any, cfg: Any, job: Any, progress: Any) -> EngineSync:
    """The ``grpo`` trainer's engine (``rollout_backend``): settings from its config and policy."""
    config: EngineConfig
    if cfg.rollout_backend == "openvino":
        config = OpenVinoConfig(precision=cfg.rollout_precision, threads=cfg.rollout_threads,
                                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, name="openvino")
    else:
        config = CTranslate2Config(compute_type=cfg.rollout_compute_type, threads=cfg.rollout_threads,
                                   max_new_tokens=cfg.max_new_tokens, max_batch=cfg.generation_batch,
                                   batch_wait_s=cfg.generation_wait_s, name="ctranslate2")
    return attach_engine(trainer, tokenizer, temperature=cfg.temperature, config=config,
                         folder=job.out / "engine", note=progress.note)
