"""The ``verl`` trainer: export, write veRL's config, launch ``verl.trainer.main_ppo`` on Ray.

``train(recipe, tasks)`` lays out the recipe's train directory (``train.output_dir``, default
``OUTPUT/train``)::

    data/train.parquet  data/val.parquet     the task set in veRL's layout (verl_export)
    agent_loop.yaml                          points veRL's workers at SandmleAgentLoop
    overrides.json  command.sh               every veRL key we set, and the exact command
    train.log  metrics.jsonl                 veRL's console output; its per-step metrics
    episodes/                                one JSONL per agent-loop worker, one row per episode
    checkpoints/                             veRL's global_step_N folders (rerunning resumes)

then runs ``python -m verl.trainer.main_ppo KEY=VALUE...``. With ``ray_address`` it joins that
cluster (``RAY_ADDRESS``, which ``ray.init()`` in main_ppo honours); otherwise veRL starts a local
Ray instance. Paths written here must be readable from every node of the cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import Trainer, TrainResult
from sandmle.core.task import Task

from .config import (
    VERL_VERSION, LoopSettings, VerlTrainerConfig, check_verl_version, dump_overrides, hydra_overrides, verl_overrides,
)
from .export import export_parquet, split_tasks, write_agent_loop_yaml

_STEP_LINE = re.compile(r"^step:(\d+) - (.*)$")


@dataclass
class LaunchPlan:
    """Everything written before veRL starts, and the command that starts it."""

    out_dir: Path
    overrides: dict[str, Any]
    command: list[str]
    env: dict[str, str]
    checkpoint_dir: Path
    train_tasks: int
    val_tasks: int
    total_steps: int


def _spec(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "args": dict(spec.args)}


def loop_settings(recipe: Any, cfg: VerlTrainerConfig, out_dir: Path) -> LoopSettings:
    """The agent loop's settings: the recipe's training scaffold, sandbox, grader and reward, its
    compact filter, and the trainer's episode options."""
    train = recipe.train
    return LoopSettings(
        scaffold=_spec(recipe.train_scaffold()), sandbox=_spec(recipe.sandbox), grader=_spec(recipe.grader),
        reward=_spec(recipe.train_reward()),
        plugins=[str(Path(p).resolve()) if p.endswith(".py") else p for p in recipe.plugins],
        episode_timeout_s=cfg.episode_timeout_s, sandbox_open_timeout_s=cfg.sandbox_open_timeout_s,
        grade_timeout_s=cfg.grade_timeout_s, max_tokens_per_turn=cfg.max_new_tokens,
        mask_stop_reasons=list(train.compact_filtering), trajectory_dir=str((out_dir / "episodes").resolve()))


def train_section_overrides(recipe: Any, cfg: VerlTrainerConfig) -> dict[str, Any]:
    """What the shared ``train:`` section says, in veRL keys (only the fields the recipe sets, so
    SandMLE's epoch schedule stays the default)."""
    train = recipe.train
    given = train.model_fields_set
    out: dict[str, Any] = {"trainer.resume_mode": "auto" if train.resume else "disable",
                           "trainer.max_actor_ckpt_to_keep": train.keep_checkpoints}
    if "max_steps" in given:
        out["trainer.total_training_steps"] = train.max_steps
    if "save_every" in given:
        out["trainer.save_freq"] = train.save_every
    seed = train.seed if train.seed is not None else recipe.seed
    out["data.seed"] = seed
    return out


def policy_model(recipe: Any, cfg: VerlTrainerConfig) -> str:
    """The model to train: the trainer's ``model`` if given, else the ``transformers`` policy's."""
    policy = recipe.train.policy
    if "model" not in cfg.model_fields_set and policy.name == "transformers" and policy.args.get("model"):
        return str(policy.args["model"])
    return cfg.model


def recipe_overrides(recipe: Any, cfg: VerlTrainerConfig, **paths: Path) -> dict[str, Any]:
    """Every veRL key for ``recipe``: the trainer's settings, its policy's model, the ``train:``
    section's schedule, then the user's ``overrides`` (which win)."""
    run_cfg = cfg.model_copy(update={"model": policy_model(recipe, cfg),
                                     "overrides": {**train_section_overrides(recipe, cfg), **cfg.overrides}})
    return verl_overrides(run_cfg, experiment_name=str(recipe.name), **paths)


def prepare(recipe: Any, tasks: list[Task], cfg: VerlTrainerConfig, out_dir: Path) -> LaunchPlan:
    """Write data, agent-loop YAML, overrides and command under ``out_dir``; start nothing."""
    out_dir = out_dir.resolve()
    train, val = split_tasks(tasks, cfg.val_tasks)
    source = f"sandmle/{recipe.name}"
    train_file = export_parquet(train, out_dir / "data" / "train.parquet", split="train", data_source=source)
    val_file = export_parquet(val, out_dir / "data" / "val.parquet", split="val", data_source=source)
    loop_yaml = write_agent_loop_yaml(out_dir / "agent_loop.yaml",
                                      loop_settings(recipe, cfg, out_dir).model_dump(mode="json"))
    checkpoint_dir = out_dir / "checkpoints"
    overrides = recipe_overrides(recipe, cfg, train_files=train_file, val_files=val_file,
                                 agent_loop_yaml=loop_yaml, checkpoint_dir=checkpoint_dir)
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *hydra_overrides(overrides)]
    env = {"PYTHONUNBUFFERED": "1"}
    if cfg.ray_address:
        env["RAY_ADDRESS"] = cfg.ray_address
    (out_dir / "overrides.json").write_text(dump_overrides(overrides) + "\n", encoding="utf-8")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    (out_dir / "command.sh").write_text("#!/bin/sh\n" + exports + shlex.join(command) + "\n", encoding="utf-8")
    total = overrides.get("trainer.total_training_steps") or \
        len(train) // cfg.batch_tasks * int(overrides["trainer.total_epochs"])  # veRL drops the last partial batch
    return LaunchPlan(out_dir, overrides, command, env, checkpoint_dir, len(train), len(val), max(int(total), 1))


def latest_step(checkpoint_dir: Path) -> int:
    """The last step veRL checkpointed (its ``latest_checkpointed_iteration.txt``), 0 if none."""
    tracker = checkpoint_dir / "latest_checkpointed_iteration.txt"
    try:
        return int(tracker.read_text().strip())
    except (OSError, ValueError):
        return 0


def parse_metrics_line(line: str) -> dict[str, Any] | None:
    """veRL's console logger line ``step:N - key:value - ...`` as a dict (``None`` for other lines)."""
    match = _STEP_LINE.match(line.strip())
    if not match:
        return None
    row: dict[str, Any] = {"step": int(match.group(1))}
    for item in match.group(2).split(" - "):
        key, sep, value = item.rpartition(":")
        if not sep:
            continue
        try:
            row[key] = float(value)
        except ValueError:
            row[key] = value
    return row


def launch(plan: LaunchPlan, console: Any = None) -> tuple[int, dict[str, Any]]:
    """Run veRL; tee its output to ``train.log``; its step metrics go to ``metrics.jsonl`` and a
    progress bar (the shared :class:`TrainProgress`: reward, loss, tokens/s, ETA)."""
    from sandmle.training.progress import TrainProgress

    last: dict[str, Any] = {}
    env = {**os.environ, **plan.env}
    with (plan.out_dir / "train.log").open("a", encoding="utf-8") as log, \
            TrainProgress(plan.out_dir, plan.total_steps, initial_step=latest_step(plan.checkpoint_dir),
                          console=console, title="verl") as progress:
        proc = subprocess.Popen(plan.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            row = parse_metrics_line(line)
            if row is None:
                continue
            step = row.pop("step")
            # veRL's names (trainer/ppo/metric_utils.py) under the names every sandmle trainer shows.
            shown = {"reward": row.get("critic/score/mean"), "loss": row.get("actor/pg_loss"),
                     "tokens_per_s": row.get("perf/throughput")}
            last = {"step": step, **row}
            progress.log(step, {**{k: v for k, v in shown.items() if v is not None}, **row})
        return proc.wait(), last


class VerlTrainer(Trainer):
    """GRPO with veRL on Ray; episodes are our scaffolds via :class:`SandmleAgentLoop`."""

    def __init__(self, config: VerlTrainerConfig | None = None):
        self.config = config or VerlTrainerConfig()

    def train(self, recipe: Any, tasks: list[Task]) -> TrainResult:
        from sandmle.training.job import TrainJob

        job = TrainJob.create(recipe, tasks)
        plan = prepare(recipe, job.require_tasks(), self.config, job.out)
        job.write_info(verl_command=plan.command, veRL=VERL_VERSION)
        job.console.print(f"verl: {plan.train_tasks} training / {plan.val_tasks} validation tasks; "
                          f"command in {plan.out_dir / 'command.sh'}")
        if self.config.dry_run:
            return TrainResult(checkpoint_dir=plan.checkpoint_dir, steps=latest_step(plan.checkpoint_dir),
                               metrics={"dry_run": True})
        rc, last = launch(plan, job.console)
        if rc != 0:
            raise SandmleError(f"veRL exited with code {rc}; see {plan.out_dir / 'train.log'}")
        steps = latest_step(plan.checkpoint_dir)
        if self.config.export_hf:
            from .hf_export import export_hf

            hf = export_hf(plan.checkpoint_dir, plan.out_dir / "hf")
            job.console.print(f"verl: step {steps} exported as a Hugging Face folder: {hf}")
            return TrainResult(checkpoint_dir=hf, steps=steps, metrics=last)
        return TrainResult(checkpoint_dir=plan.checkpoint_dir, steps=steps, metrics=last)


def make_verl_trainer(config: VerlTrainerConfig) -> VerlTrainer:
    """Registry factory for ``verl`` (fails clearly unless veRL 0.9.1 is installed)."""
    check_verl_version()
    return VerlTrainer(config)
