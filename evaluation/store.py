"""Episode identity and the append-only results store (``results.jsonl``).

One line per *finished* episode. Appends are single ``write`` calls of one complete line on an
``O_APPEND`` descriptor followed by ``fsync``, under an exclusive ``flock`` so concurrent writers
(threads, processes) never interleave. A process killed mid-write can leave at most one torn last
line: :func:`read_results` skips lines that do not parse, and the next append starts on a fresh
line, so a resumed run never loses or duplicates a finished episode. A row that parses but is not
a whole results row (missing fields, ``reward_total: "lots"``) is skipped and reported too: its
episode counts as not finished and runs again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError

RESULTS_FILE = "results.jsonl"
# What every row the study writes holds, by type (numbers and flags may also be null).
_TEXT_FIELDS = ("key", "task_set", "task_id", "policy", "scaffold", "status")
_NUMBER_FIELDS = ("reward_total", "steps", "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd",
                  "wall_s", "format_rate", "grade_score", "grade_human_rank")
_FLAG_FIELDS = ("grade_valid_submission", "grade_submission_exists", "grade_above_median",
                "grade_bronze_medal", "grade_silver_medal", "grade_gold_medal", "grade_any_medal")


class ResultsError(SandmleError):
    """The results file cannot be used (e.g. ``results.jsonl`` is a folder)."""


def row_problem(row: Any) -> str | None:
    """Why ``row`` is not a usable results row (None when it is)."""
    if not isinstance(row, dict):
        return f"a {type(row).__name__}, not an object"
    for name in _TEXT_FIELDS:
        if not isinstance(row.get(name), str) or not row[name]:
            return f"field {name!r} missing or not text"
    if type(row.get("seed")) is not int:
        return "field 'seed' missing or not an integer"
    for name in _NUMBER_FIELDS:
        value = row.get(name)
        if value is not None and type(value) not in (int, float):  # NaN is a number: kept
            return f"field {name!r} is not a number ({value!r:.40})"
    for name in _FLAG_FIELDS:
        if row.get(name) is not None and not isinstance(row[name], bool):
            return f"field {name!r} is not true/false ({row[name]!r:.40})"
    if not isinstance(row.get("reward_parts") or {}, dict):
        return "field 'reward_parts' is not an object"
    return None


@dataclass
class ResultsRead:
    """The usable rows of a results file (last row per episode) and the lines skipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def describe(self) -> str | None:
        if not self.skipped:
            return None
        shown = "; ".join(f"line {n}: {why}" for n, why in self.skipped[:3])
        more = f" (+{len(self.skipped) - 3} more)" if len(self.skipped) > 3 else ""
        return f"skipped {len(self.skipped)} unusable line(s) of {RESULTS_FILE}, run again: {shown}{more}"


@dataclass(frozen=True)
class Episode:
    """One unit of evaluation work: (task set, task, policy, scaffold, seed)."""

    task_set: str
    task_id: str
    task_root: str
    policy: str  # the policy's label (name plus args)
    policy_index: int
    scaffold: str  # the scaffold's label
    scaffold_index: int
    seed: int

    @property
    def key(self) -> str:
        """Stable identity used for resume: independent of ordering and of the task's path."""
        raw = json.dumps([self.task_set, self.task_id, self.policy, self.scaffold, self.seed])
        return hashlib.sha1(raw.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_results(out_dir: Path) -> list[dict[str, Any]]:
    """All complete result rows in ``out_dir/results.jsonl`` (torn, foreign or malformed lines
    skipped; :func:`read_results_checked` also says which).

    If an episode key appears twice (it cannot via :class:`ResultsStore`, but files may be
    concatenated by hand) the last row wins.
    """
    return read_results_checked(out_dir).rows


def read_results_checked(out_dir: Path) -> ResultsRead:
    """The usable rows of ``out_dir/results.jsonl`` and every line skipped, with why."""
    path = Path(out_dir) / RESULTS_FILE
    if path.is_dir():
        raise ResultsError(f"{path} is a folder, not a results file; move it away to start afresh")
    if not path.exists():
        return ResultsRead()
    rows: dict[str, dict[str, Any]] = {}
    read = ResultsRead()
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                read.skipped.append((number, "not JSON (torn by a kill?)"))
                continue  # that episode is simply not finished
            problem = row_problem(row)
            if problem is not None:
                read.skipped.append((number, problem))
                continue
            rows[row["key"]] = row
    read.rows = list(rows.values())
    return read


class ResultsStore:
    """Appends finished-episode rows to ``results.jsonl`` atomically; knows what is finished."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RESULTS_FILE
        self.read = read_results_checked(self.out_dir)
        self.finished: set[str] = {row["key"] for row in self.read.rows}

    def append(self, row: dict[str, Any]) -> bool:
        """Append one row (must carry ``key``); returns False if that episode was already stored."""
        if row["key"] in self.finished:
            return False
        line = json.dumps(row, default=str, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _ends_without_newline(fd):
                line = b"\n" + line  # isolate a torn last line left by a killed writer
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.finished.add(row["key"])
        return True


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    return os.pread(fd, 1, size - 1) != b"\n"
