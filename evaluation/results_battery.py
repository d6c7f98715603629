"""Forged and broken results files: the results half of the grading battery (``sandmle grader
check`` runs it after the grader's own checks).

Each check writes a results file as an attacker or a careless user would and asserts that
:mod:`sandmle.evaluation.store` refuses it with a clear :class:`ResultsError` (or reads it
correctly), within a time bound, never hanging and never taking a forged row.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sandmle.core.testing import CheckResult

from .store import RESULTS_FILE, Episode, ResultsError, ResultsStore, read_results_checked

LIMIT_S = 30.0


def _row(task: str, reward: float) -> dict[str, Any]:
    ep = Episode(task_set="battery", task_id=task, task_root="/battery", policy="p", policy_index=0,
                 scaffold="react", scaffold_index=0, seed=0)
    return {"key": ep.key, "task_set": ep.task_set, "task_id": task, "policy": "p", "scaffold": "react",
            "status": "ok", "seed": 0, "reward_total": reward, "reward_parts": {}}


def _refused(folder: Path, words: str) -> None:
    """Reading ``folder``'s results (as a resumed eval does) raises ResultsError naming ``words``,
    within LIMIT_S."""
    box: dict[str, BaseException | None] = {}

    def work() -> None:
        try:
            ResultsStore(folder)
            box["error"] = None
        except BaseException as exc:  # noqa: BLE001 - inspected below
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(LIMIT_S)
    assert not thread.is_alive(), f"reading the results still ran after {LIMIT_S:g}s (it hangs)"
    error = box["error"]
    assert isinstance(error, ResultsError), f"expected a ResultsError, got {error!r}"
    assert words in str(error), f"the error does not say {words!r}: {error}"


def forged_duplicate_row_is_refused(folder: Path) -> None:
    """A second row for a finished episode with ``reward_total: 999`` is an error naming its line."""
    rows = [_row("a", 0.46), _row("b", 0.5), _row("a", 999)]
    (folder / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    _refused(folder, "line 3")


def identical_duplicate_row_is_read_once(folder: Path) -> None:
    """The same row twice (a kill/resume race) is read once."""
    rows = [_row("a", 0.46), _row("a", 0.46)]
    (folder / RESULTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_results_checked(folder)
    assert len(read.rows) == 1 and not read.skipped, f"{len(read.rows)} rows, skipped {read.skipped}"


def link_to_dev_zero_is_refused(folder: Path) -> None:
    """``results.jsonl`` as a link to ``/dev/zero`` is an error, not an endless read."""
    (folder / RESULTS_FILE).symlink_to("/dev/zero")
    _refused(folder, "symbolic link")


def fifo_is_refused(folder: Path) -> None:
    """``results.jsonl`` as a FIFO is an error, not a blocked open."""
    os.mkfifo(folder / RESULTS_FILE)
    _refused(folder, "not a regular file")


CHECKS: list[Callable[[Path], None]] = [forged_duplicate_row_is_refused, identical_duplicate_row_is_read_once,
                                        link_to_dev_zero_is_refused, fifo_is_refused]


def run_results_checks() -> list[CheckResult]:
    """Every results check, each in a fresh folder; never raises."""
    results = []
    for fn in CHECKS:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sandmle-results-check-") as tmp:
            try:
                fn(Path(tmp))
                results.append(CheckResult("results", fn.__name__, True, (fn.__doc__ or "").strip(),
                                           time.perf_counter() - t0))
            except Exception as exc:  # noqa: BLE001 - a failed check is a result
                results.append(CheckResult("results", fn.__name__, False, f"{type(exc).__name__}: {exc}",
                                           time.perf_counter() - t0))
    return results
