"""``react: {preset: sandmle-release}`` reproduces SandMLE's released ReAct loop.

Anchor: Tonyzhou98/SandMLE@0912362, ``examples/deepresearch/`` (files and lines cited per test).
The task, the local sandbox and the grader are real; the model is a scripted ``Replay`` backend.
"""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from presets_support import GARBAGE, GOOD, SAMPLE, Replay, grade_file, py, run, score_call
from presets_support import task  # noqa: F401 - module fixture
from pydantic import ValidationError

from sandmle.core.plugins import get_registry
from sandmle.graders.rewards import MilestoneConfig, MilestoneReward
from sandmle.scaffolds.react import ReactConfig, ReactScaffold
from sandmle.scaffolds.react_release import prune_release, release_context_tokens

ANSWER = "<think>done</think>\n<answer>submission</answer>"


def release(**overrides) -> ReactScaffold:
    return get_registry().create("scaffolds", "react", {"preset": "sandmle-release", **overrides})


def test_preset_values_follow_the_release_and_user_settings_win():
    cfg = ReactConfig(preset="sandmle-release")
    # custom_train.py:44-47: MAX_LLM_CALLS 15, MAX_TIME_S 1200, CALL_SERVER_TIMEOUT_S 300, PYTHON_TIMEOUT_S 300.
    assert (cfg.limits.max_llm_calls, cfg.limits.max_wall_s, cfg.limits.exec_timeout_s) == (15, 1200, 300)
    assert cfg.llm_timeout_s == 300
    # deepresearch_agent.py:211: max_context_tokens 32768.
    assert cfg.max_context_tokens == 32768
    # train_mle_syn_qwen3_8b.sh:44,67: max_response_length 32768, rollout temperature 1.0.
    assert (cfg.sampling.temperature, cfg.sampling.max_tokens) == (1.0, 32768)
    # custom_train.py:58-61: the tools are PythonInterpreter and Score, nothing else.
    assert ReactScaffold(cfg).tools(score=lambda p: None) == ["python", "Score"]
    assert ReactScaffold(cfg).tools(score=None) == ["python"]  # nothing to grade with: no Score tool
    # REPRODUCE.md:105-111: evaluation runs 20 calls with 86400 s limits; custom_evaluate.py:265: 1800 s calls.
    ev = ReactConfig(preset="sandmle-release-eval")
    assert (ev.limits.max_llm_calls, ev.limits.exec_timeout_s, ev.llm_timeout_s) == (20, 86400, 1800)
    mine = ReactConfig(preset="sandmle-release", limits={"max_llm_calls": 4}, sampling={"temperature": 0.2})
    assert (mine.limits.max_llm_calls, mine.limits.max_wall_s, mine.sampling.temperature,
            mine.sampling.max_tokens) == (4, 1200, 0.2, 32768)
    default = ReactConfig()  # sandmle's evaluation defaults are unchanged
    assert (default.show_score, default.prompt, default.sampling.max_tokens) == (False, "sandmle", 2048)
    with pytest.raises(ValidationError, match="sandmle-release"):
        ReactConfig(preset="sandmle-relase")


def test_release_prompts_and_the_sampling_reaching_the_backend(task, sandbox):
    backend = Replay([py("import os\nprint(os.getcwd())"), ANSWER])
    traj, _ = run(release(), backend, sandbox, task)
    system, user = traj.messages[0]["content"], traj.messages[1]["content"]
    # custom_train.py:10-41: Score is called with {"competition_id": ...}; the prompt ends with the date.
    assert '{"name": "Score", "arguments": {"competition_id":' in system
    assert system.endswith(f"Current date: {date.today():%Y-%m-%d}")
    # custom_evaluate.py:48-73 and 105-130: the id line, absolute files and folder, GPU line, rules.
    folder = traj.turns[0].observations[0].splitlines()[1]  # what agent code saw as its directory
    assert folder.startswith("/") and f"## Competition ID: {task.id}\n" in user
    assert f"## Dataset Folder:\n{folder}/\n" in user and f"- **{folder}/train.csv**" in user
    assert f"## Files Provided in **{folder}**:" in user and "CUDA" in user
    assert "up to 15 turns" in user and "**current directory**" in user
    sent = backend.seen[0]["sampling"]
    assert (sent.temperature, sent.max_tokens, sent.seed) == (1.0, 32768, 7)
    assert traj.extra["preset"] == "sandmle-release"


def test_score_tool_replies_and_the_reward_grades_the_last_score_call(task, sandbox, tmp_path):
    replies = [py(SAMPLE), score_call(task.id), score_call(None), py(GOOD), score_call(task.id),
               py(GARBAGE), ANSWER]
    traj, final = run(release(), Replay(replies), sandbox, task)
    obs = [t.observations[0] for t in traj.turns if t.observations]
    # deepresearch_tools.py:885-923: Details with the release's keys; the bronze nudge when short of it.
    weak, missing, strong = obs[1], obs[2], obs[4]
    assert weak.startswith("Submission OK. But the score does not reach the bronze threshold")
    details = json.loads(strong.split("Details: ", 1)[1])
    assert strong.startswith("Submission OK. Details: ")
    assert list(details) == ["score_primary (main competition metric for current code)",
                             "metric_lower_is_better (true means lower score is better)",
                             "threshold_gold (score needed for gold tier)",
                             "threshold_silver (score needed for silver tier)",
                             "threshold_bronze (score needed for bronze tier)",
                             "threshold_median (median submission score)", "submission_path"]
    assert details["threshold_gold (score needed for gold tier)"] == 0.95
    assert details["submission_path"].endswith("/submission.csv")
    # deepresearch_agent.py:911-912: a call without competition_id fails inside the tool.
    assert missing.startswith("Error calling tool Score:")
    good = grade_file(task, GOOD, tmp_path)
    calls = traj.extra["score_calls"]
    assert len(calls) == 2 and calls[-1]["grade"]["score"] == pytest.approx(good.score)
    assert not final.valid_submission  # overwritten with garbage after the last Score call
    # deepresearch_workflow.py:118-122: the reward reads the last Score response, not the final file.
    fmt = traj.format_rate
    assert fmt == 1.0
    expected = 0.2 + 0.7 + 0.1 * fmt if good.score >= 0.95 else 0.2 + 0.6 + 0.1 * fmt
    assert MilestoneReward().score(traj, final).total == pytest.approx(expected)
    final_file = MilestoneReward(MilestoneConfig(reward_source="final_file")).score(traj, final)
    assert final_file.total == pytest.approx(0.1 * fmt)


def test_release_format_rule(task, sandbox):
    # deepresearch_workflow.py:374-388: only the opening <think> counts; an early answer is no penalty.
    traj, _ = run(release(), Replay(["<think>easy</think><answer>submission</answer>"]), sandbox, task)
    assert traj.stop_reason == "answer" and traj.turns[0].format_ok
    traj, _ = run(release(), Replay(["I will just answer. <answer>submission</answer>"]), sandbox, task)
    assert not traj.turns[0].format_ok and traj.format_rate == 0.0
    # sandmle's rule stays the default: an answer before any tool response is a format failure.
    traj, _ = run(ReactScaffold(), Replay(["<think>easy</think><answer>submission</answer>"]), sandbox, task)
    assert traj.turns[0].format_error == "answer before any tool response"


def test_timeout_share_is_over_all_tool_responses(task, sandbox):
    # deepresearch_workflow.py:455-466: TIMEOUT when timed-out responses exceed 20% of all tool responses.
    replies = [py("while True:\n    pass"), py("print(1)"), py(SAMPLE), score_call(task.id), score_call(task.id),
               ANSWER]
    limits = {"exec_timeout_s": 2.0}
    traj, _ = run(release(limits=limits), Replay(replies), sandbox, task)
    assert traj.extra["python_timeout_rate"] == pytest.approx(1 / 5) and traj.stop_reason == "answer"
    mine = get_registry().create("scaffolds", "react", {"limits": limits, "show_score": True})
    traj, _ = run(mine, Replay(replies[:3] + [ANSWER]), sandbox, task)  # 1 of 3 python calls: TIMEOUT
    assert traj.extra["python_timeout_rate"] == pytest.approx(1 / 3) and traj.stop_reason == "timeout"


def test_release_pruning_rule():
    # deepresearch_agent.py:382-409 (chars/4 of the newline-joined contents) and 425-476, 779-799.
    head = [{"role": "system", "content": "s" * 40}, {"role": "user", "content": "u" * 40}]

    def call(i):
        return {"role": "assistant", "content": f"<think>t</think><tool_call>python {i}</tool_call>"}

    def resp(text):
        return {"role": "user", "content": f"<tool_response>\n{text}\n</tool_response>"}

    assert release_context_tokens(head) == (40 + 1 + 40) // 4
    msgs = head + [call(1), resp("ok " * 100), call(2), resp("Traceback: ValueError: bad"), call(3), resp("fine")]
    assert prune_release(msgs, 10_000) is msgs  # under budget: untouched
    pruned = prune_release(msgs, 50)
    assert pruned == head + msgs[2:4] + msgs[6:8]  # the failed exchange goes, even if still over budget
    ok_only = head + [call(1), resp("ok " * 100), call(3), resp("fine")]
    assert prune_release(ok_only, 50) == head + ok_only[-2:]  # nothing failed: first two + last two
    latest_error = head + [call(1), resp("fine"), call(2), resp("[Error] boom " * 40)]
    assert prune_release(latest_error, 50) == head + latest_error[2:4]  # the latest error goes too


def test_release_transcript_is_pruned_after_each_turn(task, sandbox):
    replies = [py("print('a' * 10)"), py("raise ValueError('boom')"), py("print('b')"), ANSWER]
    backend = Replay(replies)
    traj, _ = run(release(max_context_tokens=256), backend, sandbox, task)  # the prompts alone exceed it
    seen = [[m["content"][:60] for m in call["messages"][2:]] for call in backend.seen]
    assert len(seen[1]) == 2  # after turn 1 nothing failed: system, user and the last two
    assert seen[2] == seen[1]  # after turn 2 its failed exchange was dropped
    # The answer ends the loop before any pruning (deepresearch_agent.py:772-775).
    assert re.search(r"print\('b'\)", traj.messages[2]["content"]) and len(traj.messages) == 5
    assert traj.messages[-1]["content"] == ANSWER
    assert traj.turns[1].observations[0].count("ValueError") >= 1
