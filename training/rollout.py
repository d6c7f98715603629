"""Run a batch of training episodes concurrently and turn each into a trainable sequence.

Every episode: open a sandbox session, run the scaffold with the policy backend (the score tool
grades through the recipe's grader), grade the final submission, score the reward. A failure of
the harness (sandbox, grader, an exception anywhere) is a result with stop reason ``unknown``,
never a crash of the step. The policy's length budget is enforced while generating by
:class:`BudgetedBackend`: an episode that reaches it stops with reason ``max_length``.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sandmle.core.interfaces import Backend, Grader, Reward, Sandbox, Scaffold
from sandmle.core.records import Completion, Grade, RewardBreakdown, Sampling, Trajectory
from sandmle.core.task import Task

from .grpo_batch import EpisodeTokens
from .sequences import MissingTokenIdsError, TokenSequence, trajectory_segments, trajectory_sequence

#: Stop reasons of the harness rather than the policy (masked with ``compact_filtering``).
HARNESS_STOP_REASONS: tuple[str, ...] = ("unknown", "error", "backend_error")
BUDGET_STOP_REASON = "max_length"


class EpisodeBudgetExceeded(RuntimeError):
    """The episode used up its prompt or completion token budget."""


class BudgetedBackend(Backend):
    """One episode's view of a token-level backend: forces the trainer's sampling settings and
    stops the episode at the length budget (TRL does not truncate ``rollout_func`` output).

    ``inner`` must offer ``prompt_ids(messages)``, ``generate(prompt_ids, sampling)`` and
    ``remember(messages, prompt_ids, completion)`` (the ``transformers`` backend does).
    """

    def __init__(self, inner: Any, *, max_prompt_tokens: int, max_episode_tokens: int, max_new_tokens: int,
                 temperature: float, top_p: float, seed: int):
        self.inner, self.name = inner, getattr(inner, "name", "transformers")
        self.max_prompt_tokens, self.max_episode_tokens = max_prompt_tokens, max_episode_tokens
        self.max_new_tokens, self.temperature, self.top_p, self.seed = max_new_tokens, temperature, top_p, seed
        self.first_prompt: int | None = None
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        prompt_ids = self.inner.prompt_ids(messages)
        if self.first_prompt is None:
            if len(prompt_ids) > self.max_prompt_tokens:
                raise EpisodeBudgetExceeded(f"prompt of {len(prompt_ids)} tokens > max_prompt_tokens "
                                            f"{self.max_prompt_tokens}")
            self.first_prompt = len(prompt_ids)
        left = self.max_episode_tokens - (len(prompt_ids) - self.first_prompt)
        if left <= 0:
            raise EpisodeBudgetExceeded(f"episode reached max_episode_tokens {self.max_episode_tokens}")
        wanted = (sampling or Sampling()).max_tokens
        self.calls += 1
        sampling = Sampling(temperature=self.temperature, top_p=self.top_p, seed=self.seed * 1000 + self.calls,
                            max_tokens=min(wanted, left, self.max_new_tokens))
        completion = await self.inner.generate(prompt_ids, sampling)
        self.inner.remember(messages, prompt_ids, completion)
        return completion


@dataclass
class EpisodeOutcome:
    """One finished training episode."""

    task: Task
    seed: int
    trajectory: Trajectory | None
    grade: Grade
    reward: RewardBreakdown | None
    error: str | None = None
    wall_s: float = 0.0
    grade_s: float = 0.0

    @property
    def stop_reason(self) -> str:
        if self.trajectory is None:
            return "unknown"
        error = str(self.trajectory.extra.get("backend_error", ""))
        if self.trajectory.stop_reason == "backend_error" and error.startswith(EpisodeBudgetExceeded.__name__):
            return BUDGET_STOP_REASON
        return self.trajectory.stop_reason

    @property
    def reward_total(self) -> float:
        return self.reward.total if self.reward is not None else 0.0

    def sequence(self) -> TokenSequence:
        """The trainable sequence (empty when the episode produced no sampled turn)."""
        if self.trajectory is None:
            return TokenSequence(prompt_ids=[])
        try:
            return trajectory_sequence(self.trajectory)
        except MissingTokenIdsError:
            return TokenSequence(prompt_ids=[])

    def segments(self) -> list[TokenSequence]:
        """Every trainable segment of the episode, in order (none when it has no sampled turn or a
        turn lacks token ids)."""
        if self.trajectory is None:
            return []
        try:
            return trajectory_segments(self.trajectory)
        except MissingTokenIdsError:
            return []

    def tokens(self) -> EpisodeTokens:
        """The episode as :func:`~sandmle.training.grpo_batch.build_grpo_batch` takes it."""
        turns = self.trajectory.turns if self.trajectory is not None else []
        sampled = sum(len(t.token_ids or []) for t in turns)
        return EpisodeTokens(self.segments(), self.reward_total, self.stop_reason, sampled)

    def record(self) -> dict[str, Any]:
        """JSON-ready record (the same shape as evaluation trajectory files)."""
        return {"episode": {"task_id": self.task.id, "seed": self.seed, "stop_reason": self.stop_reason},
                "trajectory": self.trajectory.model_dump(mode="json") if self.trajectory else None,
                "grade": self.grade.model_dump(mode="json"),
                "reward": self.reward.model_dump(mode="json") if self.reward else None,
                "error": self.error, "wall_s": self.wall_s, "grade_s": self.grade_s}


async def run_episode(task: Task, seed: int, *, scaffold: Scaffold, backend: Backend, sandbox: Sandbox,
                      grader: Grader, reward: Reward) -> EpisodeOutcome:
    """One episode end to end; never raises."""
    from sandmle.sandboxes.files import safe_submission

    t0 = time.perf_counter()
    try:
        session = await sandbox.open(task, stateful=bool(getattr(scaffold, "stateful", False)))
        try:
            def score(path: Path) -> Grade:
                return grader.grade(task, safe_submission(Path(path).parent, Path(path).name))

            traj = await scaffold.run(task, backend, session, seed=seed, score=score)
            t1 = time.perf_counter()
            grade = await asyncio.to_thread(grader.grade, task, safe_submission(session.workdir))
        finally:
            await session.close()
        breakdown = reward.score(traj, grade)
        return EpisodeOutcome(task, seed, traj, grade, breakdown, wall_s=time.perf_counter() - t0,
                              grade_s=time.perf_counter() - t1)
    except Exception as exc:  # noqa: BLE001 - a harness failure is an outcome, not a crash
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
        return EpisodeOutcome(task, seed, None, Grade(task_id=task.id, reason="episode failed"), None,
                              error=detail, wall_s=time.perf_counter() - t0)


async def run_episodes(jobs: list[tuple[Task, int]], *, scaffold: Scaffold, backends: list[Backend],
                       sandbox: Sandbox, grader: Grader, reward: Reward, concurrency: int,
                       on_done: Callable[[EpisodeOutcome], None] | None = None) -> list[EpisodeOutcome]:
    """Run ``jobs`` (task, seed) with ``backends[i]`` for job ``i``, at most ``concurrency`` at once;
    outcomes come back in job order (``on_done`` sees each as it finishes)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int) -> EpisodeOutcome:
        async with gate:
            task, seed = jobs[i]
            outcome = await run_episode(task, seed, scaffold=scaffold, backend=backends[i], sandbox=sandbox,
                                        grader=grader, reward=reward)
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(i) for i in range(len(jobs)))))
