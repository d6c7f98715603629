"""Checkpoints on disk: which are complete, which is the latest, which model a path means.

Layout of a train output directory::

    OUT/checkpoint-<step>/         model (or LoRA adapter) + tokenizer + optimizer state + ...
    OUT/checkpoint-<step>/sandmle_checkpoint.json   written LAST: the checkpoint is complete
    OUT/final/                     the finished model (LoRA merged), written at the end
    OUT/train.json                 resolved train settings (base model of an adapter)
    OUT/metrics.jsonl, OUT/tensorboard/, OUT/rollouts/

A process killed while saving leaves a checkpoint folder without the marker; it is never
resumed from and is removed on the next start, so a ``kill -9`` loses at most the step in
flight (with ``save_every: 1``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

MARKER = "sandmle_checkpoint.json"
FINAL = "final"
TRAIN_INFO = "train.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def mark_complete(checkpoint: Path, step: int, **info: Any) -> None:
    """Declare ``checkpoint`` complete (call after every file of it is written)."""
    write_json_atomic(Path(checkpoint) / MARKER, {"step": step, "saved_at": time.time(), **info})


def _numbered(out: Path) -> list[tuple[int, Path]]:
    if not Path(out).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(out).iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


def complete_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint under ``out``, oldest first."""
    return [(s, p) for s, p in _numbered(out) if (p / MARKER).is_file()]


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``out`` (None if there is none)."""
    done = complete_checkpoints(out)
    return done[-1][1] if done else None


def remove_incomplete(out: Path) -> list[Path]:
    """Delete checkpoint folders a killed process left half-written; returns what was removed."""
    removed = []
    for _, path in _numbered(out):
        if not (path / MARKER).is_file():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prune(out: Path, keep: int) -> None:
    """Keep only the ``keep`` newest complete checkpoints."""
    done = complete_checkpoints(out)
    for _, path in done[:-keep] if keep > 0 else done:
        shutil.rmtree(path, ignore_errors=True)


def resolve_model_dir(path: str | Path) -> Path:
    """The model folder a user means by ``path``: a train output directory means its ``final``
    model when training finished, else its newest complete checkpoint; anything else is itself."""
    path = Path(path)
    if (path / FINAL / "config.json").is_file() or (path / FINAL / "adapter_config.json").is_file():
        return path / FINAL
    latest = latest_checkpoint(path)
    return latest if latest is not None else path


def train_info(model_dir: Path) -> dict[str, Any]:
    """The ``train.json`` of the train run a checkpoint folder belongs to (empty if none)."""
    for folder in (Path(model_dir), Path(model_dir).parent):
        info = folder / TRAIN_INFO
        if info.is_file():
            return json.loads(info.read_text(encoding="utf-8"))
    return {}
