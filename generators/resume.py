"""What a (possibly killed) generation run left in its output folder, checked before a rerun
counts it: a task folder counts as done only if it loads and validates as a task; a corrupt or
incomplete one is moved aside to ``.invalid/`` (its candidate is generated again); a torn or
foreign line in ``rejections.jsonl`` is skipped (that candidate is tried again).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandmle.core.errors import TaskError
from sandmle.core.task import load_task

REJECTIONS = "rejections.jsonl"
INVALID_DIR = ".invalid"


@dataclass
class DoneTask:
    """A verified task folder of an earlier run."""

    index: int
    task_id: str
    path: Path
    meta: dict[str, Any]


@dataclass
class ResumeState:
    """Verified tasks by candidate index, every index already decided, and what was skipped."""

    done: dict[int, DoneTask] = field(default_factory=dict)
    rejected: set[int] = field(default_factory=set)
    moved_aside: list[str] = field(default_factory=list)  # "name: why"
    bad_rejection_lines: int = 0

    @property
    def seen(self) -> set[int]:
        return set(self.done) | self.rejected

    def describe(self) -> str | None:
        """One line on what was skipped (None when nothing was)."""
        parts = []
        if self.moved_aside:
            parts.append(f"{len(self.moved_aside)} invalid task folder(s) moved to {INVALID_DIR}/ and generated "
                         f"again ({'; '.join(self.moved_aside[:3])}{' ...' if len(self.moved_aside) > 3 else ''})")
        if self.bad_rejection_lines:
            parts.append(f"{self.bad_rejection_lines} unreadable line(s) in {REJECTIONS} skipped")
        return "; ".join(parts) or None


def _index_of(meta: Any) -> int | None:
    prov = meta.get("provenance") if isinstance(meta, dict) else None
    index = prov.get("index") if isinstance(prov, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None


def _move_aside(out: Path, folder: Path) -> None:
    target = out / INVALID_DIR / f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
    target.parent.mkdir(exist_ok=True)
    try:
        folder.rename(target)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)


def scan_output(out: Path, verify: bool = True) -> ResumeState:
    """The resume state of generation folder ``out`` (see the module docstring). ``verify``:
    load and validate each task (False: trust any parseable task.yaml with an index)."""
    state = ResumeState()
    out = Path(out)
    if not out.is_dir():
        return state
    for meta_path in sorted(out.glob("*/task.yaml")):
        folder = meta_path.parent
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            meta, why = None, f"unreadable task.yaml ({type(exc).__name__})"
        else:
            why = None
        index = _index_of(meta)
        if index is None:
            if why is None and isinstance(meta, dict) and isinstance(meta.get("provenance"), dict) \
                    and "index" not in meta["provenance"]:
                continue  # a task another tool put here, not one of this generator's candidates
            why = why or "task.yaml without a candidate index"
        elif index in state.done:
            why = f"same candidate index {index} as {state.done[index].task_id}"
        elif verify:
            try:
                load_task(folder)
            except (TaskError, OSError, ValueError) as exc:
                why = str(exc).splitlines()[-1].strip()[:200]
        if why is not None:
            state.moved_aside.append(f"{folder.name}: {why}")
            _move_aside(out, folder)
            continue
        state.done[index] = DoneTask(index, str(meta.get("id", folder.name)), folder, meta)
    state.rejected, state.bad_rejection_lines = _read_rejections(out / REJECTIONS)
    return state


def _read_rejections(path: Path) -> tuple[set[int], int]:
    """Indices in ``rejections.jsonl`` and the number of lines that could not be read; a torn
    last line (a kill mid-write) is ended so the next record starts on a line of its own."""
    if not path.is_file():
        return set(), 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")
    indices, bad = set(), 0
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            index = json.loads(line).get("index")
        except (ValueError, AttributeError):
            index = None
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            indices.add(index)
        else:
            bad += 1
    return indices, bad
