"""The short-program curriculum of the learning study: the baseline agent's ``short`` style writes
programs a 135M model can emit within a reply budget (counted with SmolLM2's real tokenizer), and
they make valid submissions on real generated tasks, graded by the real grader, in ReAct."""

from __future__ import annotations

import asyncio

import pytest
from scaffolds_support import generate_tasks, grade, run_episode

from sandmle.core.plugins import get_registry
from sandmle.scaffolds.baseline_programs import SHORT_MODELS, short_program, solve_program

pytestmark = pytest.mark.slow
SEEDS = ["iris-multiclass", "diabetes-regression", "penguins-binary"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return generate_tasks(tmp_path_factory.mktemp("curriculum"), SEEDS)


def test_short_programs_fit_a_small_reply_budget(smollm2):
    tok = smollm2.tokenizer
    full = len(tok(solve_program("forest"), add_special_tokens=False)["input_ids"])
    for family in SHORT_MODELS:
        n = len(tok(short_program(family), add_special_tokens=False)["input_ids"])
        assert 200 <= n <= 300, (family, n)  # fits a 384-token reply with its <think> and tool-call wrapper
        assert n * 4 < full  # the full AutoML program is ~1,500 tokens
    with pytest.raises(ValueError, match="unknown baseline model family"):
        short_program("transformer")


def test_short_style_react_episodes_write_valid_submissions(tasks, sandbox, smollm2):
    registry = get_registry()
    teacher = registry.create("backends", "baseline", {"style": "short"})
    react = registry.create("scaffolds", "react", {"limits": {"max_llm_calls": 4, "exec_timeout_s": 60}})
    tok = smollm2.tokenizer
    for task in tasks:
        traj, g = run_episode(react, teacher, sandbox, task)
        assert g.valid_submission, (task.id, g.reason, [o[-300:] for t in traj.turns for o in t.observations])
        replies = [len(tok(t.text, add_special_tokens=False)["input_ids"]) for t in traj.turns]
        assert max(replies) <= 384 and traj.stop_reason == "answer", (task.id, replies, traj.stop_reason)
        assert "import pandas" in traj.turns[0].text  # no exploring call first: the program reads the files


def test_short_programs_of_every_family_are_valid(tasks, sandbox):
    """Each family's program on one task, run in the sandbox and graded."""
    async def run(task, code):
        session = await sandbox.open(task)
        try:
            result = await session.exec(code, timeout=120)
            return result, grade(task, session.workdir / "submission.csv")
        finally:
            await session.close()

    for family, task in zip(SHORT_MODELS, tasks + tasks):
        result, g = asyncio.run(run(task, short_program(family)))
        assert g.valid_submission, (family, task.id, g.reason, result)
        assert "VALIDATION_METRIC train_score" in result.stdout_tail
