"""A sandbox's report crosses a process boundary as JSON; the host checks it before it becomes
an ExecResult (the issue's forged cpu_s=-1e308, peak_mem_mb=NaN and exit code "x")."""

from __future__ import annotations

import math

import pytest

from sandmle.sandboxes.results import exec_result_from_reply

GOOD = {"exit_code": 3, "stdout_tail": "out", "stderr_tail": "err", "wall_s": 0.5, "cpu_s": 0.25,
        "peak_mem_mb": 12.0, "killed": None, "detail": ""}


def test_a_good_report_passes_unchanged():
    r = exec_result_from_reply(GOOD)
    assert (r.exit_code, r.stdout_tail, r.cpu_s, r.peak_mem_mb, r.killed) == (3, "out", 0.25, 12.0, None)


@pytest.mark.parametrize("field,value", [
    ("exit_code", "x"), ("exit_code", 1.5), ("exit_code", True), ("exit_code", 10**9),
    ("cpu_s", -1e308), ("cpu_s", math.nan), ("peak_mem_mb", math.nan), ("peak_mem_mb", math.inf),
    ("wall_s", "soon"), ("killed", "gold"), ("stdout_tail", 7),
])
def test_a_forged_value_becomes_a_recorded_error(field, value):
    r = exec_result_from_reply({**GOOD, field: value})
    assert r.killed == "error" and field in r.detail and r.exit_code is None
    assert all(math.isfinite(x) and x >= 0 for x in (r.cpu_s, r.peak_mem_mb, r.wall_s))


def test_a_report_that_is_not_a_mapping():
    assert exec_result_from_reply(["exit", 0]).killed == "error"


# -- issue 26 item 8: results.jsonl rows are unique by key; only a regular file is read ----------
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402

import yaml  # noqa: E402

from sandmle.evaluation.episode import failed_row  # noqa: E402
from sandmle.evaluation.store import Episode, ResultsError, ResultsStore, read_results_checked  # noqa: E402

from test_reliability_cli import no_traceback, sandmle  # noqa: E402
from test_reliability_generate import fake_generated  # noqa: E402


def _row(i: int, **changes):
    ep = Episode(task_set="ts", task_id=f"t{i}", task_root="/x", policy="baseline", policy_index=0,
                 scaffold="react", scaffold_index=0, seed=0)
    return {**failed_row(ep, "boom"), "reward_total": 0.46, "finished_at": "2026-12-07T00:00:00", **changes}


def test_a_forged_duplicate_row_is_an_error_naming_its_line(tmp_path):
    rows = [_row(0), _row(1), _row(0, reward_total=999)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ResultsError, match=r"line 3 is a second, different row .*first at line 1.*reward_total"):
        read_results_checked(tmp_path)
    with pytest.raises(ResultsError, match="line 3"):
        ResultsStore(tmp_path)  # a resumed eval refuses it too
    no_traceback(sandmle("report", tmp_path), "line 3", "reward_total")


def test_an_identical_duplicate_row_is_read_once(tmp_path):
    rows = [_row(0), _row(1), _row(0)]  # a kill/resume race that appended the same row twice
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_results_checked(tmp_path)
    assert [r["task_id"] for r in read.rows] == ["t0", "t1"] and not read.skipped


def _eval_recipe(tmp_path):
    task = fake_generated(tmp_path / "tasks", 0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "r", "output_dir": str(tmp_path / "run"),
        "tasks": {"name": "t", "source": {"name": "directory", "args": {"path": str(task.root)}}},
        "sandbox": "local", "backend": "baseline", "scaffolds": ["react"],
        "evaluation": {"seeds": [0], "concurrency": 1}}))
    (tmp_path / "run").mkdir()
    return recipe, tmp_path / "run" / "results.jsonl"


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "link to a good file"])
def test_results_that_are_not_a_regular_file_fail_eval_at_once(tmp_path, kind):
    recipe, results = _eval_recipe(tmp_path)
    if kind == "fifo":
        os.mkfifo(results)
    elif kind == "/dev/zero":
        results.symlink_to("/dev/zero")
    else:
        good = tmp_path / "elsewhere.jsonl"
        good.write_text(json.dumps(_row(0)) + "\n")
        results.symlink_to(good)
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(ran=sandmle("eval", recipe, "--max-episodes", "0")),
                              daemon=True)
    worker.start()
    worker.join(60)  # main blocked here for minutes (reading /dev/zero, opening a FIFO)
    assert not worker.is_alive(), f"eval hangs on results.jsonl as {kind}"
    words = "not a regular file" if kind == "fifo" else "symbolic link"
    no_traceback(box["ran"], "results.jsonl", words)


def test_an_overlong_line_is_skipped_without_holding_it(tmp_path, monkeypatch):
    from sandmle.evaluation import store

    monkeypatch.setattr(store, "MAX_LINE_BYTES", 3000)
    (tmp_path / "results.jsonl").write_bytes(b"0" * 9000 + b"\n" + json.dumps(_row(1)).encode() + b"\n")
    read = read_results_checked(tmp_path)
    assert [r["task_id"] for r in read.rows] == ["t1"] and read.skipped == [(1, "longer than 3000 bytes")]
