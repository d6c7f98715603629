"""Verification of a candidate: reference solvers in the sandbox -> scores -> thresholds.

The reference solvers (a standard scikit-learn portfolio) run in the sandbox on the public files;
their submissions are scored on the host with the graders' metric code, next to the oracle's
(the noiseless rule's) submission. :mod:`~sandmle.generators.calibration` places the thresholds
(its :class:`ThresholdPolicy`) and applies the sanity filter: SandMLE's (strictly monotone
thresholds, a median that strictly beats the sample submission), learnability (some model beats
the constant baseline: ``no_signal``), headroom (``no_headroom``) and metric noise
(``gap_below_noise``). A task whose own ``evaluator.py`` fails or disagrees is rejected too.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sandmle.core.task import MedalThresholds, Task
from sandmle.graders.metrics import compute_score as score
from sandmle.graders.metrics import get_metric

from .calibration import ThresholdPolicy, bootstrap_se, place_thresholds
from .ladder import best_model, bootstrap_ses, informed_submission, ladder_rungs, place_on_ladder
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
    difficulty: dict[str, Any] = field(default_factory=dict)


def public_info(c: Candidate) -> dict[str, Any]:
    """The public structure the reference solvers may use (what description.md also says)."""
    return {"id_column": c.id_column, "label_columns": c.train_columns, "target_columns": c.target_columns,
            "submission": c.seed.submission, "task_type": c.seed.task_type, "modality": c.seed.modality,
            "classes": [str(x) for x in c.class_names], "positive": c.seed.positive_target}


async def run_reference_solvers(c: Candidate, task: Task, session: Any,
                                timeout: float = 120.0) -> tuple[dict[str, pd.DataFrame], str, float]:
    """Run every reference variant in a verification session; return submissions, detail, wall time.

    Verification sessions are reused across candidates (a fresh sandbox worker costs seconds of
    imports, the solvers under one): each candidate gets its own sub-folder, removed afterwards.
    The evaluator check writes the answers there too; agents never get these sessions.
    """
    sub = f"cand_{task.id}"
    # One archive instead of one write per file: image and sound tasks have hundreds of files.
    await session.write_file(f"{sub}/public.zip", await asyncio.to_thread(_zip_public, task))
    try:
        program = (f"import os, zipfile\nos.chdir({sub!r})\nzipfile.ZipFile('public.zip').extractall('.')\n"
                   "os.remove('public.zip')\n" + solver_program(public_info(c)))
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


def _zip_public(task: Task) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in task.public_files():
            zf.write(path, str(path.relative_to(task.public_dir)))
    return buf.getvalue()


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


def judge(c: Candidate, scores: dict[str, float], subs: dict[str, pd.DataFrame] | None = None,
          policy: ThresholdPolicy | None = None) -> Verdict:
    """Thresholds, the sanity filter and the difficulty figures from reference scores.

    With a ``ladder`` policy and a candidate that has derived features, the host runs the
    ``informed`` rung and places the thresholds on the ladder (:mod:`.ladder`); otherwise on the
    oracle-anchored scale or MLE-bench positions (:mod:`.calibration`)."""
    policy = policy or ThresholdPolicy()
    lower = get_metric(c.seed.metric).lower_is_better
    if "sample" not in scores:
        return Verdict("sample_submission_invalid", scores)
    oracle = None
    if c.oracle is not None:
        oracle = score_submissions(c, {"oracle": c.oracle}).get("oracle")
    models = {k: v for k, v in scores.items() if k not in ("sample", "constant")}
    figures: dict[str, Any] = {"n_train": len(c.train), "n_test": len(c.test)}
    if policy.kind == "ladder" and subs and models:
        informed_sub = informed_submission(c)
        informed = score_submissions(c, {"informed": informed_sub}).get("informed") if informed_sub is not None else None
        rungs = ladder_rungs(scores, informed, oracle, lower)
        if rungs is not None:
            tuned = best_model(scores, lower)
            ses = bootstrap_ses(c.seed.metric, c.answers, {"tuned": subs[tuned], "informed": informed_sub},
                                c.target_columns, c.id_column, policy.bootstrap)
            placed = place_on_ladder(policy, scores, rungs, ses, lower)
            placed.figures["best_reference_model"] = tuned
            board = sorted((round(v, 6) for k, v in scores.items() if k != "sample"), reverse=not lower)
            return Verdict(placed.reason, {**scores, "informed": informed}, placed.thresholds, board,
                           difficulty={**figures, **placed.figures})
    se = float("nan")
    if subs and models:
        best = (min if lower else max)(models, key=models.get)
        se = bootstrap_se(c.seed.metric, c.answers, subs[best], c.target_columns, c.id_column,
                          policy.bootstrap)
    fallback = policy if policy.kind != "ladder" else policy.model_copy(update={"kind": "calibrated"})
    placed = place_thresholds(fallback, scores, oracle, se if math.isfinite(se) else 0.0, lower)
    figures.update(placed.figures)
    board = sorted((round(v, 6) for k, v in scores.items() if k != "sample"), reverse=not lower)
    return Verdict(placed.reason, scores, placed.thresholds, board, difficulty=figures)
