"""SFT data from trajectories: pick episodes of evaluation runs by a rule, split off held-out
tasks, write chat transcripts as JSONL (``sandmle trajectories export``).

Each output line is ``{"messages": [...], "task_id", "scaffold", "policy", "reward", "tier",
"source"}``: the episode's final transcript, which the ``sft`` trainer tokenises with the
policy's chat template and masks to the assistant replies. The held-out split is by *task*, so
no held-out task is ever trained on; it is a deterministic function of the task id and the seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandmle.core.errors import SandmleError

FilterRule = Literal["all", "valid", "above_median", "medal"]
FILTER_RULES: tuple[str, ...] = ("all", "valid", "above_median", "medal")


@dataclass
class EpisodeRecord:
    """One graded episode found in a run directory."""

    task_id: str
    scaffold: str
    policy: str
    messages: list[dict[str, Any]]
    grade: dict[str, Any]
    reward: float | None
    stop_reason: str
    source: str

    @property
    def tier(self) -> str:
        g = self.grade
        if not g.get("valid_submission"):
            return "invalid"
        for name in ("gold", "silver", "bronze"):
            if g.get(f"{name}_medal"):
                return name
        return "median" if g.get("at_or_above_median") else "valid"


def passes(record: EpisodeRecord, rule: str) -> bool:
    """Whether an episode meets the rule: ``valid`` submission, ``above_median`` (MLE-bench's
    strict rule), any ``medal``, or ``all``."""
    g = record.grade
    if rule == "all":
        return True
    if rule == "valid":
        return bool(g.get("valid_submission"))
    if rule == "above_median":
        return bool(g.get("valid_submission") and g.get("above_median"))
    if rule == "medal":
        return bool(g.get("valid_submission") and g.get("any_medal"))
    raise SandmleError(f"unknown filter {rule!r}; choose one of {', '.join(FILTER_RULES)}")


def is_heldout(task_id: str, fraction: float, seed: int = 0) -> bool:
    """Deterministic task-level split: the same task is always on the same side."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _record_from(data: dict[str, Any], source: str) -> EpisodeRecord | None:
    traj = data.get("trajectory")
    if not isinstance(traj, dict) or not traj.get("messages"):
        return None
    episode = data.get("episode") or {}
    reward = (data.get("reward") or {}).get("total")
    return EpisodeRecord(task_id=str(traj.get("task_id") or episode.get("task_id")),
                         scaffold=str(episode.get("scaffold") or traj.get("scaffold")),
                         policy=str(episode.get("policy") or episode.get("backend") or traj.get("backend")),
                         messages=list(traj["messages"]), grade=dict(data.get("grade") or {}),
                         reward=reward, stop_reason=str(traj.get("stop_reason")), source=source)


def _records_in_file(path: Path, root: Path) -> Iterator[EpisodeRecord]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of a killed writer
            if isinstance(data, dict):
                rec = _record_from(data, f"{path.relative_to(root) if path.is_relative_to(root) else path}:{n}")
                if rec is not None:
                    yield rec


def read_episodes(run_dir: Path) -> list[EpisodeRecord]:
    """Graded episodes under ``run_dir``: an evaluation run (its ``results.jsonl`` says which
    trajectories finished), any folder of trajectory JSONL records (``sandmle rollout``), or
    one such file."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return list(_records_in_file(run_dir, run_dir.parent))
    if not run_dir.is_dir():
        raise SandmleError(f"{run_dir}: no such run directory or trajectory file")
    results = run_dir / "results.jsonl"
    if results.is_file():
        from sandmle.evaluation.store import read_results

        files = sorted({row["trajectory"] for row in read_results(run_dir)
                        if row.get("status") == "ok" and row.get("trajectory")})
        paths = [run_dir / f for f in files if (run_dir / f).is_file()]
    else:
        paths = sorted(p for p in run_dir.rglob("*.jsonl") if p.name != "metrics.jsonl")
    return [rec for p in paths for rec in _records_in_file(p, run_dir)]


@dataclass
class ExportSummary:
    """What an export read and wrote."""

    episodes: int = 0
    kept: int = 0
    train: int = 0
    heldout: int = 0
    train_tasks: set[str] = field(default_factory=set)
    heldout_tasks: set[str] = field(default_factory=set)
    tiers: dict[str, int] = field(default_factory=dict)
    train_path: Path | None = None
    heldout_path: Path | None = None


def heldout_path_for(out: Path) -> Path:
    """``sft.jsonl`` -> ``sft.heldout.jsonl``."""
    return out.with_name(out.stem + ".heldout" + (out.suffix or ".jsonl"))


def export_sft_data(run_dirs: list[Path], rule: str, out: Path, *, heldout: float = 0.2, seed: int = 0,
                    scaffold: str | None = None) -> ExportSummary:
    """Write the episodes of ``run_dirs`` that pass ``rule`` (optionally one scaffold's only) to
    ``out`` and those of held-out tasks to :func:`heldout_path_for` ``(out)``."""
    if rule not in FILTER_RULES:
        raise SandmleError(f"unknown filter {rule!r}; choose one of {', '.join(FILTER_RULES)}")
    if not 0 <= heldout < 1:
        raise SandmleError(f"--heldout must be in [0, 1), got {heldout}")
    summary = ExportSummary(train_path=Path(out), heldout_path=heldout_path_for(Path(out)))
    lines: dict[bool, list[str]] = {False: [], True: []}
    for run_dir in run_dirs:
        for rec in read_episodes(Path(run_dir)):
            summary.episodes += 1
            if (scaffold and rec.scaffold != scaffold) or not passes(rec, rule):
                continue
            summary.kept += 1
            summary.tiers[rec.tier] = summary.tiers.get(rec.tier, 0) + 1
            side = is_heldout(rec.task_id, heldout, seed)
            (summary.heldout_tasks if side else summary.train_tasks).add(rec.task_id)
            lines[side].append(json.dumps({"messages": rec.messages, "task_id": rec.task_id,
                                           "scaffold": rec.scaffold, "policy": rec.policy,
                                           "reward": rec.reward, "tier": rec.tier,
                                           "source": rec.source}))
    summary.train, summary.heldout = len(lines[False]), len(lines[True])
    for side, path in ((False, summary.train_path), (True, summary.heldout_path)):
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines[side]), encoding="utf-8")
    return summary


def read_sft_data(path: Path) -> list[dict[str, Any]]:
    """Rows of an exported SFT file (each has ``messages``); bad lines are errors with their number."""
    path = Path(path)
    if not path.is_file():
        raise SandmleError(f"SFT data file not found: {path} (make one with `sandmle trajectories export`)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SandmleError(f"{path}:{n}: not JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise SandmleError(f"{path}:{n}: a row needs a 'messages' list")
        rows.append(row)
    return rows
