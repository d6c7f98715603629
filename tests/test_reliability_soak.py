"""The short form of the kill-and-resume soak (benchmarks/kill_resume_soak.py, which runs 20+
kills of each): ``kill -9`` of ``sandmle generate`` and of ``sandmle eval`` (its generation stage
included) at random moments, then compared with an uninterrupted run: 0 lost, 0 duplicated, the
same tasks and the same grades, no sandbox folder of a killed run left."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_resume_soak.py"


@pytest.mark.slow
def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("kill_resume_soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    code = soak.main(["--kills", "2", "--tasks", "2", "--seeds", "1", "--scaffolds", "react",
                      "--work", str(tmp_path), "--seed", "3", "--json"])
    report = json.loads(capsys.readouterr().out)
    gen, ev = report["generate"], report["eval"]
    assert gen["kills"] == 2 and ev["kills"] == 2
    # Sums over every complete run (a resumed run that finished before its kill ends a cycle).
    assert gen["tasks"] == gen["expected"] >= 2 and (gen["lost"], gen["duplicated"], gen["invalid"]) == (0, 0, [])
    assert gen["same_as_uninterrupted"] == gen["expected"] and not gen["staging_left"]
    assert ev["episodes"] == ev["expected"] >= 2 and (ev["lost"], ev["duplicated"], ev["extra"]) == (0, 0, 0)
    assert ev["differ_from_uninterrupted"] == 0 and ev["tasks_lost"] == 0 and ev["tasks_duplicated"] == 0
    assert not gen["leftover_sandbox_folders"] and not ev["leftover_sandbox_folders"]
    assert code == 0 and report["passed"]
