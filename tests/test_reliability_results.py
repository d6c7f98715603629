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
