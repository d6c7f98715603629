"""Episode identity and the append-only results store (``results.jsonl``).

One line per *finished* episode. Appends are single ``write`` calls of one complete line on an
``O_APPEND`` descriptor followed by ``fsync``, under an exclusive ``flock`` so concurrent writers
(threads, processes) never interleave. A process killed mid-write can leave at most one torn last
line: :func:`read_results` skips lines that do not parse, and the next append starts on a fresh
line, so a resumed run never loses or duplicates a finished episode. A row that parses but is not
a whole results row (missing fields, ``reward_total: "lots"``) is skipped and reported too: its
episode counts as not finished and runs again.

Rows are unique by episode key: a row repeated byte for byte (a killed and resumed run racing
itself) is read once, but a second, *different* row for a key (``reward_total: 999`` appended by
hand) is a :class:`ResultsError` naming both lines, never silently taken. The file is opened only
when it is a regular file (``O_NOFOLLOW``, then ``fstat`` on the descriptor): a link to
``/dev/zero``, a FIFO or a folder is an error instead of a hang.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError

RESULTS_FILE = "results.jsonl"
MAX_LINE_BYTES = 16 * 1024 * 1024  # a row is a few KiB; a longer "line" is skipped, not held in memory
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

    An episode key that appears twice with identical rows is read once; with different rows it
    is a :class:`ResultsError` naming the lines (see the module docstring).
    """
    return read_results_checked(out_dir).rows


def open_results_file(path: Path, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor on ``path`` when it is a regular file (None when it does not exist); a link,
    FIFO, device or folder is a :class:`ResultsError` (opening never blocks)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ResultsError(f"{path} is a symbolic link; a results file must be a regular file "
                               f"(move it away to start afresh)") from None
        if exc.errno == errno.EISDIR:
            raise ResultsError(f"{path} is a folder, not a results file; move it away to start afresh") from None
        raise ResultsError(f"{path} cannot be opened: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise ResultsError(f"{path} is {kind}, not a results file; move it away to start afresh")
    os.set_blocking(fd, True)
    return fd


def read_results_checked(out_dir: Path) -> ResultsRead:
    """The usable rows of ``out_dir/results.jsonl`` and every line skipped, with why."""
    path = Path(out_dir) / RESULTS_FILE
    fd = open_results_file(path)
    if fd is None:
        return ResultsRead()
    rows: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    read = ResultsRead()
    with os.fdopen(fd, "rb") as fh:
        number = 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # drop the rest of an overlong line without holding it
                read.skipped.append((number, f"longer than {MAX_LINE_BYTES} bytes"))
                continue
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                read.skipped.append((number, "not JSON (torn by a kill?)"))
                continue  # that episode is simply not finished
            problem = row_problem(row)
            if problem is not None:
                read.skipped.append((number, problem))
                continue
            key = row["key"]
            if key in rows:
                if rows[key] != row:
                    differ = sorted(k for k in set(rows[key]) | set(row) if rows[key].get(k) != row.get(k))
                    raise ResultsError(
                        f"{path}: line {number} is a second, different row for episode {key} (first at line "
                        f"{first_line[key]}; they differ in {', '.join(differ[:5])}): results rows are unique "
                        f"by key, so one of them was edited or appended by hand; remove the wrong line")
                continue  # the same row twice: read once
            rows[key], first_line[key] = row, number
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
        fd = open_results_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        assert fd is not None  # O_CREAT
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
