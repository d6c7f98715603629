"""The ``verl`` trainer's settings and their translation into veRL 0.9.1 config overrides.

Nothing here imports veRL: a recipe naming the ``verl`` trainer validates (``sandmle recipe
validate``) on a machine without it. The defaults are SandMLE's published GRPO setting, read in
its release's ``examples/deepresearch/train_mle_syn_qwen3_8b.sh`` (line numbers in the field
descriptions). Two of its keys need translating because they belong to rLLM on veRL 0.6.1:

- ``ppo_mini_batch_size=64`` (line 52) with ``train_batch_size=16`` (line 41): veRL 0.6.1
  multiplied the mini-batch by ``rollout.n`` and split the 64 trajectories of a step into chunks of
  256, so each step made exactly one optimizer update over all of them. veRL 0.9.1 refuses a
  mini-batch larger than the batch, so the same behaviour is ``ppo_mini_batch_size=16``.
- ``rllm.compact_filtering.mask_timeout/mask_unknown=True`` (lines 76-81): there is no veRL key;
  our agent loop gives such episodes an all-zero ``response_mask`` (veRL's ``agg_loss`` then drops
  them from the loss, after GRPO has computed the group's advantages, as rLLM does).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import ComponentConfig
from sandmle.training.config import GRPOSettings

#: The veRL release this adapter is written and tested against (its agent-loop API is alpha and
#: renamed between minor versions, e.g. ``dataset_config`` -> ``data_config``).
VERL_VERSION = "0.9.1"

#: Name of our loop in the agent-loop YAML and in the parquet's ``agent_name`` column.
AGENT_NAME = "sandmle_agent"

#: Class veRL's workers instantiate (with ``hydra.utils.instantiate``) for every trajectory.
AGENT_LOOP_TARGET = "sandmle.plugins.verl.agent_loop.SandmleAgentLoop"


def check_verl_version() -> str:
    """Return veRL's installed version, or raise a clear error when it is missing or not pinned one."""
    try:
        found = importlib.metadata.version("verl")
    except importlib.metadata.PackageNotFoundError:
        raise SandmleError("the verl trainer needs veRL; install it with: pip install 'sandmle[verl]'") from None
    if found != VERL_VERSION:
        raise SandmleError(
            f"the verl trainer is written for veRL {VERL_VERSION} (its agent-loop API changes between "
            f"releases) but veRL {found} is installed; install the pinned one with: "
            f"pip install 'verl=={VERL_VERSION}'  (or pip install 'sandmle[verl]')")
    return found


#: The shared ``loss_type`` names (TRL's) in veRL's ``actor.loss_agg_mode`` terms.
LOSS_AGG_MODES = {"grpo": "seq-mean-token-mean", "dapo": "token-mean", "bnpo": "token-mean",
                  "dr_grpo": "seq-mean-token-sum-norm"}


class VerlTrainerConfig(GRPOSettings):
    """GRPO on veRL with SandMLE's settings (train_mle_syn_qwen3_8b.sh, "sh:" line numbers).

    The GRPO fields are the ones every sandmle trainer shares (:class:`GRPOSettings`), so a recipe
    moves from ``grpo`` to ``verl`` unchanged: batch_tasks (sh:41), n (sh:69), lr (sh:49),
    epsilon_high (sh:56), beta 0 = no KL loss (sh:54), loss_type grpo = seq-mean-token-mean (sh:51),
    temperature (sh:67), max_prompt_tokens (sh:43), max_episode_tokens (sh:44). The rest is veRL's.
    """

    model: str = Field("Qwen/Qwen3-8B", description="HF model id or path (actor, rollout, tokenizer; default: "
                       "the transformers policy's model if set, else Qwen3-8B, sh:47)")
    weight_decay: float = Field(0.01, ge=0, description="veRL's default, which SandMLE's run used (unset in sh)")
    max_new_tokens: int | None = Field(None, ge=1, description="cap on one reply on top of the scaffold's "
                                       "sampling.max_tokens (default: that alone, within the episode budget)")
    # ---- cluster
    ray_address: str | None = Field(None, description="an existing Ray cluster ('auto', 'HOST:6379', "
                                    "'ray://HOST:10001'); default: veRL starts a local one")
    nnodes: int = Field(1, ge=1, description="sh:91")
    n_gpus_per_node: int = Field(8, ge=1, description="sh:90")
    tensor_model_parallel_size: int = Field(1, ge=1, description="rollout TP; sh:61")
    rollout_engine: Literal["vllm", "sglang"] = Field("vllm", description="sh:62")
    gpu_memory_utilization: float = Field(0.7, gt=0, le=1, description="sh:68")
    agent_workers: int = Field(8, ge=1, description="veRL AgentLoopWorker actors (each runs many episodes)")
    # ---- updates
    ppo_mini_batch_size: int | None = Field(None, ge=1, description="tasks per optimizer update (default: "
                                            "batch_tasks, one update per step as sh:52 did; see module doc)")
    ppo_micro_batch_size_per_gpu: int = Field(2, ge=1, description="sh:53")
    log_prob_micro_batch_size_per_gpu: int = Field(1, ge=1, description="sh:74-75")
    entropy_coeff: float = Field(0.0, ge=0, description="sh:82")
    val_temperature: float = Field(1.0, ge=0, description="sh:71")
    val_top_p: float = Field(0.95, gt=0, le=1, description="sh:72")
    val_n: int = Field(1, ge=1, description="sh:70")
    gradient_checkpointing: bool = Field(True, description="sh:58")
    offload: bool = Field(True, description="FSDP param/optimizer offload of actor and ref; sh:59-60,73")
    # ---- schedule and data (train.max_steps / save_every, when the recipe sets them, win)
    total_epochs: int = Field(20, ge=1, description="sh:100")
    save_freq: int = Field(5, description="sh:92")
    test_freq: int = Field(5, description="sh:93")
    val_before_train: bool = Field(True, description="sh:85")
    val_tasks: int = Field(64, ge=0, description="tasks held out for validation (SandMLE: 64 of 912)")
    save_hf_model: bool = Field(True, description="add hf_model to the actor checkpoint's save_contents, so "
                                "every checkpoint also holds full Hugging Face weights (rank 0 gathers them; "
                                "SandMLE's run kept veRL's default: FSDP shards only)")
    export_hf: bool = Field(False, description="after training, write the last checkpoint as a Hugging Face "
                            "folder TRAIN_DIR/hf (sandmle train --export-hf; veRL's model merger for shards)")
    logger: list[str] = Field(default_factory=lambda: ["console", "tensorboard"],
                              description="veRL trackers (sh:86 adds wandb)")
    project_name: str = Field("sandmle", description="sh:29")
    # ---- episodes
    episode_timeout_s: float | None = Field(None, gt=0, description="hard cap of one episode (default: "
                                            "the scaffold's max_wall_s + 300 s); past it the episode "
                                            "is masked, its group trains on")
    sandbox_open_timeout_s: float = Field(300.0, gt=0)
    grade_timeout_s: float = Field(300.0, gt=0)
    # ---- escape hatches
    overrides: dict[str, Any] = Field(default_factory=dict, description="any veRL config key (dotted, "
                                      "hydra syntax, '+key' to add one); applied last, so it wins")
    dry_run: bool = Field(False, description="write the data, agent-loop YAML and command; do not launch")

    @model_validator(mode="after")
    def _veRL_can_do_it(self) -> "VerlTrainerConfig":
        if self.scale_rewards == "batch":
            raise ValueError("scale_rewards='batch' has no veRL GRPO equivalent; use 'group' or 'none'")
        if self.lora is not None and self.lora.dropout:
            raise ValueError("veRL's LoRA has no dropout setting; leave lora.dropout at 0")
        if self.ppo_mini_batch_size is not None and self.ppo_mini_batch_size > self.batch_tasks:
            raise ValueError(f"ppo_mini_batch_size ({self.ppo_mini_batch_size}) exceeds batch_tasks "
                             f"({self.batch_tasks}); veRL 0.9.1 refuses that")
        return self


class LoopSettings(ComponentConfig):
    """What the agent-loop YAML tells :class:`~sandmle.plugins.verl.agent_loop.SandmleAgentLoop`.

    Component specs are ``{name, args}`` as in a recipe; they are built once per worker process.
    """

    scaffold: dict[str, Any] = Field(default_factory=lambda: {"name": "react"})
    sandbox: dict[str, Any] = Field(default_factory=lambda: {"name": "local"})
    grader: dict[str, Any] = Field(default_factory=lambda: {"name": "default"})
    reward: dict[str, Any] = Field(default_factory=lambda: {"name": "milestone"})
    plugins: list[str] = Field(default_factory=list, description="the recipe's extra plugin modules")
    episode_timeout_s: float | None = Field(None, gt=0)
    sandbox_open_timeout_s: float = Field(300.0, gt=0)
    grade_timeout_s: float = Field(300.0, gt=0)
    max_tokens_per_turn: int | None = Field(None, ge=1)
    mask_stop_reasons: list[str] | None = Field(None, description="compact filter: stop reasons masked "
                                                "out of the loss (the recipe's train.compact_filtering)")
    trajectory_dir: str | None = Field(None, description="where each worker appends episode JSONL")


def verl_overrides(cfg: VerlTrainerConfig, *, train_files: Path, val_files: Path, agent_loop_yaml: Path,
                   checkpoint_dir: Path, experiment_name: str) -> dict[str, Any]:
    """veRL config keys for ``cfg`` (dotted paths of ``verl/trainer/config/ppo_trainer.yaml``).

    The user's ``cfg.overrides`` are applied last and therefore win over everything else.
    """
    actor, rollout = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    out: dict[str, Any] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "algorithm.norm_adv_by_std_in_grpo": cfg.scale_rewards == "group",
        "data.train_files": str(train_files),
        "data.val_files": str(val_files),
        "data.train_batch_size": cfg.batch_tasks,
        "data.max_prompt_length": cfg.max_prompt_tokens,
        "data.max_response_length": cfg.max_episode_tokens,
        # Our loop measures the real prompt (the scaffold's) and stops on its own budget.
        "data.filter_overlong_prompts": False,
        "actor_rollout_ref.model.path": cfg.model,
        "actor_rollout_ref.model.use_remove_padding": True,
        "actor_rollout_ref.model.enable_gradient_checkpointing": cfg.gradient_checkpointing,
        f"{actor}.optim.lr": cfg.lr,
        f"{actor}.optim.weight_decay": cfg.weight_decay,
        f"{actor}.grad_clip": cfg.max_grad_norm,
        f"{actor}.loss_agg_mode": LOSS_AGG_MODES[cfg.loss_type],
        f"{actor}.ppo_epochs": cfg.ppo_epochs,
        f"{actor}.ppo_mini_batch_size": cfg.ppo_mini_batch_size or cfg.batch_tasks,
        f"{actor}.ppo_micro_batch_size_per_gpu": cfg.ppo_micro_batch_size_per_gpu,
        f"{actor}.use_kl_loss": cfg.beta > 0,
        f"{actor}.kl_loss_coef": cfg.beta if cfg.beta > 0 else 0.001,  # sh:55's value, unused without KL
        f"{actor}.clip_ratio_low": cfg.epsilon,
        f"{actor}.clip_ratio_high": cfg.epsilon_high,
        f"{actor}.entropy_coeff": cfg.entropy_coeff,
        f"{actor}.checkpoint.save_contents": ["model", "optimizer", "extra", *(["hf_model"] * cfg.save_hf_model)],
        f"{actor}.fsdp_config.param_offload": cfg.offload,
        f"{actor}.fsdp_config.optimizer_offload": cfg.offload,
        "actor_rollout_ref.ref.fsdp_config.param_offload": cfg.offload,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": cfg.log_prob_micro_batch_size_per_gpu,
        f"{rollout}.log_prob_micro_batch_size_per_gpu": cfg.log_prob_micro_batch_size_per_gpu,
        f"{rollout}.name": cfg.rollout_engine,
        f"{rollout}.mode": "async",
        f"{rollout}.tensor_model_parallel_size": cfg.tensor_model_parallel_size,
        f"{rollout}.gpu_memory_utilization": cfg.gpu_memory_utilization,
        f"{rollout}.enable_prefix_caching": True,  # sh:65
        f"{rollout}.enforce_eager": False,  # sh:64
        f"{rollout}.max_num_batched_tokens": 65536,  # sh:66
        f"{rollout}.temperature": cfg.temperature,
        f"{rollout}.top_p": cfg.top_p,
        f"{rollout}.n": cfg.n,
        f"{rollout}.val_kwargs.n": cfg.val_n,
        f"{rollout}.val_kwargs.temperature": cfg.val_temperature,
        f"{rollout}.val_kwargs.top_p": cfg.val_top_p,
        f"{rollout}.val_kwargs.do_sample": cfg.val_temperature > 0,
        f"{rollout}.agent.agent_loop_config_path": str(agent_loop_yaml),
        f"{rollout}.agent.default_agent_loop": AGENT_NAME,
        f"{rollout}.agent.num_workers": cfg.agent_workers,
        "trainer.critic_warmup": 0,
        "trainer.val_before_train": cfg.val_before_train,
        "trainer.logger": list(cfg.logger),
        "trainer.project_name": cfg.project_name,
        "trainer.experiment_name": experiment_name,
        "trainer.default_local_dir": str(checkpoint_dir),
        "trainer.n_gpus_per_node": cfg.n_gpus_per_node,
        "trainer.nnodes": cfg.nnodes,
        "trainer.save_freq": cfg.save_freq,
        "trainer.test_freq": cfg.test_freq,
        "trainer.total_epochs": cfg.total_epochs,
    }
    if cfg.lora is not None:
        out.update({"actor_rollout_ref.model.lora_rank": cfg.lora.r,
                    "actor_rollout_ref.model.lora_alpha": cfg.lora.alpha,
                    "actor_rollout_ref.model.target_modules": cfg.lora.target_modules})
    out.update(cfg.overrides)
    return out


_BARE = re.compile(r"^[A-Za-z0-9_./:@-]+$")
_RESERVED = {"true", "false", "null", "none", "nan", "inf", "-inf"}


def hydra_value(value: Any) -> str:
    """One value in hydra's override grammar (strings quoted unless they are plain words)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _BARE.match(text) and text.lower() not in _RESERVED and not _looks_numeric(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def hydra_overrides(overrides: dict[str, Any]) -> list[str]:
    """``key=value`` command-line arguments for ``python -m verl.trainer.main_ppo``."""
    return [f"{key}={hydra_value(value)}" for key, value in overrides.items()]


def dump_overrides(overrides: dict[str, Any]) -> str:
    """The overrides as pretty JSON (written next to the run for the record)."""
    return json.dumps(overrides, indent=2, default=str)
