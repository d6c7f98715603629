"""A recipe's ``train:`` section resolved for a trainer: components, output folder, resume point.

Trainers receive ``(recipe, tasks)`` (the :class:`~sandmle.core.interfaces.Trainer` contract)
and call :meth:`TrainJob.create` to get everything else the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console

from sandmle.core.errors import SandmleError
from sandmle.core.recipe import ComponentSpec, Recipe, TrainSection
from sandmle.core.registry import Registry
from sandmle.core.task import Task

from .checkpoints import FINAL, TRAIN_INFO, complete_checkpoints, latest_checkpoint, remove_incomplete, write_json_atomic
from .progress import METRICS_FILE

TENSORBOARD_DIR = "tensorboard"


@dataclass
class TrainJob:
    """Everything a trainer needs besides its own config."""

    recipe: Recipe
    registry: Registry
    tasks: list[Task]
    console: Console = field(default_factory=Console)

    @classmethod
    def create(cls, recipe: Recipe, tasks: list[Task], registry: Registry | None = None,
               console: Console | None = None) -> "TrainJob":
        if recipe.train is None:
            raise SandmleError(f"recipe {recipe.name!r} has no train: section")
        if registry is None:
            from sandmle.core.plugins import get_registry

            registry = get_registry()
        return cls(recipe, registry, list(tasks), console or Console())

    # ------------------------------------------------------------------ settings
    @property
    def section(self) -> TrainSection:
        assert self.recipe.train is not None
        return self.recipe.train

    @property
    def out(self) -> Path:
        return self.recipe.train_dir

    @property
    def seed(self) -> int:
        return self.section.seed if self.section.seed is not None else self.recipe.seed

    @property
    def tensorboard_dir(self) -> Path:
        return self.out / TENSORBOARD_DIR

    def config_of(self, spec: ComponentSpec, kind: str) -> BaseModel:
        """The validated config of a component (validating now if the recipe was not resolved)."""
        try:
            return spec.config
        except RuntimeError:
            return self.registry.get(kind, spec.name).config.model_validate(spec.args)

    @property
    def trainer_config(self) -> Any:
        return self.config_of(self.section.trainer, "trainers")

    @property
    def policy_config(self) -> Any:
        return self.config_of(self.section.policy, "backends")

    # ------------------------------------------------------------------ components
    def build(self, spec: ComponentSpec, kind: str) -> Any:
        return spec.build(self.registry, kind)

    def scaffold(self) -> Any:
        return self.build(self.recipe.train_scaffold(), "scaffolds")

    def reward(self) -> Any:
        return self.build(self.recipe.train_reward(), "rewards")

    def grader(self) -> Any:
        return self.build(self.recipe.grader, "graders")

    def sandbox(self) -> Any:
        return self.build(self.recipe.sandbox, "sandboxes")

    def require_tasks(self) -> list[Task]:
        if not self.tasks:
            raise SandmleError(f"recipe {self.recipe.name!r}: the {self.section.trainer.name} trainer needs "
                               "tasks (add a tasks: section, or name task sets in train.tasks)")
        return self.tasks

    # ------------------------------------------------------------------ output folder
    def prepare_output(self) -> Path | None:
        """Make the output folder ready and return the checkpoint to resume from (or None).

        ``resume: false`` starts over: earlier checkpoints, final model, metrics and
        TensorBoard events of this folder are removed. Half-written checkpoints are always removed.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        for path in remove_incomplete(self.out):
            self.console.print(f"[yellow]removed incomplete checkpoint {path.name} (a run was killed while saving)[/]")
        if not self.section.resume:
            for _, path in complete_checkpoints(self.out):
                shutil.rmtree(path)
            for name in (FINAL, TENSORBOARD_DIR, "rollouts"):
                shutil.rmtree(self.out / name, ignore_errors=True)
            (self.out / METRICS_FILE).unlink(missing_ok=True)
            return None
        return latest_checkpoint(self.out)

    def write_info(self, **extra: Any) -> None:
        """``train.json``: the resolved train settings, so a checkpoint knows its base model."""
        write_json_atomic(self.out / TRAIN_INFO, {
            "recipe": self.recipe.name,
            "trainer": self.section.trainer.name,
            "trainer_config": self.trainer_config.model_dump(mode="json"),
            "policy": self.section.policy.name,
            "policy_config": self.policy_config.model_dump(mode="json"),
            "scaffold": self.recipe.train_scaffold().label,
            "reward": self.recipe.train_reward().label,
            "tasks": [t.id for t in self.tasks],
            "seed": self.seed, **extra})
