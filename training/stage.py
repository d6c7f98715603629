"""The recipe's train stage (``sandmle run`` calls it; ``sandmle train`` too)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import TrainResult
from sandmle.core.recipe import Recipe
from sandmle.core.registry import Registry
from sandmle.core.task import Task


def train_tasks(recipe: Recipe, registry: Registry) -> list[Task]:
    """The tasks of the task sets ``train.tasks`` names (all task sets when it names none)."""
    from sandmle.core.runner import load_task_set

    assert recipe.train is not None
    wanted = recipe.train.tasks or [ts.name for ts in recipe.tasks]
    return [t for ts in recipe.tasks if ts.name in wanted for t in load_task_set(recipe, ts, registry)]


def run_train_stage(recipe: Recipe, registry: Registry, console: Console) -> TrainResult:
    """Build the recipe's trainer and train; print where the checkpoints are."""
    if recipe.train is None:
        raise SandmleError(f"recipe {recipe.name!r} has no train: section")
    tasks = train_tasks(recipe, registry)
    trainer = recipe.train.trainer.build(registry, "trainers")
    console.print(f"trainer [bold]{escape(recipe.train.trainer.label)}[/] · policy "
                  f"{escape(recipe.train.policy.label)} · {len(tasks)} tasks · output {escape(str(recipe.train_dir))}")
    result = trainer.train(recipe, tasks)
    table = Table(title="train result", show_header=False)
    table.add_row("steps", str(result.steps))
    table.add_row("model", escape(str(result.checkpoint_dir)))
    for key, value in result.metrics.items():
        table.add_row(escape(str(key)), f"{value:.4g}" if isinstance(value, float) else escape(str(value)))
    console.print(table)
    return result
