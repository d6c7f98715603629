"""``SandmleAgentLoop``: any registered sandmle scaffold as a veRL 0.9.1 agent loop.

veRL's ``AgentLoopWorker`` (a Ray actor) instantiates this class once per trajectory from the
agent-loop YAML (:func:`sandmle.plugins.verl.export.write_agent_loop_yaml`) and awaits
:meth:`SandmleAgentLoop.run`. One run is one episode:

1. the task named by the parquet row's ``extra_info.task`` is loaded;
2. a sandbox session is opened (the worker process keeps one sandbox, with its warm pool, for all
   its episodes), the scaffold runs with :class:`ContinuousTokenBackend` as its policy, so model
   turns go through ``server_manager.generate`` token-in/token-out, then the grader grades the
   submission and the reward turns trajectory + grade into a milestone breakdown;
3. the token stream becomes :class:`AgentLoopOutput` (one per segment, see the backend): sampled
   tokens mask 1, everything else 0, ``reward_score`` = the milestone total (veRL puts it on the
   last response token), the breakdown in ``extra_fields["reward_extra_info"]`` with the same keys
   for every episode.

The episode itself is the shared :func:`sandmle.training.rollout.run_episode` (the ``grpo``
trainer's), with this loop's timeouts around the sandbox and the grader (``verl_timeouts``) and
around the whole episode. Nothing an episode does raises out of ``run``: in veRL's v1 trainer one
exception fails the whole GRPO group. A task that does not load, a sandbox that does not open, a
grader that hangs, a rollout server that refuses: each is a harness failure (stop reason ``error``,
``backend_error`` or ``unknown``). Under veRL's v1 trainer (``trainer.use_v1``, the default) such an
episode is dropped from its GRPO group: ``run`` returns no output and the group's advantages are
computed over the episodes that ran (rLLM, which SandMLE trains with, drops them too). The legacy
trainer needs exactly one output per row, so there it stays in its group with an all-zero mask and
reward 0. An episode past its hard timeout (``timeout``) stays in its group, masked when the
recipe's ``train.compact_filtering`` says so (SandMLE: ``timeout`` and ``unknown``). An episode cut
by the length budget stops as ``max_length``. If every episode of a v1 batch fails, veRL's replay
buffer stops the run with "no materializable trajectories" (replay_buffer.py:505-510).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from sandmle.core.records import Grade, RewardBreakdown, Trajectory
from sandmle.training import SANDMLE_MASKED_STOP_REASONS, compact_filter
from sandmle.training.rollout import HARNESS_STOP_REASONS
from sandmle.training.rollout import run_episode as run_shared_episode

from .config import LoopSettings, check_verl_version
from .export import task_from_extra_info
from .timeouts import TimedGrader, TimedSandbox
from .token_backend import Budget, ContinuousTokenBackend

check_verl_version()

#: The stop reason of an episode the harness failed (not the agent): always masked.
FAILED = "error"
#: The parameters of veRL's ``AgentLoopBase.__init__``; every other YAML key is ours.
_BASE_KWARGS = {"trainer_config", "server_manager", "tokenizer", "processor", "dataset_cls", "data_config",
                "hf_model_type"}


@dataclass
class EpisodeOutcome:
    """What one episode produced (trajectory and grade are ``None`` when the harness failed)."""

    stop_reason: str
    reward: RewardBreakdown
    trajectory: Trajectory | None = None
    grade: Grade | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _WorkerComponents:
    """Built once per worker process and event loop: registry, sandbox (warm pool), grader, reward."""

    registry: Any
    sandbox: Any
    grader: Any
    reward: Any


_COMPONENTS: dict[tuple[str, int], _WorkerComponents] = {}
_COMPONENTS_LOCK: dict[int, asyncio.Lock] = {}


def _plain(value: Any) -> Any:
    """hydra hands nested YAML values over as DictConfig/ListConfig; our models want plain data."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class SandmleAgentLoop(AgentLoopBase):
    """Runs one episode of a sandmle scaffold per veRL trajectory (see the module docstring)."""

    def __init__(self, *args: Any, tools: Any = None, name: str | None = None, **kwargs: Any):
        ours = {k: _plain(kwargs.pop(k)) for k in list(kwargs) if k not in _BASE_KWARGS}
        super().__init__(*args, **kwargs)
        self.settings = LoopSettings.model_validate(ours)  # a typo in the YAML fails loudly here
        rollout = self.rollout_config
        self.budget = Budget(prompt_length=int(rollout.prompt_length), response_length=int(rollout.response_length),
                             max_model_len=int(rollout.get("max_model_len") or
                                               rollout.prompt_length + rollout.response_length),
                             max_tokens_per_turn=self.settings.max_tokens_per_turn)
        self.segments_allowed = bool(self.config.trainer.get("use_v1", True))
        self.tool_format = str(rollout.multi_turn.get("format") or "hermes")
        masked = self.settings.mask_stop_reasons
        # Harness failures are always masked: their reward says nothing about the policy.
        self.masked_reasons = [*(SANDMLE_MASKED_STOP_REASONS if masked is None else masked),
                               *HARNESS_STOP_REASONS, FAILED]

    # ------------------------------------------------------------------ veRL entry point
    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput | list[AgentLoopOutput]:
        backend = ContinuousTokenBackend(self, sampling_params, self.budget, allow_segments=self.segments_allowed,
                                         tool_format=self.tool_format)
        # v1 numbers the n rollouts of a task (session_id); the legacy trainer does not, and the
        # scaffold's own randomness (AIDE's debug/improve draw) should still differ between them.
        session = kwargs.get("session_id")
        seed = int(session) if session is not None else random.randrange(2**31)
        outcome = await self.run_episode(kwargs.get("extra_info") or {}, backend, seed=seed)
        self._record(outcome, backend, kwargs)
        if self.segments_allowed and self.harness_failed(outcome):
            # Dropped from its GRPO group: its reward says nothing about the policy, and a 0 among
            # [0.3, 0.3, 0.3] would give the others +0.5. veRL v1 allows it: an empty list puts
            # nothing into TransferQueue (trainer/ppo/v1/agent_loop_tq.py:155-158) and GRPO is
            # computed over the sessions present (trainer/ppo/v1/utils.py:163-164, 188-199).
            return []
        outputs = await self._outputs(backend, outcome, kwargs.get("raw_prompt"))
        # One segment: a plain output, which both veRL trainers take; several: v1's list form.
        return outputs if len(outputs) > 1 else outputs[0]

    @staticmethod
    def harness_failed(outcome: EpisodeOutcome) -> bool:
        """The harness failed the episode (stop reason error, backend_error or unknown), not the agent."""
        return outcome.stop_reason in (*HARNESS_STOP_REASONS, FAILED)

    # ------------------------------------------------------------------ the episode
    async def run_episode(self, extra_info: dict[str, Any], backend: ContinuousTokenBackend, *, seed: int = 0,
                          ) -> EpisodeOutcome:
        """Task -> the shared episode runner (sandbox, scaffold, grade, reward) under this loop's
        timeouts; failures become masked outcomes, never exceptions."""
        t0 = time.monotonic()
        parts: _WorkerComponents | None = None
        try:
            parts = await self._components()
            task = task_from_extra_info(extra_info)
            scaffold = self._spec("scaffold").build(parts.registry, "scaffolds")
            timeout = self.settings.episode_timeout_s or _scaffold_wall_s(scaffold) + 300.0
            shared = await asyncio.wait_for(run_shared_episode(
                task, seed, scaffold=scaffold, backend=backend, reward=parts.reward,
                sandbox=TimedSandbox(parts.sandbox, self.settings.sandbox_open_timeout_s),
                grader=TimedGrader(parts.grader, self.settings.grade_timeout_s)), timeout)
        except asyncio.TimeoutError:
            return self._failed(parts, "timeout", "episode exceeded its hard timeout", t0)
        except Exception as exc:  # noqa: BLE001 - one broken episode must not fail its GRPO group
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
            return self._failed(parts, FAILED, f"{type(exc).__name__}: {exc}\n{detail}", t0)
        stop = shared.stop_reason
        if backend.history_rewritten:
            stop = "history_rewritten"
        elif shared.grade.reason == TimedGrader.TIMED_OUT:
            stop = FAILED
        reward = shared.reward or RewardBreakdown(total=0.0, parts={k: 0.0 for k in parts.reward.keys})
        return EpisodeOutcome(stop_reason=stop, reward=reward, trajectory=shared.trajectory, grade=shared.grade,
                              error=shared.error or backend.server_error,
                              timings={"episode_s": time.monotonic() - t0})

    def _failed(self, parts: _WorkerComponents | None, reason: str, error: str, t0: float) -> EpisodeOutcome:
        keys = parts.reward.keys if parts is not None else []
        return EpisodeOutcome(stop_reason=reason, reward=RewardBreakdown(total=0.0, parts={k: 0.0 for k in keys}),
                              error=error, timings={"episode_s": time.monotonic() - t0})

    def _spec(self, kind: str) -> Any:
        from sandmle.core.recipe import ComponentSpec

        return ComponentSpec.model_validate(getattr(self.settings, kind))

    async def _components(self) -> _WorkerComponents:
        loop_id = id(asyncio.get_running_loop())
        key = (self.settings.model_dump_json(include={"sandbox", "grader", "reward", "plugins"}), loop_id)
        lock = _COMPONENTS_LOCK.setdefault(loop_id, asyncio.Lock())
        async with lock:
            if key not in _COMPONENTS:
                from sandmle.core.plugins import get_manager

                manager = get_manager()
                manager.fill_registry()
                for spec in self.settings.plugins:
                    if manager.pm.get_plugin(spec) is None:  # a .py file would register twice
                        manager.load_module(spec)
                registry = manager.registry
                _COMPONENTS[key] = _WorkerComponents(
                    registry=registry, sandbox=self._spec("sandbox").build(registry, "sandboxes"),
                    grader=self._spec("grader").build(registry, "graders"),
                    reward=self._spec("reward").build(registry, "rewards"))
            return _COMPONENTS[key]

    # ------------------------------------------------------------------ veRL outputs
    async def _outputs(self, backend: ContinuousTokenBackend, outcome: EpisodeOutcome,
                       raw_prompt: Any) -> list[AgentLoopOutput]:
        masked = not compact_filter([outcome.stop_reason], self.masked_reasons)[0]
        extra = self._extra_fields(backend, outcome, masked)
        metrics = AgentLoopMetrics(generate_sequences=backend.generate_s,
                                   tool_calls=max(outcome.timings.get("episode_s", 0.0) - backend.generate_s, 0.0),
                                   num_preempted=backend.num_preempted)
        n_turns = 1 + 2 * len(outcome.trajectory.turns) if outcome.trajectory else 1
        limit = self.budget.response_length
        outputs = []
        for seg in backend.segments:
            response = seg.response_ids[:limit]
            mask = [0] * len(response) if masked else seg.mask[:limit]
            logprobs = seg.logprobs[:limit] if seg.logprobs is not None else None
            if not response:  # veRL places the reward on the last response token: there must be one
                response, mask, logprobs = [self._eos_id()], [0], [0.0] if backend.want_logprobs else None
            outputs.append(AgentLoopOutput(
                prompt_ids=seg.prompt_ids, response_ids=response, response_mask=mask, response_logprobs=logprobs,
                reward_score=outcome.reward.total, num_turns=n_turns, metrics=metrics, extra_fields=dict(extra)))
        if not outputs:  # the episode ended before its first model call
            prompt = await self.ct_build_initial_tokens(list(raw_prompt or [{"role": "user", "content": ""}]))
            outputs.append(AgentLoopOutput(
                prompt_ids=prompt, response_ids=[self._eos_id()], response_mask=[0],
                response_logprobs=[0.0] if backend.want_logprobs else None, reward_score=outcome.reward.total,
                num_turns=1, metrics=metrics, extra_fields=dict(extra)))
        return outputs

    def _extra_fields(self, backend: ContinuousTokenBackend, outcome: EpisodeOutcome, masked: bool) -> dict[str, Any]:
        info = {"reward_total": float(outcome.reward.total)}
        info.update({f"reward_{k}": float(v) for k, v in outcome.reward.parts.items()})
        grade = outcome.grade
        failed = outcome.stop_reason in (*HARNESS_STOP_REASONS, FAILED) or outcome.error is not None
        info.update({"masked": float(masked), "failed": float(failed),
                     "valid_submission": float(bool(grade and grade.valid_submission)),
                     "budget_stop": float(backend.budget_stop is not None),
                     "segments": float(len(backend.segments)), "assistant_edits": float(backend.assistant_edits)})
        return {"reward_extra_info": info, "stop_reason": outcome.stop_reason, "budget_stop": backend.budget_stop,
                "task_id": outcome.trajectory.task_id if outcome.trajectory else None, **backend.server_extra}

    def _eos_id(self) -> int:
        tok = self.tokenizer
        return int(tok.eos_token_id if tok.eos_token_id is not None else (tok.pad_token_id or 0))

    # ------------------------------------------------------------------ record
    def _record(self, outcome: EpisodeOutcome, backend: ContinuousTokenBackend, kwargs: dict[str, Any]) -> None:
        """Append the episode to this worker's JSONL (machine-readable next to veRL's console log)."""
        if not self.settings.trajectory_dir:
            return
        out = Path(self.settings.trajectory_dir)
        out.mkdir(parents=True, exist_ok=True)
        row = {"uid": str(kwargs.get("uid", "")), "session_id": kwargs.get("session_id"),
               "global_steps": kwargs.get("global_steps"), "stop_reason": outcome.stop_reason,
               "reward": outcome.reward.model_dump(), "error": outcome.error,
               "grade": outcome.grade.model_dump(mode="json") if outcome.grade else None,
               "trajectory": outcome.trajectory.model_dump(mode="json") if outcome.trajectory else None,
               "segments": [{"prompt_tokens": len(s.prompt_ids), "response_tokens": len(s.mask),
                             "sampled_tokens": sum(s.mask)} for s in backend.segments]}
        path = out / f"episodes-{socket.gethostname()}-{os.getpid()}.jsonl"
        with path.open("a", encoding="utf-8") as fh:  # one writer per process: no interleaving
            fh.write(json.dumps(row, default=str) + "\n")


def _scaffold_wall_s(scaffold: Any) -> float:
    limits = getattr(getattr(scaffold, "config", None), "limits", None)
    return float(getattr(limits, "max_wall_s", 1200.0))
