"""Multi-agent generator driven by a REPLAY backend.

No LLM API is reachable from this machine, so these tests replay recorded role replies through a
real :class:`Backend` subclass (``ReplayBackend``, clearly a replay, never a model). Everything
else is real: the langgraph graph, the synthesizer code executed in the ``local`` sandbox, the
reference solvers, thresholds and the evaluator check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandmle.core.interfaces import Backend
from sandmle.core.records import Completion
from sandmle.generators.multiagent import MultiAgentConfig, MultiAgentGenerator

PLAN = {"domain": "a ceramics studio", "entity": "kiln firing", "target": "cracked",
        "hidden_rule": "cracked when heat_rate times moisture exceeds the glaze threshold plus noise",
        "feature_columns": ["heat_rate", "moisture", "glaze_mm", "shelf"]}
GOOD_CODE = """```python
import numpy as np, pandas as pd
rng = np.random.default_rng(0)
n_train, n_test = 150, 100
n = n_train + n_test
X = rng.normal(size=(n, 4))
score = X[:, 0] * X[:, 1] + 0.8 * X[:, 2] + rng.normal(0, 0.4, n)
y = (score > 0.3).astype(int)
df = pd.DataFrame(X.round(4), columns=["heat_rate", "moisture", "glaze_mm", "shelf"])
df.insert(0, "id", range(n))
train = df.iloc[:n_train].assign(cracked=y[:n_train])
test = df.iloc[n_train:]
train.to_csv("train.csv", index=False)
test.to_csv("test.csv", index=False)
pd.DataFrame({"id": test["id"], "cracked": y[n_train:]}).to_csv("answers.csv", index=False)
pd.DataFrame({"id": test["id"], "cracked": 0.5}).to_csv("sample_submission.csv", index=False)
```"""
BROKEN_CODE = "```python\nimport numpy as np\nraise RuntimeError('column mismatch in synthesizer')\n```"
DESCRIPTION = "# Kiln firings\nPredict the probability that a firing is `cracked`. Scored by roc_auc."


class ReplayBackend(Backend):
    """Replays recorded replies per role (``protocol``); a replay, not a language model."""

    name = "replay"

    def __init__(self, replies: dict[str, list[str]]):
        self.replies = {k: list(v) for k, v in replies.items()}
        self.calls: list[str] = []

    async def complete(self, messages, *, tools=None, sampling=None, protocol=None) -> Completion:
        self.calls.append(protocol or "")
        queue = self.replies.get(protocol or "", [])
        return Completion(text=queue.pop(0) if queue else "")


def _run(tmp_path: Path, replies: dict[str, list[str]], **cfg) -> tuple[list, ReplayBackend]:
    backend = ReplayBackend(replies)
    config = MultiAgentConfig(workers=1, max_attempts_factor=1.0, rows=(150, 150), test_rows=(100, 100), **cfg)
    gen = MultiAgentGenerator(config, backend=backend)
    outs = list(gen.generate(tmp_path, 1, seed=1, seeds=["breast-cancer-binary"]))
    return outs, backend


def _transcript(tmp_path: Path) -> list[dict]:
    (path,) = (tmp_path / "transcripts").glob("*.json")
    return json.loads(path.read_text())


def test_four_roles_then_verification_accepts(tmp_path):
    outs, backend = _run(tmp_path, {"generator.data_strategist": [json.dumps(PLAN)],
                                    "generator.ml_developer": [GOOD_CODE],
                                    "generator.technical_writer": [DESCRIPTION]})
    (o,) = outs
    assert o.accepted, (o.reason, o.detail)
    assert backend.calls == ["generator.data_strategist", "generator.ml_developer", "generator.technical_writer"]
    root = Path(o.path)
    assert (root / "prepared/public/description.md").read_text().startswith("# Kiln firings")
    assert "heat_rate times moisture" in (root / "prepared/private/rule.json").read_text()
    assert "cracked" not in (root / "prepared/public/test.csv").read_text().splitlines()[0]
    assert [t["role"] for t in _transcript(tmp_path)] == ["Data Strategist", "ML Developer", "Technical Writer"]


def test_debug_loop_fixes_failing_code(tmp_path):
    outs, backend = _run(tmp_path, {"generator.data_strategist": [json.dumps(PLAN)],
                                    "generator.ml_developer": [BROKEN_CODE],
                                    "generator.mlops_engineer": [GOOD_CODE],
                                    "generator.technical_writer": [DESCRIPTION]})
    assert outs[0].accepted, (outs[0].reason, outs[0].detail)
    mlops = [t for t in _transcript(tmp_path) if t["role"] == "MLOps Engineer"]
    assert len(mlops) == 1 and "column mismatch in synthesizer" in mlops[0]["prompt"]


def test_debug_loop_is_bounded(tmp_path):
    outs, backend = _run(tmp_path, {"generator.data_strategist": [json.dumps(PLAN)],
                                    "generator.ml_developer": [BROKEN_CODE],
                                    "generator.mlops_engineer": [BROKEN_CODE] * 5}, max_debug_rounds=2)
    assert outs[0].reason == "code_failed_after_debug"
    assert backend.calls.count("generator.mlops_engineer") == 2
    assert json.loads((tmp_path / "rejections.jsonl").read_text())["reason"] == "code_failed_after_debug"


@pytest.mark.parametrize("replies,reason", [
    ({"generator.data_strategist": ["sure! here is my plan", "{not json"]}, "unparseable_strategist_reply"),
    ({"generator.data_strategist": [json.dumps(PLAN)], "generator.ml_developer": ["no code here"] * 2},
     "unparseable_developer_reply"),
    ({"generator.data_strategist": [json.dumps(PLAN)], "generator.ml_developer": [GOOD_CODE],
      "generator.technical_writer": ["Note: " + PLAN["hidden_rule"]]}, "description_leaks_rule"),
])
def test_bad_replies_reject_with_a_reason(tmp_path, replies, reason):
    outs, _ = _run(tmp_path, replies)
    assert [o.reason for o in outs] == [reason]
    assert not list(tmp_path.glob("*/task.yaml"))
