"""``aide: {preset: aira-greedy | dojo-aide}`` and ``mledojo: {preset: paper}`` follow their anchors.

Anchors: facebookresearch/aira-dojo (greedy solver), WecoAI/aideml@9643875, MLE-Dojo/MLE-Dojo@667a8fd,
and the overlays SandMLE ran them with (Tonyzhou98/SandMLE@0912362 ``scaffolds/``); files and lines
cited per test. Task, local sandbox and grader are real; the model is a scripted ``Replay`` backend.
"""

from __future__ import annotations

import json

import pytest
from presets_support import GOOD, SAMPLE, Replay, grade_file, run
from presets_support import task  # noqa: F401 - module fixture

from sandmle.core.plugins import get_registry
from sandmle.scaffolds.aide import AideConfig, AideScaffold, Node
from sandmle.scaffolds.mledojo import MledojoConfig


def code(program: str, plan: str = "A simple plan in a few sentences.") -> str:
    return f"{plan}\n\n```python\n{program}\n```"


def review(metric: float | None, bug: bool) -> str:
    return json.dumps({"is_bug": bug, "summary": "ok", "metric": metric, "lower_is_better": False})


# ---------------------------------------------------------------------------------------- AIDE
def test_aide_preset_values():
    aira = AideConfig(preset="aira-greedy")
    # aira-dojo configs/solver/mlebench/greedy.yaml:12-21 (5 drafts, debug_prob 1.0, depth 20, 3 retries)
    # and configs/solver/greedy.yaml:12-15 (500 steps, 14400 s per execution, 86400 s in all).
    assert (aira.num_drafts, aira.debug_prob, aira.max_debug_depth, aira.parse_attempts) == (5, 1.0, 20, 3)
    assert (aira.steps, aira.limits.exec_timeout_s, aira.limits.max_wall_s) == (500, 14400, 86400)
    assert aira.review == "llm" and aira.review_sampling.temperature == 0.5  # aide_operators/analyze.yaml:10
    dojo = AideConfig(preset="dojo-aide")
    # SandMLE scaffolds/mle-dojo/mledojo/agent/aide/utils/config.yaml:33,72,76,81-83.
    assert (dojo.steps, dojo.num_drafts, dojo.debug_prob, dojo.max_debug_depth) == (15, 3, 0.5, 3)
    assert (dojo.sampling.temperature, dojo.sampling.max_tokens, dojo.review) == (0.0, 8192, "env")
    assert AideConfig().review == "llm" and AideConfig().steps == 8  # sandmle defaults unchanged


@pytest.mark.parametrize("depth,eligible", [(2, True), (3, False)])
def test_debug_eligibility_is_depth_at_most_max(depth, eligible):
    # aideml aide/agent.py:76, aira-dojo solvers/greedy/greedy.py:225, MLE-Dojo agent/aide/agent.py:97:
    # a buggy leaf may be debugged while debug_depth <= max_debug_depth.
    scaffold = AideScaffold(AideConfig(num_drafts=1, debug_prob=1.0, max_debug_depth=2))
    journal = [Node(id=0, stage="draft", children=[1]), Node(id=1, stage="debug", parent=0, debug_depth=1,
                                                                children=[2]),
               Node(id=2, stage="debug", parent=1, debug_depth=2)]
    journal[2].debug_depth = depth
    parent, stage = scaffold._choose(journal, __import__("random").Random(0))
    assert (stage, parent.id if parent else None) == (("debug", 2) if eligible else ("draft", None))


def test_dojo_aide_uses_the_environment_instead_of_a_review(task, sandbox, tmp_path):
    # MLE-Dojo agent/aide/agent.py:364-382: no review call; buggy = FAILED; metric = position score.
    backend = Replay([code(GOOD), code("1/0"), code(SAMPLE), code(GOOD, "Improve it.")])
    scaffold = get_registry().create("scaffolds", "aide", {"preset": "dojo-aide", "steps": 4, "debug_prob": 0.0})
    traj, final = run(scaffold, backend, sandbox, task)
    assert [c["protocol"] for c in backend.seen] == ["aide.draft"] * 3 + ["aide.improve"]
    journal = traj.extra["journal"]
    good = grade_file(task, GOOD, tmp_path)
    assert journal[0]["metric"] == pytest.approx(good.human_rank) and not journal[0]["is_bug"]
    assert journal[1]["is_bug"] and journal[1]["metric"] is None
    assert journal[2]["metric"] == pytest.approx(0.6) and journal[2]["position_score"] == pytest.approx(0.6)
    assert traj.extra["best_node"] in (0, 3) and final.score == pytest.approx(good.score)
    improve_prompt = backend.seen[3]["messages"][0]["content"]
    assert "Test Position Score: 0.6" in improve_prompt and "Execution and Evaluation Feedback" in improve_prompt
    sent = backend.seen[0]["sampling"]
    assert (sent.temperature, sent.top_p, sent.max_tokens) == (0.0, 1.0, 8192)


def test_aira_greedy_review_call_samples_at_half_temperature(task, sandbox):
    backend = Replay([code(GOOD), review(0.9, False)])
    scaffold = get_registry().create("scaffolds", "aide", {"preset": "aira-greedy", "steps": 1})
    traj, _ = run(scaffold, backend, sandbox, task)
    by_protocol = {c["protocol"]: c["sampling"] for c in backend.seen}
    assert by_protocol["aide.review"].temperature == 0.5 and by_protocol["aide.draft"].temperature == 1.0
    assert by_protocol["aide.draft"].max_tokens == 32768 and traj.extra["preset"] == "aira-greedy"


# ---------------------------------------------------------------------------------------- MLE-Dojo
def act(name: str, **params) -> str:
    return f"```json\n{json.dumps({'action': name, 'params': params})}\n```"


def test_mledojo_paper_preset_values():
    cfg = MledojoConfig(preset="paper")
    # SandMLE scaffolds/mle-dojo/run_dojo_competitions_parallel.sh:51 (--max-steps 30) and
    # scaffolds/mle-dojo/mledojo/agent/mleagent/config.yaml:28-36 (8192 / 50000 tokens, temperature 0).
    assert (cfg.max_steps, cfg.max_prompt_tokens, cfg.sampling.temperature, cfg.sampling.max_tokens) == \
        (30, 50000, 0.0, 8192)
    # MLE-Dojo mledojo/agent/mleagent/agent.py:190: the only actions MLE-Agent accepts.
    assert cfg.actions() == ("request_info", "validate_code", "execute_code")
    assert MledojoConfig().actions()[-3:] == ("get_history", "reset", "end")  # sandmle default


def test_mledojo_paper_rejects_other_actions_after_three_repairs(task, sandbox):
    # agent.py:215-262: up to 3 repair calls, each a single message outside the history; then "Error".
    backend = Replay([act("get_history"), act("reset"), act("end"), "still no JSON"])
    traj, _ = run(get_registry().create("scaffolds", "mledojo", {"preset": "paper"}), backend, sandbox, task)
    assert [t.stage for t in traj.turns] == ["action"] + ["fix_json"] * 3 and traj.stop_reason == "format_error"
    assert all(len(c["messages"]) == 1 for c in backend.seen[1:])


def test_mledojo_paper_history_failures_and_positions(task, sandbox):
    original = '{"action": "request_info", "params": {"info_type": "overview"},}'  # a trailing comma
    replies = [original, act("request_info", info_type="overview"), act("execute_code", code="print('no file')"),
               act("execute_code", code=SAMPLE)]
    backend = Replay(replies)
    scaffold = get_registry().create("scaffolds", "mledojo", {"preset": "paper", "max_steps": 3})
    traj, _ = run(scaffold, backend, sandbox, task)
    # agent.py:125-138: the original reply joins the history; the repair does not.
    assert traj.messages[1] == {"role": "assistant", "content": original}
    # interface.py:404-436: no submission file -> the execution step is FAILED (the error template).
    assert traj.messages[4]["content"].startswith("Your last action FAILED.")
    # interface.py:575-584 and feedback.py:205-212: Position p / N with N the board's size, score (N-p+1)/N.
    scored = traj.turns[-1].observations[0]
    assert "Private Leaderboard: Position 3 / 5" in scored and "Public Leaderboard" not in scored
    assert traj.extra["step_rewards"] == [0.0, 0.0, pytest.approx(0.6)]
    assert backend.seen[0]["sampling"].temperature == 0.0
    default = get_registry().create("scaffolds", "mledojo", {"max_steps": 2})
    traj, _ = run(default, Replay(replies[2:]), sandbox, task)
    assert traj.messages[2]["content"].startswith("Results of your last action:")  # sandmle default
    assert "Position 3 / 5" in traj.turns[-1].observations[0]  # N, not N + 1, everywhere


# ---------------------------------------------------------------------------------------- all presets
@pytest.mark.parametrize("name,args", [("react", {"preset": "sandmle-release"}),
                                       ("aide", {"preset": "dojo-aide", "steps": 2}),
                                       ("aide", {"preset": "aira-greedy", "steps": 2, "num_drafts": 1}),
                                       ("mledojo", {"preset": "paper", "max_steps": 6})])
def test_presets_pass_the_scaffold_conformance_checks(name, args, sandbox, sandmle_conformance):
    # The preset's long anchor limits are kept; the step counts are cut to keep the test short.
    scaffold = get_registry().create("scaffolds", name, args)
    results = sandmle_conformance("scaffolds", scaffold, sandbox=sandbox)
    assert {r.name for r in results} >= {"runs_an_episode_with_the_baseline_backend",
                                         "survives_a_backend_that_returns_garbage"}
