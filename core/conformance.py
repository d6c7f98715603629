"""Conformance checks for the kinds that need nothing but the core: rewards, backends, task
sources, generators and trainers. (Sandbox, scaffold, grader and executor checks live next to
the built-in components of their kind.) Run them with
``run_checks(kind, component, **context)`` or the ``sandmle_conformance`` pytest fixture.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from pathlib import Path
from typing import Any

from .interfaces import Backend, Generator, Reward, TaskSource, Trainer, TrainResult
from .records import Completion, ExecResult, Grade, RewardBreakdown, Sampling, ToolCall, Trajectory, Turn
from .task import Task, load_task, validate_task
from .testing import CheckSkipped, check


# ----------------------------------------------------------------------------- rewards
def _graded_episodes() -> list[tuple[str, Trajectory, Grade]]:
    """Episodes from nothing at all to a gold medal, as a reward meets them in training."""
    def traj(*turns: Turn) -> Trajectory:
        return Trajectory(task_id="t", scaffold="s", backend="b", turns=list(turns), stop_reason="answer")

    ran = Turn(messages_in=2, text="<think>fit</think>", executions=[ExecResult(exit_code=0)])
    crashed = Turn(messages_in=2, text="x", executions=[ExecResult(exit_code=1, stderr_tail="Traceback")])
    garbled = Turn(messages_in=2, text="???", format_ok=False, format_error="no tool call")
    thresholds = dict(gold_threshold=0.9, silver_threshold=0.8, bronze_threshold=0.7, median_threshold=0.5,
                      is_lower_better=False)
    valid = dict(task_id="t", valid_submission=True, submission_exists=True, **thresholds)
    return [
        ("no turns, no submission", traj(), Grade(task_id="t", reason="submission file not found")),
        ("format failure", traj(garbled), Grade(task_id="t", reason="submission file not found")),
        ("crashed code, invalid file", traj(ran, crashed), Grade(task_id="t", submission_exists=True,
                                                                  reason="wrong columns")),
        ("valid, below median", traj(ran), Grade(score=0.3, **valid)),
        ("above median", traj(ran), Grade(score=0.6, above_median=True, at_or_above_median=True, **valid)),
        ("gold medal", traj(ran), Grade(score=0.95, above_median=True, at_or_above_median=True,
                                        gold_medal=True, any_medal=True, human_rank=1.0, **valid)),
    ]


@check("rewards")
def same_keys_for_every_episode(reward: Reward) -> None:
    """Every episode, from an empty one to a gold medal, gets a RewardBreakdown whose parts have
    exactly the keys of ``reward.keys``, with finite numbers."""
    keys = list(reward.keys)
    assert keys and len(set(keys)) == len(keys), f"reward.keys must be distinct names, got {keys}"
    for label, traj, grade in _graded_episodes():
        out = reward.score(traj, grade)
        assert isinstance(out, RewardBreakdown), f"{label}: score() returned {type(out).__name__}"
        assert list(out.parts) == keys, f"{label}: parts {list(out.parts)} != keys {keys}"
        values = [out.total, *out.parts.values()]
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values), f"{label}: {out}"


@check("rewards")
def deterministic_and_leaves_its_inputs_alone(reward: Reward) -> None:
    """Scoring the same episode twice gives the same breakdown and changes neither record."""
    for label, traj, grade in _graded_episodes():
        before = (traj.model_dump(), grade.model_dump())
        first, second = reward.score(traj, grade), reward.score(traj, grade)
        assert first == second, f"{label}: {first} then {second}"
        assert (traj.model_dump(), grade.model_dump()) == before, f"{label}: score() changed its inputs"


@check("rewards")
def a_gold_medal_never_earns_less_than_no_submission(reward: Reward) -> None:
    """With the same turns, a gold-medal grade earns at least as much as an invalid submission."""
    episodes = {label: (traj, grade) for label, traj, grade in _graded_episodes()}
    traj, gold = episodes["gold medal"]
    invalid = Grade(task_id="t", reason="submission file not found")
    assert reward.score(traj, gold).total >= reward.score(traj, invalid).total


# ----------------------------------------------------------------------------- backends
HELLO = [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Reply with the word: ready"}]
ECHO_TOOL = {"type": "function", "function": {
    "name": "echo", "description": "Echo a text back.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}


def _check_completion(out: Any, what: str) -> Completion:
    assert isinstance(out, Completion), f"{what}: complete() returned {type(out).__name__}, not a Completion"
    assert isinstance(out.text, str), f"{what}: text is {type(out.text).__name__}"
    assert all(isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in out.tool_calls), what
    u = out.usage
    assert min(u.prompt_tokens, u.completion_tokens, u.llm_calls) >= 0 and u.cost_usd >= 0, f"{what}: {u}"
    if out.token_ids is not None and out.logprobs is not None:
        assert len(out.token_ids) == len(out.logprobs), f"{what}: one logprob per token id"
    return out


@check("backends")
async def completes_a_chat(backend: Backend, messages: list[dict[str, Any]] | None = None) -> None:
    """``complete(messages, sampling=...)`` returns a Completion (text, tool calls, usage, and as many
    logprobs as token ids when it reports both); ``name`` is set."""
    assert isinstance(getattr(backend, "name", None), str) and backend.name, "backend.name must be a string"
    _check_completion(await backend.complete(messages or HELLO, sampling=Sampling(max_tokens=32, seed=0)), "chat")


@check("backends")
async def accepts_tools_and_closes(backend: Backend, messages: list[dict[str, Any]] | None = None) -> None:
    """A request offering a tool (OpenAI function schema) is answered; ``aclose()`` may be called twice."""
    _check_completion(await backend.complete(messages or HELLO, tools=[ECHO_TOOL],
                                             sampling=Sampling(max_tokens=32, seed=0)), "with tools")
    await backend.aclose()
    await backend.aclose()


# ----------------------------------------------------------------------------- task sources
def _check_task(task: Any) -> Task:
    assert isinstance(task, Task), f"tasks() holds a {type(task).__name__}, not a Task"
    validate_task(task)
    public = {p.resolve() for p in task.public_files()}
    for hidden in (task.answers_path, task.evaluator_path, *task.hidden_files):
        assert hidden is None or Path(hidden).resolve() not in public, f"{task.id}: {hidden} is visible to agents"
    return task


@check("task_sources")
def tasks_are_valid_and_hide_their_answers(source: TaskSource) -> None:
    """``tasks()`` returns valid Tasks with distinct ids; answers and evaluators are never public files."""
    tasks = source.tasks()
    assert isinstance(tasks, list) and tasks, "tasks() must return a non-empty list"
    ids = [_check_task(t).id for t in tasks]
    assert len(set(ids)) == len(ids), f"task ids repeat: {ids}"


@check("task_sources")
def same_tasks_every_time(source: TaskSource) -> None:
    """Two calls return the same task ids in the same order (studies resume by task id)."""
    assert [t.id for t in source.tasks()] == [t.id for t in source.tasks()]


# ----------------------------------------------------------------------------- generators
def _accepted_dirs(outcomes: list[Any]) -> list[Path]:
    dirs = []
    for o in outcomes:
        if isinstance(o, Task):
            dirs.append(o.root)
            continue
        assert isinstance(getattr(o, "accepted", None), bool), (
            f"generate() yielded {type(o).__name__}: yield a Task, or an outcome with .accepted")
        if o.accepted:
            assert getattr(o, "path", None), f"accepted outcome without .path: {o}"
            dirs.append(Path(o.path))
        else:
            assert getattr(o, "reason", None), f"a rejection must carry its .reason: {o}"
    return dirs


@check("generators")
def generates_valid_tasks_and_resumes(generator: Generator, seeds: list[str] | None = None,
                                      sandbox: Any = None) -> None:
    """``generate(out, n=1)`` yields outcomes; accepted tasks load from disk with their answers
    hidden; a second call on the same folder keeps them instead of making more."""
    with tempfile.TemporaryDirectory(prefix="sandmle-gen-check-") as tmp:
        out = Path(tmp) / "tasks"
        first = list(generator.generate(out, 1, seed=0, seeds=seeds, sandbox=sandbox))
        assert first, "generate() yielded nothing"
        dirs = _accepted_dirs(first)
        assert len(dirs) == 1, f"asked for 1 task, {len(dirs)} accepted"
        for d in dirs:
            _check_task(load_task(d))
        on_disk = sorted(p.parent.name for p in out.rglob("task.yaml"))
        list(generator.generate(out, 1, seed=0, seeds=seeds, sandbox=sandbox))
        again = sorted(p.parent.name for p in out.rglob("task.yaml"))
        assert again == on_disk, f"resuming changed the task set: {on_disk} -> {again}"


# ----------------------------------------------------------------------------- trainers
@check("trainers")
def implements_train(trainer: Trainer) -> None:
    """The component is a Trainer whose ``train(recipe, tasks)`` takes those two arguments."""
    assert isinstance(trainer, Trainer), f"{type(trainer).__name__} does not subclass sandmle.core.Trainer"
    params = list(inspect.signature(trainer.train).parameters)
    assert params[:2] == ["recipe", "tasks"], f"train() parameters are {params}, expected (recipe, tasks)"


@check("trainers")
def trains_and_reports(trainer: Trainer, recipe: Any = None, tasks: list[Task] | None = None) -> None:
    """With ``recipe=`` and ``tasks=`` in the context: ``train`` returns a TrainResult whose
    checkpoint folder, when named, exists."""
    if recipe is None or not tasks:
        raise CheckSkipped("give recipe= and tasks= to run a (small) training")
    result = trainer.train(recipe, tasks)
    assert isinstance(result, TrainResult), f"train() returned {type(result).__name__}"
    assert result.steps >= 0
    assert result.checkpoint_dir is None or Path(result.checkpoint_dir).exists(), "checkpoint_dir does not exist"
