"""Runs one evaluation episode end to end and turns it into a results row.

open sandbox session -> build backend + scaffold -> run -> grade (``score`` callback too) ->
reward -> trajectory JSONL under ``OUT/trajectories/`` (the final ``submission.csv``, and AIDE's
best solution, kept in a folder of the same name) -> row. Any exception becomes a recorded failed
row; nothing an episode does can crash the study.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from sandmle.core.interfaces import Backend, Grader, Reward, Sandbox
from sandmle.core.recipe import Recipe, parse_recipe, resolve
from sandmle.core.records import Grade, Trajectory
from sandmle.core.registry import Registry
from sandmle.core.task import Task

from .graded_episode import KeepPolicy, run_graded_episode
from .store import Episode

TRAJECTORY_DIR = "trajectories"
GRADE_FIELDS = tuple(Grade.model_fields)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def trajectory_relpath(ep: Episode) -> str:
    """Where an episode's trajectory goes, relative to the study's output directory."""
    name = f"{_safe_name(ep.task_id)}.{_safe_name(ep.scaffold)}.s{ep.seed}.{ep.key}.jsonl"
    return f"{TRAJECTORY_DIR}/{_safe_name(ep.task_set)}/{name}"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def base_row(ep: Episode) -> dict[str, Any]:
    return {"key": ep.key, **ep.to_dict(), "host": socket.gethostname(), "pid": os.getpid()}


def failed_row(ep: Episode, error: str, wall_s: float = 0.0) -> dict[str, Any]:
    """A row for an episode that could not complete (counted as an invalid submission)."""
    grade = Grade(task_id=ep.task_id, reason="episode failed")
    return {**base_row(ep), "status": "failed", "error": error[-4000:], "trajectory": None,
            **{f"grade_{k}": v for k, v in grade.model_dump(mode="json").items()},
            "reward_total": None, "reward_parts": {}, "steps": 0, "llm_calls": 0,
            "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "wall_s": wall_s,
            "stop_reason": "error", "format_rate": None, "finished_at": time.time()}


def success_row(ep: Episode, traj: Trajectory, grade: Grade, reward: Any, rel: str,
                wall_s: float) -> dict[str, Any]:
    return {**base_row(ep), "status": "ok", "error": None, "trajectory": rel,
            **{f"grade_{k}": v for k, v in grade.model_dump(mode="json").items()},
            "reward_total": reward.total, "reward_parts": dict(reward.parts),
            "steps": len(traj.turns), "llm_calls": traj.usage.llm_calls,
            "prompt_tokens": traj.usage.prompt_tokens,
            "completion_tokens": traj.usage.completion_tokens, "cost_usd": traj.usage.cost_usd,
            "wall_s": wall_s, "stop_reason": traj.stop_reason, "format_rate": traj.format_rate,
            "kept_files": _kept_relpaths(traj, rel), "finished_at": time.time()}


def _kept_relpaths(traj: Trajectory, rel: str) -> dict[str, str]:
    """Kept files as paths relative to the study's output directory (skipped ones as reasons)."""
    folder = rel.rsplit("/", 1)[0]
    return {name: where if where.startswith("skipped") else f"{folder}/{where}"
            for name, where in (traj.extra.get("kept_files") or {}).items()}


class EpisodeRunner:
    """Callable ``await runner((episode, task)) -> row``; shares one sandbox across episodes.

    Built from a resolved recipe in this process, or (for remote workers) from the recipe's
    JSON via :meth:`from_recipe_data`, which loads plugins and resolves the recipe there.
    """

    def __init__(self, recipe: Recipe, registry: Registry, out_dir: Path):
        self.recipe = recipe
        self.registry = registry
        self.out_dir = Path(out_dir)
        self._sandbox: Sandbox | None = None
        self._grader: Grader | None = None
        self._reward: Reward | None = None
        self._backends: dict[int, Backend] = {}
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_recipe_data(cls, data: dict[str, Any], out_dir: str) -> "EpisodeRunner":
        from sandmle.core.plugins import get_manager

        manager = get_manager()
        manager.fill_registry()
        recipe = parse_recipe(data)
        for spec in recipe.plugins:
            manager.load_module(spec)
        resolve(recipe, manager.registry)
        return cls(recipe, manager.registry, Path(out_dir))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Remote workers (Ray actors) rebuild the runner from the recipe, not from live objects.
        return (EpisodeRunner.from_recipe_data,
                (self.recipe.model_dump(mode="json"), str(self.out_dir)))

    async def _setup(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._sandbox is None:
                self._grader = self.recipe.grader.build(self.registry, "graders")
                self._reward = self.recipe.reward.build(self.registry, "rewards")
                self._sandbox = self.recipe.sandbox.build(self.registry, "sandboxes")

    def _backend(self, index: int) -> Backend:
        if index not in self._backends:
            spec = self.recipe.policies()[index]
            self._backends[index] = spec.build(self.registry, "backends")
        return self._backends[index]

    def generation_stats(self) -> dict[str, dict[str, float]]:
        """What each policy's backend generated in this process, by backend name (the local token
        backends count it: ``transformers``, ``ctranslate2``, ``vllm``); empty where the episodes
        ran in other processes or on backends that do not count."""
        found: dict[str, dict[str, float]] = {}
        for index, backend in self._backends.items():
            stats = getattr(backend, "stats", None)
            if callable(getattr(stats, "as_dict", None)):
                found[str(getattr(backend, "name", index))] = stats.as_dict()
        return found

    async def __call__(self, job: tuple[Episode, Task]) -> dict[str, Any]:
        ep, task = job
        start = time.monotonic()
        try:
            return await self._run(ep, task, start)
        except BaseException as exc:  # noqa: BLE001 - a failed episode is a result, not a crash
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return failed_row(ep, f"{type(exc).__name__}: {exc}\n{detail}", time.monotonic() - start)

    def _keep_policy(self) -> KeepPolicy:
        ev = self.recipe.evaluation
        if ev is None:
            return KeepPolicy()
        return KeepPolicy(enabled=ev.keep_files, max_mb=ev.keep_max_mb)

    async def _run(self, ep: Episode, task: Task, start: float) -> dict[str, Any]:
        await self._setup()
        assert self._sandbox and self._grader and self._reward
        backend = self._backend(ep.policy_index)
        scaffold = self.recipe.eval_scaffolds()[ep.scaffold_index].build(self.registry, "scaffolds")
        rel = trajectory_relpath(ep)
        keep_dir = self.out_dir / rel.removesuffix(".jsonl")  # <trajectory stem>/submission.csv
        traj, grade = await run_graded_episode(task, scaffold, backend, self._sandbox, self._grader,
                                               seed=ep.seed, keep=self._keep_policy(), keep_dir=keep_dir)
        breakdown = self._reward.score(traj, grade)
        record = {"episode": ep.to_dict(), "trajectory": traj.model_dump(mode="json"),
                  "grade": grade.model_dump(mode="json"), "reward": breakdown.model_dump(mode="json")}
        _write_atomic(self.out_dir / rel, json.dumps(record, default=str) + "\n")
        return success_row(ep, traj, grade, breakdown, rel, time.monotonic() - start)
