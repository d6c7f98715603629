"""Trainer ``best-of-n``: rejection sampling. Roll out the recipe's policy n times per task in the
recipe's first scaffold, keep the best episode of each task that reaches a bar (a valid
submission, the median, or a medal), and write the kept transcripts as supervised fine-tuning
data (``sft.jsonl``, one chat per line). Its "checkpoint" is that data set."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sandmle.core import ComponentConfig, Grade, Task, Trainer, TrainResult, get_registry, hookimpl

BARS = {"valid": ("invalid",), "median": ("invalid", "valid"), "medal": ("invalid", "valid", "median")}


class BestOfNConfig(ComponentConfig):
    """How many episodes per task, which ones are kept, where the data goes."""

    n: int = Field(4, ge=1, description="episodes per task (seeds 0..n-1)")
    keep: Literal["valid", "median", "medal"] = Field("median", description="the bar an episode must reach")
    out_dir: Path | None = Field(None, description="default: <recipe output_dir>/best-of-n")


class BestOfN(Trainer):
    def __init__(self, config: BestOfNConfig):
        self.config = config

    def train(self, recipe: Any, tasks: list[Task]) -> TrainResult:
        return asyncio.run(self._train(recipe, tasks))

    async def _train(self, recipe: Any, tasks: list[Task]) -> TrainResult:
        registry = get_registry()
        sandbox = recipe.sandbox.build(registry, "sandboxes")
        backend = recipe.backend.build(registry, "backends")
        scaffold = recipe.scaffolds[0].build(registry, "scaffolds")
        grader = recipe.grader.build(registry, "graders")
        out = Path(self.config.out_dir or Path(recipe.out) / "best-of-n")
        out.mkdir(parents=True, exist_ok=True)
        episodes, kept = 0, []
        try:
            for task in tasks:
                best: tuple[tuple[int, float], dict[str, Any]] | None = None
                for seed in range(self.config.n):
                    trajectory, grade = await self._episode(task, seed, sandbox, backend, scaffold, grader)
                    episodes += 1
                    if grade.tier in BARS[self.config.keep]:
                        continue
                    rank = (["valid", "median", "bronze", "silver", "gold"].index(grade.tier),
                            grade.human_rank or 0.0)
                    if best is None or rank > best[0]:
                        best = (rank, {"task_id": task.id, "seed": seed, "tier": grade.tier,
                                       "score": grade.score, "messages": trajectory.messages})
                if best is not None:
                    kept.append(best[1])
        finally:
            await backend.aclose()
            await sandbox.shutdown()
        (out / "sft.jsonl").write_text("".join(json.dumps(k) + "\n" for k in kept), encoding="utf-8")
        return TrainResult(checkpoint_dir=out, steps=episodes,
                           metrics={"episodes": episodes, "tasks": len(tasks), "kept": len(kept)})

    @staticmethod
    async def _episode(task: Task, seed: int, sandbox: Any, backend: Any, scaffold: Any,
                       grader: Any) -> tuple[Any, Grade]:
        session = await sandbox.open(task, stateful=bool(getattr(scaffold, "stateful", False)))
        try:
            trajectory = await scaffold.run(task, backend, session, seed=seed)
            # Grade before close() removes the folder; never follow a symlink agent code planted.
            path = session.workdir / "submission.csv"
            grade = grader.grade(task, path if path.is_file() and not path.is_symlink() else None)
        finally:
            await session.close()
        return trajectory, grade


@hookimpl
def register_trainers(register):
    register("best-of-n", BestOfN, config=BestOfNConfig,
             description="rejection sampling: the best of n episodes per task as SFT data")
