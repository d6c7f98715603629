"""The ``verl`` trainer's recipe, config mapping, version pin and launcher, against veRL 0.9.1's own
config schema (hydra-composed ``ppo_trainer.yaml``) and validation (``validate_config``, which
``main_ppo.main`` runs before starting Ray). No model and no GPU: the GPU GRPO step itself (vLLM +
FSDP) cannot run here.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sandmle.core.errors import SandmleError
from sandmle.core.plugins import get_manager
from sandmle.core.recipe import load_recipe, parse_recipe, resolve
from sandmle.graders.task_writer import write_task
from sandmle.plugins.verl import config as verl_config
from sandmle.plugins.verl.config import AGENT_NAME, hydra_overrides
from sandmle.plugins.verl.launch import LaunchPlan, launch, parse_metrics_line, prepare, recipe_overrides

from verl_support import compose_verl_config  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "train_verl_qwen3_8b.yaml"
SANDMLE = [sys.executable, "-m", "sandmle.core.cli"]

# SandMLE's release (Tonyzhou98/SandMLE@0912362), examples/deepresearch/train_mle_syn_qwen3_8b.sh:
# line -> (veRL 0.9.1 key, the value that line sets).
SANDMLE_SH = {
    40: ("algorithm.adv_estimator", "grpo"),
    41: ("data.train_batch_size", 16),
    43: ("data.max_prompt_length", 8192),
    44: ("data.max_response_length", 32768),
    47: ("actor_rollout_ref.model.path", "Qwen/Qwen3-8B"),
    48: ("actor_rollout_ref.hybrid_engine", True),
    49: ("actor_rollout_ref.actor.optim.lr", 1e-6),
    50: ("actor_rollout_ref.model.use_remove_padding", True),
    51: ("actor_rollout_ref.actor.loss_agg_mode", "seq-mean-token-mean"),
    53: ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", 2),
    54: ("actor_rollout_ref.actor.use_kl_loss", False),
    55: ("actor_rollout_ref.actor.kl_loss_coef", 0.001),
    56: ("actor_rollout_ref.actor.clip_ratio_high", 0.28),
    57: ("actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1),
    58: ("actor_rollout_ref.model.enable_gradient_checkpointing", True),
    59: ("actor_rollout_ref.actor.fsdp_config.param_offload", True),
    60: ("actor_rollout_ref.actor.fsdp_config.optimizer_offload", True),
    61: ("actor_rollout_ref.rollout.tensor_model_parallel_size", 1),
    62: ("actor_rollout_ref.rollout.name", "vllm"),
    63: ("actor_rollout_ref.rollout.mode", "async"),
    64: ("actor_rollout_ref.rollout.enforce_eager", False),
    65: ("actor_rollout_ref.rollout.enable_prefix_caching", True),
    66: ("actor_rollout_ref.rollout.max_num_batched_tokens", 65536),
    67: ("actor_rollout_ref.rollout.temperature", 1.0),
    68: ("actor_rollout_ref.rollout.gpu_memory_utilization", 0.7),
    69: ("actor_rollout_ref.rollout.n", 4),
    70: ("actor_rollout_ref.rollout.val_kwargs.n", 1),
    71: ("actor_rollout_ref.rollout.val_kwargs.temperature", 1.0),
    72: ("actor_rollout_ref.rollout.val_kwargs.top_p", 0.95),
    73: ("actor_rollout_ref.ref.fsdp_config.param_offload", True),
    74: ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", 1),
    75: ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", 1),
    82: ("actor_rollout_ref.actor.entropy_coeff", 0),
    84: ("trainer.critic_warmup", 0),
    85: ("trainer.val_before_train", True),
    90: ("trainer.n_gpus_per_node", 8),
    91: ("trainer.nnodes", 1),
    92: ("trainer.save_freq", 5),
    93: ("trainer.test_freq", 5),
    100: ("trainer.total_epochs", 20),
}
# Where we differ on purpose (each explained in plugins/verl/config.py's docstring):
#  52: ppo_mini_batch_size=64 counted trajectories under veRL 0.6.1 (64 = 16 tasks x 4, one update
#      per step); veRL 0.9.1 counts tasks and refuses more than the batch, so 16 is the same update.
#  86: logger console+wandb -> console+tensorboard (no account needed; add wandb in the recipe).
#  76-81: rLLM compact filtering -> the agent loop's all-zero masks for timeout/unknown episodes.
DIFFERENT = {52: ("actor_rollout_ref.actor.ppo_mini_batch_size", 16),
             86: ("trainer.logger", ["console", "tensorboard"])}


def select(config, dotted: str):
    from omegaconf import OmegaConf

    return OmegaConf.select(config, dotted, throw_on_missing=True)


def registry_with_plugins():
    manager = get_manager()
    return manager.fill_registry()


def shipped_recipe():
    return resolve(load_recipe(RECIPE), registry_with_plugins())


def paths(tmp: Path) -> dict:
    return {"train_files": tmp / "train.parquet", "val_files": tmp / "val.parquet",
            "agent_loop_yaml": tmp / "loop.yaml", "checkpoint_dir": tmp / "ck"}


@pytest.fixture(scope="module")
def composed_shipped(tmp_path_factory):
    recipe = shipped_recipe()
    overrides = recipe_overrides(recipe, recipe.train.trainer.config, **paths(tmp_path_factory.mktemp("p")))
    return recipe, overrides, compose_verl_config(hydra_overrides(overrides))


def test_shipped_recipe_validates_with_the_cli():
    done = subprocess.run(SANDMLE + ["recipe", "validate", str(RECIPE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train" in done.stdout


def test_generated_config_is_sandmles_setting_field_by_field(composed_shipped):
    _, _, config = composed_shipped
    wrong = {line: (key, select(config, key), want) for line, (key, want) in {**SANDMLE_SH, **DIFFERENT}.items()
             if select(config, key) != want}
    assert not wrong, wrong
    # The GRPO group is trajectory-wise (sh:97 stepwise_advantage.enable=False): one reward per episode.
    assert select(config, "actor_rollout_ref.rollout.agent.default_agent_loop") == AGENT_NAME
    assert select(config, "algorithm.use_kl_in_reward") is False


def test_veRL_accepts_the_generated_config(composed_shipped):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    _, _, config = composed_shipped
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    assert not need_reference_policy(config)  # no KL: veRL does not even build the reference model


def test_shipped_recipe_keeps_sandmles_episode_and_filtering_settings(composed_shipped, tmp_path):
    recipe, _, _ = composed_shipped
    from sandmle.plugins.verl.launch import loop_settings

    from sandmle.core.recipe import ComponentSpec

    settings = loop_settings(recipe, recipe.train.trainer.config, tmp_path)
    scaffold = ComponentSpec.model_validate(settings.scaffold).build(registry_with_plugins(), "scaffolds")
    # custom_train.py:44-47: 15 model calls, 20 minutes, 300 s per python execution.
    limits = scaffold.config.limits
    assert (limits.max_llm_calls, limits.max_wall_s, limits.exec_timeout_s) == (15, 1200, 300)
    # Replies may use the whole sh:44 budget; the agent loop's own budget bounds them.
    assert scaffold.config.sampling.max_tokens == 32768 and settings.max_tokens_per_turn is None
    # sh:80-81 mask_timeout/mask_unknown=True; sh:77-79 (length, turns) stay False.
    assert settings.mask_stop_reasons == ["timeout", "unknown"]
    assert settings.reward == {"name": "milestone", "args": {"preset": "sandmle-code"}}


def recipe_with(tmp_path: Path, train: dict, trainer_args: dict) -> object:
    data = {"name": "t", "output_dir": str(tmp_path / "out"),
            "train": {"trainer": {"name": "verl", "args": trainer_args}, **train}}
    return resolve(parse_recipe(data), registry_with_plugins())


def test_shared_grpo_names_and_the_train_section_map_to_veRL_keys(tmp_path):
    recipe = recipe_with(tmp_path, {"max_steps": 7, "save_every": 2, "keep_checkpoints": 3, "seed": 5,
                                    "resume": False, "policy": {"name": "transformers", "args": {"model": "m/x"}}},
                         {"loss_type": "dr_grpo", "scale_rewards": "none", "beta": 0.01, "n": 8, "batch_tasks": 4,
                          "lora": {"r": 8, "alpha": 16}, "epsilon": 0.1})
    config = compose_verl_config(hydra_overrides(recipe_overrides(recipe, recipe.train.trainer.config,
                                                                  **paths(tmp_path))))
    expect = {"trainer.total_training_steps": 7, "trainer.save_freq": 2, "trainer.max_actor_ckpt_to_keep": 3,
              "data.seed": 5, "trainer.resume_mode": "disable", "actor_rollout_ref.model.path": "m/x",
              "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-sum-norm",
              "algorithm.norm_adv_by_std_in_grpo": False, "actor_rollout_ref.actor.use_kl_loss": True,
              "actor_rollout_ref.actor.kl_loss_coef": 0.01, "actor_rollout_ref.rollout.n": 8,
              "data.train_batch_size": 4, "actor_rollout_ref.actor.ppo_mini_batch_size": 4,
              "actor_rollout_ref.model.lora_rank": 8, "actor_rollout_ref.model.lora_alpha": 16,
              "actor_rollout_ref.actor.clip_ratio_low": 0.1}
    assert {k: select(config, k) for k in expect} == expect
    # Without max_steps the epoch schedule (sh:100) decides; veRL's total_training_steps stays unset.
    plain = recipe_with(tmp_path, {}, {})
    config = compose_verl_config(hydra_overrides(recipe_overrides(plain, plain.train.trainer.config,
                                                                  **paths(tmp_path))))
    assert select(config, "trainer.total_training_steps") is None
    assert select(config, "trainer.resume_mode") == "auto"


def test_overrides_pass_through_verbatim_and_win(tmp_path):
    overrides = {"trainer.experiment_name": "it's run 1.0, \"quoted\"", "actor_rollout_ref.actor.optim.lr": 3e-6,
                 "actor_rollout_ref.rollout.max_model_len": 40960, "+trainer.sandmle_tag": "true",
                 "trainer.logger": ["console", "wandb"], "data.val_files": "/x/y z.parquet"}
    recipe = recipe_with(tmp_path, {}, {"overrides": overrides})
    config = compose_verl_config(hydra_overrides(recipe_overrides(recipe, recipe.train.trainer.config,
                                                                  **paths(tmp_path))))
    assert {k.lstrip("+"): select(config, k.lstrip("+")) for k in overrides} == \
        {k.lstrip("+"): v for k, v in overrides.items()}


def test_settings_veRL_cannot_honour_are_refused(tmp_path):
    from sandmle.core.errors import RecipeError

    for args, words in (({"scale_rewards": "batch"}, "no veRL GRPO equivalent"),
                        ({"batch_tasks": 4, "ppo_mini_batch_size": 8}, "refuses"),
                        ({"lora": {"dropout": 0.1}}, "no dropout")):
        with pytest.raises(RecipeError, match=words):
            recipe_with(tmp_path, {}, args)


def test_other_veRL_versions_are_refused_with_a_clear_message(monkeypatch):
    registry = registry_with_plugins()
    real = verl_config.importlib.metadata.version
    monkeypatch.setattr(verl_config.importlib.metadata, "version",
                        lambda name: "0.10.0" if name == "verl" else real(name))
    with pytest.raises(SandmleError, match=r"veRL 0\.9\.1 .* but veRL 0\.10\.0 is installed.*pip install 'verl==0\.9\.1'"):
        registry.create("trainers", "verl")

    def missing(name):
        raise verl_config.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(verl_config.importlib.metadata, "version", missing)
    with pytest.raises(SandmleError, match=r"pip install 'sandmle\[verl\]'"):
        registry.create("trainers", "verl")


# ---------------------------------------------------------------------- data and launch
def tiny_tasks(root: Path, n: int) -> list:
    tasks = []
    for i in range(n):
        ids = list(range(8))
        train = pd.DataFrame({"id": ids, "x": ids, "y": [k % 2 for k in ids]})
        test = pd.DataFrame({"id": ids, "x": ids})
        answers = pd.DataFrame({"id": ids, "y": [k % 2 for k in ids]})
        sample = pd.DataFrame({"id": ids, "y": [0] * 8})
        tasks.append(write_task(root / f"t{i}", task_id=f"t{i}", train=train, test=test, answers=answers,
                                sample_submission=sample, description=f"Predict y for task {i}.",
                                metric="accuracy", lower_is_better=False, id_column="id", target_columns=["y"]))
    return tasks


def test_sandmle_train_dispatches_to_verl_and_writes_a_launchable_plan(tmp_path):
    """`sandmle train` on a dry-run recipe: the real CLI, train stage and trainer, minus veRL's start."""
    tiny_tasks(tmp_path / "tasks", 3)
    recipe = {"name": "dry", "output_dir": str(tmp_path / "out"),
              "tasks": {"name": "mine", "source": {"name": "directory", "args": {"path": str(tmp_path / "tasks")}}},
              "train": {"trainer": {"name": "verl", "args": {"dry_run": True, "val_tasks": 1, "n_gpus_per_node": 1,
                                                                 "ray_address": "10.0.0.1:6379"}}}}
    path = tmp_path / "dry.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    done = subprocess.run(SANDMLE + ["train", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out" / "train"
    assert (pd.read_parquet(out / "data" / "train.parquet")["extra_info"].map(lambda e: e["task_id"]).tolist()
            == ["t0", "t1"])
    assert pd.read_parquet(out / "data" / "val.parquet")["extra_info"][0]["task_id"] == "t2"
    command = (out / "command.sh").read_text()
    assert "export RAY_ADDRESS=10.0.0.1:6379" in command and "-m verl.trainer.main_ppo" in command
    overrides = json.loads((out / "overrides.json").read_text())
    assert overrides["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == str(out / "agent_loop.yaml")
    assert yaml.safe_load((out / "agent_loop.yaml").read_text())[0]["scaffold"] == {"name": "react", "args": {}}
    assert json.loads((out / "train.json").read_text())["trainer"] == "verl"
    # The exact command, run through veRL's own entry point with hydra's --cfg job (compose the
    # config, print it, exit before Ray starts: the training itself needs GPUs).
    argv = shlex.split(command.strip().splitlines()[-1])
    shown = subprocess.run(argv + ["--cfg", "job"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    printed = {line.strip() for line in shown.stdout.splitlines()}  # hydra's YAML dump, line by line
    assert {f"default_agent_loop: {AGENT_NAME}", "clip_ratio_high: 0.28",
            f"train_files: {out / 'data' / 'train.parquet'}"} <= printed


def test_launch_streams_veRLs_step_metrics_to_jsonl(tmp_path):
    """The launcher's tee and metrics parsing. veRL's trainer needs GPUs, so a short script stands in
    for it here, printing a line made by veRL's own console logger (aggregate_logger.py:26-32)."""
    from verl.utils.logger.aggregate_logger import concat_dict_to_str

    line = concat_dict_to_str({"critic/score/mean": 0.25, "timing_s/step": 12.5, "note": "skipped"}, step=3)
    assert parse_metrics_line(line) == {"step": 3, "critic/score/mean": 0.25, "timing_s/step": 12.5}
    script = f"import os; print('starting'); print({line!r}); print(os.environ['RAY_ADDRESS'])"
    plan = LaunchPlan(out_dir=tmp_path, overrides={}, command=[sys.executable, "-c", script],
                      env={"RAY_ADDRESS": "auto"}, checkpoint_dir=tmp_path / "ck", train_tasks=1, val_tasks=1,
                      total_steps=5)
    rc, last = launch(plan, console=None)
    assert rc == 0 and last == {"step": 3, "critic/score/mean": 0.25, "timing_s/step": 12.5}
    [row] = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 3 and row["reward"] == 0.25 and row["critic/score/mean"] == 0.25
    assert (tmp_path / "train.log").read_text().splitlines() == ["starting", line, "auto"]


def test_prepare_refuses_an_empty_task_set(tmp_path):
    recipe = recipe_with(tmp_path, {}, {})
    with pytest.raises(SandmleError, match="no tasks"):
        prepare(recipe, [], recipe.train.trainer.config, tmp_path / "out")


def test_a_grader_past_its_timeout_returns_an_invalid_grade_instead_of_blocking(tmp_path):
    from sandmle.plugins.verl.timeouts import TimedGrader

    [task] = tiny_tasks(tmp_path, 1)
    submission = tmp_path / "submission.csv"
    pd.DataFrame({"id": list(range(8)), "y": [k % 2 for k in range(8)]}).to_csv(submission, index=False)
    grader = registry_with_plugins().create("graders", "default")
    assert TimedGrader(grader, 60).grade(task, submission).score == 1.0  # the real grade when in time
    late = TimedGrader(grader, 1e-9).grade(task, submission)
    assert late.reason == TimedGrader.TIMED_OUT and not late.valid_submission
