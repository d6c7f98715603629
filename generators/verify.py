"""Verification of a candidate: reference solvers in the sandbox -> leaderboard -> thresholds.

Thresholds follow MLE-bench's position rules for N < 100 entries (gold = position
max(1, floor(0.1 N)), silver = floor(0.2 N), bronze = floor(0.4 N), median = median score) on a
leaderboard of the reference variants (all but the sample submission). MLE-bench gives gold and
silver the same position below N = 10, so the solver program ships 12 non-sample variants and
tied scores count once: positions 1, 2 and 4 then differ; fewer than 5 distinct scores is a
rejection (``too_few_reference_scores``). The sanity filter (SandMLE): strictly monotone thresholds and a median that
strictly beats the sample submission; we also reject tasks where no model beats the constant
baseline (``no_signal``), and tasks whose own ``evaluator.py`` fails or disagrees.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from sandmle.core.interfaces import Sandbox
from sandmle.core.task import MedalThresholds, Task
from sandmle.graders.metrics import compute_score as score
from sandmle.graders.metrics import get_metric

from .solvers import solver_program
from .synth import Candidate


@dataclass
class Verdict:
    """What verification found: a reason when rejected, thresholds and scores when accepted."""

    reason: str | None
    scores: dict[str, float] = field(default_factory=dict)
    thresholds: MedalThresholds | None = None
    leaderboard: list[float] = field(default_factory=list)
    detail: str = ""
    solver_wall_s: float = 0.0


def derive_thresholds(scores: dict[str, float], lower: bool) -> tuple[MedalThresholds, list[float]]:
    """MLE-bench N<100 position rules on the reference leaderboard (sample submission excluded)."""
    # Tied scores count once: discrete metrics (accuracy on 60 rows) tie often, and a tie at a
    # medal position would make two thresholds equal.
    board = sorted({round(v, 5) for k, v in scores.items() if k != "sample"}, reverse=not lower)
    n = len(board)
    if n < 5:
        raise ValueError(f"only {n} distinct reference scores; need at least 5 for distinct medal positions")
    pos = {"gold": max(1, n // 10), "silver": max(2, n // 5), "bronze": max(3, int(0.4 * n))}
    th = MedalThresholds(gold=board[pos["gold"] - 1], silver=board[pos["silver"] - 1],
                         bronze=board[pos["bronze"] - 1], median=round(median(board), 5))
    return th, board


def sanity_reason(scores: dict[str, float], th: MedalThresholds, lower: bool) -> str | None:
    """SandMLE's sanity filter plus a learnability check; ``None`` when the task passes."""
    if not th.is_monotone(lower):
        return "non_monotone"
    better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
    if "sample" in scores and not better(th.median, scores["sample"]):
        return "median_not_better_than_sample"
    best = min(scores.values()) if lower else max(scores.values())
    if "constant" in scores and not better(best, scores["constant"]):
        return "no_signal"
    return None


def public_info(c: Candidate) -> dict[str, Any]:
    """The public structure the reference solvers may use (what description.md also says)."""
    label = "label" if c.seed.submission in ("proba_multi", "label") or c.class_names else c.target_columns[0]
    if c.seed.task_type in ("regression", "forecasting"):
        label = c.target_columns[0]
    label = c.label_column or label
    return {"id_column": c.id_column, "label_column": label, "target_columns": c.target_columns,
            "submission": c.seed.submission, "task_type": c.seed.task_type, "modality": c.seed.modality,
            "classes": c.class_names if c.seed.submission != "proba_binary" else [0, 1]}


async def run_reference_solvers(c: Candidate, task: Task, session: Any,
                                timeout: float = 120.0) -> tuple[dict[str, pd.DataFrame], str, float]:
    """Run every reference variant in a verification session; return submissions, detail, wall time.

    Verification sessions are reused across candidates (a fresh sandbox worker costs seconds of
    imports, the solvers under one): each candidate gets its own sub-folder, removed afterwards.
    The evaluator check writes the answers there too; agents never get these sessions.
    """
    sub = f"cand_{task.id}"
    for path in task.public_files():
        await session.write_file(f"{sub}/{path.relative_to(task.public_dir)}", path.read_bytes())
    try:
        program = f"import os\nos.chdir({sub!r})\n" + solver_program(public_info(c))
        res = await session.exec(program, timeout=timeout)
        subs: dict[str, pd.DataFrame] = {}
        if res.ok:
            for name in await session.list_files(f"{sub}/refsubs"):
                data = await session.read_file(name)
                subs[Path(name).stem] = pd.read_csv(io.BytesIO(data))
        detail = res.stdout_tail[-300:] if res.ok else f"{res.killed or res.exit_code}: {res.stderr_tail[-300:]}"
        if subs and task.private_dir is not None:
            problem = await check_evaluator(session, sub, task, subs)
            if problem:
                return {}, "evaluator: " + problem, res.wall_s
        return subs, detail, res.wall_s
    finally:
        await session.exec(f"import shutil; shutil.rmtree({sub!r}, ignore_errors=True)", timeout=30)


_EVAL_RUN = """import runpy, sys, io, contextlib, json
out = {}
for name in NAMES:
    sys.argv = ["evaluator.py", "--submission_path", f"refsubs/{name}.csv"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path("_verify/evaluator.py", run_name="__main__")
    out[name] = json.loads(buf.getvalue().strip().splitlines()[-1])
print("EVAL" + json.dumps(out))
"""


async def check_evaluator(session: Any, sub: str, task: Task, subs: dict[str, pd.DataFrame]) -> str | None:
    """Run the task's evaluator.py on two reference submissions inside the verification session."""
    assert task.private_dir is not None
    for rel in ("evaluator.py", "answers.csv"):
        await session.write_file(f"{sub}/_verify/{rel}", (task.private_dir / rel).read_bytes())
    names = sorted(subs)[:2]
    code = f"import os\nos.chdir({sub!r})\n" + _EVAL_RUN.replace("NAMES", repr(names))
    res = await session.exec(code, timeout=60)
    if not res.ok or "EVAL" not in res.stdout_tail:
        return f"evaluator.py failed: {res.killed or res.exit_code} {res.stderr_tail[-300:]}"
    got = json.loads(res.stdout_tail.split("EVAL", 1)[1].strip().splitlines()[0])
    for name in names:
        if got[name].get("score") is None or "gold_threshold" not in got[name]:
            return f"evaluator.py gave no score for {name}: {got[name]}"
    return None


def score_submissions(c: Candidate, subs: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Host-side scores of the reference submissions (invalid or non-finite ones are dropped)."""
    out: dict[str, float] = {}
    for name, sub in subs.items():
        try:
            value = score(c.seed.metric, c.answers, sub, c.target_columns, c.id_column)
        except ValueError:
            continue
        if math.isfinite(value):
            out[name] = value
    return out


def judge(c: Candidate, scores: dict[str, float]) -> Verdict:
    """Thresholds and the sanity filter from reference scores."""
    lower = get_metric(c.seed.metric).lower_is_better
    if "sample" not in scores:
        return Verdict("sample_submission_invalid", scores)
    try:
        th, board = derive_thresholds(scores, lower)
    except ValueError as exc:
        return Verdict("too_few_reference_scores", scores, detail=str(exc))
    return Verdict(sanity_reason(scores, th, lower), scores, th, board)
