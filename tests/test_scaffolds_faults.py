"""Bad model output, sandbox timeouts, crashing agent code and exhausted budgets, per scaffold.

The model is a ``Replay`` backend returning fixed replies: a real LLM cannot be made to emit each
malformed reply on demand (that is the one fake here). Sandbox and tasks are real.
"""

from __future__ import annotations


import pytest
from scaffolds_support import run_episode

from sandmle.core.interfaces import Backend
from sandmle.core.plugins import get_registry
from sandmle.core.records import Completion, ToolCall, Usage
from sandmle.scaffolds.react import ReactConfig, ReactScaffold


class Replay(Backend):
    """Returns the scripted replies in order (the last one repeats); records what it was asked."""

    name = "replay"

    def __init__(self, replies):
        self.replies, self.seen = list(replies), []

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None):
        self.seen.append((protocol, list(messages)))
        r = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(r, Exception):
            raise r
        if isinstance(r, Completion):
            return r
        return Completion(text=r, usage=Usage(prompt_tokens=10, completion_tokens=5, llm_calls=1))


@pytest.fixture(scope="module")
def task(generated_tasks):
    return generated_tasks(["penguins-binary"])[0]


def py(code, think="run it"):
    return f"<think>{think}</think>\n<tool_call>\npython\n<code>\n{code}\n</code>\n</tool_call>"


def test_react_records_each_bad_reply_as_a_format_failure_and_keeps_going(task, sandbox):
    replies = ["",  # empty
               "<thinking>no</thinking><call>x</call>",  # wrong tags
               '<think>t</think><tool_call>{"name": "validate", "arguments": </tool_call>',  # invalid JSON
               "<think>t</think>" + "blah " * 5000,  # endless text, no action
               '<think>t</think><tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',  # unknown tool
               "<think>t</think><tool_call>python</tool_call>",  # python call without code
               "<think> </think>" + py("print(1)")[len("<think>run it</think>"):],  # blank thought
               py("import pandas as pd\npd.read_csv('train.csv').head(2).to_csv('submission.csv')"),
               "<think>done</think><answer>submission</answer>"]
    backend = Replay(replies)
    traj, _ = run_episode(ReactScaffold(ReactConfig()), backend, sandbox, task)
    fmt = [(t.format_ok, t.format_error) for t in traj.turns]
    # An unknown tool is a well-formed call (its observation says so), not a format failure.
    assert [ok for ok, _ in fmt] == [False] * 4 + [True] + [False] * 2 + [True, True]
    assert "no tool call" in fmt[0][1] and "no tool call" in fmt[1][1]
    assert "invalid tool call" in fmt[2][1] and "no tool call" in fmt[3][1]
    assert "without a <code>" in fmt[5][1] and "<think>" in fmt[6][1]
    assert "not found" in traj.turns[4].observations[0] and "python, validate" in traj.turns[4].observations[0]
    assert traj.turns[2].observations[0].startswith("invalid tool call")
    assert traj.turns[0].observations == [] and traj.turns[3].observations == []
    assert traj.stop_reason == "answer" and traj.format_rate == pytest.approx(3 / 9)
    assert traj.submission is not None  # written by the one good python call


def test_react_sandbox_timeout_and_crash_are_observations(task, sandbox):
    backend = Replay([py("while True:\n    pass"), py("raise ValueError('agent bug')"),
                      py("import os\nos.kill(os.getpid(), 9)"), "<think>x</think><answer>submission</answer>"])
    scaffold = ReactScaffold(ReactConfig(limits={"exec_timeout_s": 2.0}))
    traj, g = run_episode(scaffold, backend, sandbox, task)
    t0, t1, t2 = traj.turns[:3]
    assert t0.executions[0].killed == "timeout" and "[Timeout]" in t0.observations[0]
    assert "ValueError: agent bug" in t1.observations[0] and t1.executions[0].exit_code != 0
    assert t2.executions[0].ok is False and t2.format_ok
    assert traj.extra["python_timeout_rate"] == pytest.approx(1 / 3)
    assert traj.stop_reason == "timeout" and not g.valid_submission  # > 20% timed out: SandMLE's TIMEOUT
    ok = Replay([py("print(1)"), py("print(2)"), py("print(3)"), py("print(4)"), py("while True:\n    pass"),
                 "<think>x</think><answer>submission</answer>"])
    traj, _ = run_episode(scaffold, ok, sandbox, task)
    assert traj.extra["python_timeout_rate"] == pytest.approx(1 / 5) and traj.stop_reason == "answer"


def test_react_answer_before_any_tool_response_is_a_format_failure(task, sandbox):
    traj, _ = run_episode(ReactScaffold(), Replay(["<think>easy</think><answer>submission</answer>"]), sandbox, task)
    assert traj.stop_reason == "answer" and len(traj.turns) == 1
    assert traj.turns[0].format_error == "answer before any tool response" and traj.format_rate == 0.0
    # an answer in the same reply as a tool call comes after that call's response: well formed
    traj, _ = run_episode(ReactScaffold(), Replay([py("print(1)") + "<answer>submission</answer>"]), sandbox, task)
    assert traj.stop_reason == "answer" and traj.turns[0].format_ok


def test_budget_and_backend_failures_end_cleanly(task, sandbox):
    traj, _ = run_episode(ReactScaffold(ReactConfig(limits={"max_llm_calls": 3})), Replay(["<think>hm</think>"]),
                          sandbox, task)
    assert traj.stop_reason == "max_llm_calls" and len(traj.turns) == 3 and traj.usage.llm_calls == 3
    traj, _ = run_episode(ReactScaffold(), Replay([py("print(1)"), RuntimeError("server gone")]), sandbox, task)
    assert traj.stop_reason == "backend_error" and "server gone" in traj.extra["backend_error"]


def test_react_native_invalid_arguments_is_a_format_failure(task, sandbox):
    bad = Completion(text="<think>x</think>", tool_calls=[ToolCall(name="python", arguments={"__invalid_json__": "{"})])
    traj, _ = run_episode(ReactScaffold(ReactConfig(tool_mode="native", limits={"max_llm_calls": 1})),
                          Replay([bad]), sandbox, task)
    assert not traj.turns[0].format_ok and "invalid tool call" in traj.turns[0].format_error
    assert traj.messages[-1]["role"] == "tool"


def test_react_context_policy_drops_failed_exchanges_first():
    scaffold = ReactScaffold(ReactConfig(max_context_tokens=300))
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "a" * 800}, {"role": "user", "content": "Error: x" + "e" * 800},
            {"role": "assistant", "content": "b" * 100}, {"role": "user", "content": "fine"}]
    kept = scaffold._fit_context(msgs)
    assert [m["content"][:1] for m in kept] == ["s", "t", "b", "f"]
    msgs[3]["content"] = "ok" + "e" * 2000  # nothing failed: keep system, task and the last two
    assert scaffold._fit_context(msgs) == msgs[:2] + msgs[-2:]


def test_aide_garbage_code_and_review_make_buggy_nodes(task, sandbox):
    reg = get_registry()
    backend = Replay(["no code at all"])  # every draft and every review is garbage
    scaffold = reg.create("scaffolds", "aide", {"steps": 2, "num_drafts": 2, "parse_attempts": 2})
    traj, _ = run_episode(scaffold, backend, sandbox, task)
    journal = traj.extra["journal"]
    assert len(journal) == 2 and all(n["is_bug"] for n in journal) and traj.extra["best_node"] is None
    assert journal[0]["code"] == "no code at all"  # AIDE's fallback: the raw reply as code
    assert "SyntaxError" in journal[0]["term_out"] or "Error" in journal[0]["term_out"]
    stages = [(t.stage, t.format_ok) for t in traj.turns]
    assert stages == [("draft", False), ("draft", False), ("review", False)] * 2


def test_aide_review_reporting_an_int_metric_is_buggy(task, sandbox):
    draft = "Plan: write a file.\n\n```python\nimport pandas as pd\npd.read_csv('sample_submission.csv').to_csv('submission.csv', index=False)\nprint('metric 1')\n```"
    review = Completion(tool_calls=[ToolCall(name="submit_review", arguments={
        "is_bug": False, "summary": "fine", "metric": 1, "lower_is_better": False})])
    scaffold = get_registry().create("scaffolds", "aide", {"steps": 1, "num_drafts": 1})
    traj, g = run_episode(scaffold, Replay([draft, review]), sandbox, task)
    node = traj.extra["journal"][0]
    assert node["has_submission"] and node["is_bug"] and node["metric"] is None
    assert g.valid_submission  # no good node: the last run's file stays (AIDE)


def test_mledojo_invalid_json_gets_fix_prompts_then_ends(task, sandbox):
    backend = Replay(["{not json", "still not", "```json\n{\"action\": \"fly\", \"params\": {}}\n```"])
    traj, _ = run_episode(get_registry().create("scaffolds", "mledojo"), backend, sandbox, task)
    assert traj.stop_reason == "format_error" and len(traj.turns) == 3
    assert [t.stage for t in traj.turns] == ["action", "fix_json", "fix_json"]
    assert all(not t.format_ok for t in traj.turns) and "unknown action" in traj.turns[2].format_error
    assert len(backend.seen[1][1]) == 1  # the fix prompt is a single message outside the history


def test_mledojo_validate_deletes_submission_and_failed_execute_reports(task, sandbox):
    write = "import pandas as pd\npd.read_csv('sample_submission.csv').to_csv('submission.csv', index=False)"
    import json
    acts = [{"action": "validate_code", "params": {"code": write}},
            {"action": "execute_code", "params": {"code": "1/0"}},
            {"action": "get_history", "params": {}}, {"action": "end", "params": {}}]
    traj, g = run_episode(get_registry().create("scaffolds", "mledojo"), Replay([json.dumps(a) for a in acts]),
                          sandbox, task)
    obs = [t.observations[0] for t in traj.turns[:3]]
    assert obs[0].startswith("=== Code Validation Results ===\nStatus: SUCCESS")
    assert "Status: FAILED" in obs[1] and "ZeroDivisionError" in obs[1]
    assert obs[2] == "Total Actions: 2, Last Action: execute_code"
    assert "FAILED" in traj.messages[4]["content"] and not g.submission_exists
    assert traj.extra["step_rewards"] == [0.0, 0.0, 0.0]
