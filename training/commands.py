"""``sandmle train`` and ``sandmle trajectories export``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from sandmle.core.arguments import FiniteFloatRange


def _console():
    from sandmle.core.cli import console

    return console


@click.command("train")
@click.argument("recipe")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Train output folder (default: the recipe's train.output_dir, else OUTPUT/train).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Override train.max_steps.")
@click.option("--fresh", is_flag=True, help="Start over instead of resuming from the last checkpoint.")
@click.option("--export-hf", is_flag=True, help="After training, write the last checkpoint as a Hugging Face "
              "folder (TRAIN_DIR/hf) for trainers whose checkpoints are not one (verl).")
def train_cmd(recipe: str, out_dir: Path | None, max_steps: int | None, fresh: bool, export_hf: bool) -> None:
    """Train with the recipe's train: section; rerun the same command to resume.

    RECIPE is a YAML file or a shipped recipe's name (e.g. train_sft_smollm2_cpu). Task sets made
    by a generator are generated (or their generation resumed) first. Checkpoints are
    backends: sandmle rollout TASK --backend transformers --backend-args '{"model": "OUT"}'.
    """
    from sandmle.core.errors import SandmleError
    from sandmle.core.recipe import output_dir_problem
    from sandmle.core.runner import prepare, print_plugins, write_run_metadata

    from .stage import run_train_stage

    console = _console()
    rec, manager = prepare(recipe)
    if rec.train is None:
        raise SandmleError(f"recipe {recipe!r} has no train: section")
    if out_dir is not None:
        problem = output_dir_problem(out_dir)
        if problem:
            raise SandmleError(f"--out: {problem}")
        rec.train.output_dir = out_dir
    if max_steps is not None:
        rec.train.max_steps = max_steps
    if fresh:
        rec.train.resume = False
    if export_hf:  # a trainer option, so that only trainers that can export accept it
        info = manager.registry.get("trainers", rec.train.trainer.name)
        if "export_hf" not in info.config.model_fields:
            raise SandmleError(f"--export-hf: the {rec.train.trainer.name} trainer has no export (its "
                               "checkpoints are already Hugging Face folders)")
        rec.train.trainer.args["export_hf"] = True
    print_plugins(manager, console)
    write_run_metadata(rec, manager)
    if any(ts.generator for ts in rec.tasks):
        # Always, as eval does: a killed generation leaves a task set short (a finished one starts nothing).
        from sandmle.generators.stage import run_generate_stage

        run_generate_stage(rec, manager.registry, console)
    run_train_stage(rec, manager.registry, console)


@click.command("export")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--filter", "rule", type=click.Choice(["all", "valid", "above_median", "medal"]),
              default="valid", show_default=True, help="Which episodes to keep.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="SFT JSONL to write; held-out tasks go to OUT with .heldout before the suffix.")
@click.option("--heldout", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Fraction of tasks held out (split by task id).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out split.")
@click.option("--scaffold", default=None, help="Only episodes of this scaffold.")
def export_cmd(run_dirs: tuple[Path, ...], rule: str, out: Path, heldout: float, seed: int,
               scaffold: str | None) -> None:
    """Turn evaluation runs (or rollout folders) into SFT data: final transcripts of the episodes
    that pass --filter, split by task into a training and a held-out file."""
    from .sft_data import export_sft_data

    s = export_sft_data(list(run_dirs), rule, out, heldout=heldout, seed=seed, scaffold=scaffold)
    table = Table(title=f"trajectories export --filter {rule}", show_header=False)
    table.add_row("episodes read", str(s.episodes))
    table.add_row("kept by the filter", str(s.kept) + (f"  ({', '.join(f'{k} {v}' for k, v in sorted(s.tiers.items()))})"
                                                        if s.tiers else ""))
    table.add_row("training", f"{s.train} episodes of {len(s.train_tasks)} tasks -> {escape(str(s.train_path))}")
    table.add_row("held out", f"{s.heldout} episodes of {len(s.heldout_tasks)} tasks -> {escape(str(s.heldout_path))}")
    _console().print(table)
    if s.kept == 0:
        _console().print("[yellow]no episode passed the filter; the files are empty[/]")


@click.group("trajectories")
def trajectories_group() -> None:
    """Work with saved trajectories (SFT data)."""


trajectories_group.add_command(export_cmd)
