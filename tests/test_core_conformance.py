"""Conformance checks exist for every component kind, pass for the built-ins and catch broken
components of each kind (scaffolds: test_scaffolds_conformance.py; sandboxes:
test_sandbox_battery.py; executors: test_eval_study.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sandmle.core import (
    Backend, Completion, Generator, Reward, RewardBreakdown, Task, TaskSource, Trainer, TrainResult,
)
from sandmle.core.plugins import get_registry
from sandmle.core.registry import KINDS
from sandmle.core.testing import checks_for, run_checks


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_checks_with_a_docstring(kind):
    checks = checks_for(kind)
    assert checks, f"no conformance check for {kind}"
    assert all((fn.__doc__ or "").strip() for fn in checks)


def _by_name(results):
    return {r.name: r for r in results}


# ----------------------------------------------------------------------------- rewards
def test_milestone_reward_passes(sandmle_conformance):
    for preset in ("sandmle-code", "sandmle-paper", "sparse"):
        results = sandmle_conformance("rewards", get_registry().create("rewards", "milestone", {"preset": preset}))
        assert len(results) == 3 and all(r.passed for r in results)


class ShiftyKeys(Reward):
    """Adds a key only when the submission is valid, and NaN for the rest."""

    keys = ["valid"]

    def score(self, trajectory, grade):
        parts = {"valid": 1.0} if grade.valid_submission else {"valid": math.nan}
        if grade.gold_medal:
            parts["gold"] = 1.0
        return RewardBreakdown(total=sum(parts.values()), parts=parts)


class Mutating(Reward):
    keys = ["turns"]

    def score(self, trajectory, grade):
        trajectory.turns.clear()
        return RewardBreakdown(total=0.0, parts={"turns": 0.0})


class Inverted(Reward):
    keys = ["anti"]

    def score(self, trajectory, grade):
        value = 0.0 if grade.valid_submission else 1.0
        return RewardBreakdown(total=value, parts={"anti": value})


def test_broken_rewards_fail_the_matching_check():
    shifty = _by_name(run_checks("rewards", ShiftyKeys()))
    assert not shifty["same_keys_for_every_episode"].passed
    assert "no turns, no submission" in shifty["same_keys_for_every_episode"].detail  # NaN on the first
    assert "changed its inputs" in _by_name(run_checks("rewards", Mutating()))[
        "deterministic_and_leaves_its_inputs_alone"].detail
    assert not _by_name(run_checks("rewards", Inverted()))["a_gold_medal_never_earns_less_than_no_submission"].passed


# ----------------------------------------------------------------------------- backends
def test_baseline_backend_passes(sandmle_conformance):
    assert len(sandmle_conformance("backends", get_registry().create("backends", "baseline"))) == 2


class StringBackend(Backend):
    name = "strings"

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None):
        return "ready"


class MisalignedLogprobs(Backend):
    name = "misaligned"

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None):
        return Completion(text="ready", token_ids=[1, 2, 3], logprobs=[-0.1])


def test_broken_backends_fail():
    assert "returned str, not a Completion" in run_checks("backends", StringBackend())[0].detail
    assert "one logprob per token id" in run_checks("backends", MisalignedLogprobs())[0].detail


# ----------------------------------------------------------------------------- task sources
@pytest.fixture(scope="module")
def toy_tasks(tmp_path_factory) -> Path:
    from sandmle.graders.toy import make_toy_task

    root = tmp_path_factory.mktemp("toys")
    make_toy_task(root / "a", "binary")
    make_toy_task(root / "b", "regression")
    return root


def test_directory_and_release_sources_pass(toy_tasks, tmp_path, sandmle_conformance):
    from sandmle.graders.sources import export_release

    registry = get_registry()
    sandmle_conformance("task_sources", registry.create("task_sources", "directory", {"path": toy_tasks}))
    for task in registry.create("task_sources", "directory", {"path": toy_tasks}).tasks():
        export_release(task, tmp_path / "release")
    sandmle_conformance("task_sources", registry.create("task_sources", "sandmle-release",
                                                        {"path": tmp_path / "release"}))


class LeakySource(TaskSource):
    """Puts the answers inside public/ without declaring them hidden."""

    def __init__(self, root: Path):
        self.root = root

    def tasks(self):
        from sandmle.core.task import load_task

        task = load_task(self.root / "a")
        leaked = task.public_dir / "answers_copy.csv"
        leaked.write_bytes(task.answers_path.read_bytes())
        return [task.model_copy(update={"answers_path": leaked, "hidden_files": []})]


def test_a_source_that_shows_answers_to_agents_fails(toy_tasks, tmp_path):
    import shutil

    shutil.copytree(toy_tasks, tmp_path / "copy")
    result = _by_name(run_checks("task_sources", LeakySource(tmp_path / "copy")))
    assert "is visible to agents" in result["tasks_are_valid_and_hide_their_answers"].detail


# ----------------------------------------------------------------------------- generators
@pytest.mark.slow
def test_procedural_generator_passes(sandmle_conformance):
    gen = get_registry().create("generators", "procedural", {"workers": 1})
    sandmle_conformance("generators", gen, seeds=["breast-cancer-binary"])


class SilentRejects(Generator):
    def generate(self, out_dir, n, *, seed=0, seeds=None, sandbox=None):
        class Rejected:
            accepted, reason, path = False, "", None

        yield Rejected()


class Overproducer(Generator):
    """Writes a new task on every call: resuming multiplies the task set."""

    def __init__(self, root: Path):
        self.root, self.calls = root, 0

    def generate(self, out_dir, n, *, seed=0, seeds=None, sandbox=None):
        from sandmle.graders.toy import make_toy_task

        self.calls += 1
        yield make_toy_task(Path(out_dir) / f"t{self.calls}", "binary", task_id=f"t{self.calls}")


def test_broken_generators_fail(tmp_path):
    assert "a rejection must carry its .reason" in run_checks("generators", SilentRejects())[0].detail
    assert "resuming changed the task set: ['t1'] -> ['t1', 't2']" in run_checks(
        "generators", Overproducer(tmp_path))[0].detail


# ----------------------------------------------------------------------------- trainers
class CountingTrainer(Trainer):
    """Counts the tasks as steps and writes a checkpoint folder."""

    def __init__(self, out: Path):
        self.out = out

    def train(self, recipe, tasks):
        self.out.mkdir(parents=True, exist_ok=True)
        return TrainResult(checkpoint_dir=self.out, steps=len(tasks))


class WrongSignature(Trainer):
    def train(self, tasks):  # type: ignore[override]
        return None


def test_trainer_checks_run_with_context_and_skip_without(tmp_path, toy_tasks):
    from sandmle.core.task import load_task

    skipped = _by_name(run_checks("trainers", CountingTrainer(tmp_path / "ckpt")))
    assert skipped["implements_train"].passed
    assert skipped["trains_and_reports"].skipped and not skipped["trains_and_reports"].passed
    assert skipped["trains_and_reports"].status == "skipped"
    tasks = [load_task(toy_tasks / "a")]
    ran = run_checks("trainers", CountingTrainer(tmp_path / "ckpt"), recipe=object(), tasks=tasks)
    assert all(r.passed for r in ran)
    bad = _by_name(run_checks("trainers", WrongSignature(), recipe=object(), tasks=tasks))
    assert "expected (recipe, tasks)" in bad["implements_train"].detail
    assert not bad["trains_and_reports"].passed


def test_run_checks_only_and_unknown_names():
    results = run_checks("rewards", get_registry().create("rewards", "milestone"), only=["same_keys_for_every_episode"])
    assert [r.name for r in results] == ["same_keys_for_every_episode"]
    with pytest.raises(ValueError, match="no rewards check named"):
        run_checks("rewards", object(), only=["nope"])
    with pytest.raises(ValueError, match="unknown component kind"):
        run_checks("widgets", object())


# ----------------------------------------------------------------------------- baseline protocols
class OneBlockScaffold:
    """The docs' one-shot scaffold in miniature: one reply, its ```python block run once. A real
    scaffold on the real baseline backend and the real local sandbox."""

    name = "one-block"

    def __init__(self, protocol, run_code=True):
        self.protocol, self.run_code = protocol, run_code

    async def run(self, task, backend, session, *, seed=0, score=None):
        import re

        from sandmle.core import Sampling, Trajectory, Turn

        messages = [{"role": "system", "content": "Reply with one ```python block."},
                    {"role": "user", "content": task.description}]
        traj = Trajectory(task_id=task.id, scaffold=self.name, backend=backend.name, seed=seed)
        completion = await backend.complete(messages, sampling=Sampling(seed=seed), protocol=self.protocol)
        match = re.search(r"```python\n(.*?)```", completion.text, re.DOTALL)
        turn = Turn(messages_in=2, text=completion.text, format_ok=match is not None, usage=completion.usage)
        if match and self.run_code:
            turn.executions.append(await session.exec(match.group(1), timeout=120))
        traj.turns.append(turn)
        traj.usage = completion.usage
        traj.stop_reason = "answer"
        return traj


def test_baseline_refuses_a_protocol_it_does_not_speak():
    import asyncio

    from sandmle.scaffolds.baseline import PROTOCOLS, UnknownProtocolError

    backend = get_registry().create("backends", "baseline")
    messages = [{"role": "user", "content": "task"}]
    for protocol in ("one-shot", "aide.drafting", "reactive"):
        with pytest.raises(UnknownProtocolError, match=f"does not speak protocol '{protocol}'"):
            asyncio.run(backend.complete(messages, protocol=protocol))
    assert set(PROTOCOLS) == {"react", "aide", "mledojo", "code"}
    reply = asyncio.run(backend.complete(messages, protocol="code"))
    assert reply.text.count("```python") == 1 and "submission.csv" in reply.text


@pytest.mark.parametrize("protocol, run_code, passes, words", [
    ("code", True, True, ""),
    ("one-shot", True, False, "does not speak protocol 'one-shot'"),  # used to get ReAct replies: 0% valid
    ("code", False, False, "the episode never executed code"),
])
def test_a_scaffold_whose_episode_never_executes_code_fails_its_check(protocol, run_code, passes, words):
    [result] = run_checks("scaffolds", OneBlockScaffold(protocol, run_code),
                          only=["runs_an_episode_with_the_baseline_backend"])
    assert result.passed is passes, result.detail
    assert words in result.detail
