"""Episode identity and the append-only results store (``results.jsonl``).

One line per *finished* episode. Appends are single ``write`` calls of one complete line on an
``O_APPEND`` descriptor followed by ``fsync``, under an exclusive ``flock`` so concurrent writers
(threads, processes) never interleave. A process killed mid-write can leave at most one torn last
line: :func:`read_results` skips lines that do not parse, and the next append starts on a fresh
line, so a resumed run never loses or duplicates a finished episode.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"


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
    """All complete result rows in ``out_dir/results.jsonl`` (torn or foreign lines skipped).

    If an episode key appears twice (it cannot via :class:`ResultsStore`, but files may be
    concatenated by hand) the last row wins.
    """
    path = Path(out_dir) / RESULTS_FILE
    if not path.exists():
        return []
    rows: dict[str, dict[str, Any]] = {}
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: that episode is simply not finished
            if isinstance(row, dict) and "key" in row:
                rows[row["key"]] = row
    return list(rows.values())


class ResultsStore:
    """Appends finished-episode rows to ``results.jsonl`` atomically; knows what is finished."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RESULTS_FILE
        self.finished: set[str] = {row["key"] for row in read_results(self.out_dir)}

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
