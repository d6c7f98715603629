"""Task sources ``directory`` and ``sandmle-release``, and exporting to SandMLE's released layout.

SandMLE's release keeps ``answer.csv`` and ``evaluator.py`` *inside* ``prepared/public/``; a
task loaded from it lists both in ``Task.hidden_files`` (so no sandbox ever copies them) and is
graded by running its own ``evaluator.py``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pandas as pd

from sandmle.core.errors import TaskError
from sandmle.core.interfaces import TaskSource
from sandmle.core.task import PUBLIC, Task, load_task, validate_task

from .configs import PathConfig
from .evaluator import evaluator_source


def _task_dirs(root: Path, marker: str) -> list[Path]:
    """``root`` itself when it holds ``marker``, else its sub-folders that do (sorted)."""
    if not root.is_dir():
        raise TaskError(f"task folder {root} does not exist")
    if (root / marker).exists():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / marker).exists())
    if not found:
        raise TaskError(f"{root} holds no tasks (no {marker} in it or in its sub-folders)")
    return found


#: How far below its folder the ``directory`` source looks for tasks: a run's ``tasks/`` folder
#: holds task-set folders that hold the tasks (depth 2); one more level for a folder of runs.
DIRECTORY_SEARCH_DEPTH = 3
#: Folders looked into at most (pointing the source at / or a home folder must not walk it all).
DIRECTORY_SEARCH_FOLDERS = 20_000


def find_task_folders(root: Path, marker: str = "task.yaml", max_depth: int = DIRECTORY_SEARCH_DEPTH,
                      max_folders: int = DIRECTORY_SEARCH_FOLDERS) -> list[Path]:
    """Task folders under ``root``: ``root`` itself when it holds ``marker``, else every folder
    down to ``max_depth`` levels below it that does (sorted by path). A task folder is not
    searched further; hidden folders (``.invalid``, where generation moves broken candidates)
    and symbolic links are skipped. The error says exactly where it looked."""
    if not root.is_dir():
        raise TaskError(f"task folder {root} does not exist")
    if (root / marker).is_file():
        return [root]
    found: list[Path] = []
    level, looked, depth = [root], 0, 0
    while level and depth < max_depth and looked < max_folders:
        depth += 1
        below: list[Path] = []
        for folder in level:
            try:
                children = sorted(folder.iterdir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
                    continue
                looked += 1
                if (child / marker).is_file():
                    found.append(child)
                else:
                    below.append(child)
                if looked >= max_folders:
                    break
        level = below
    if not found:
        limit = (f"; stopped after {max_folders} folders" if looked >= max_folders else "")
        raise TaskError(f"{root} holds no tasks: no {marker} in it or in the {looked} folder(s) up to "
                        f"{max_depth} levels below it (hidden folders and links skipped{limit})")
    return sorted(found)


class DirectorySource(TaskSource):
    """Tasks in the toolkit's own format (``task.yaml`` + ``prepared/``): one task folder, a
    folder of task folders, or a folder of those (a run's ``tasks/`` folder), searched down to
    :data:`DIRECTORY_SEARCH_DEPTH` levels."""

    def __init__(self, config: PathConfig):
        self.root = Path(config.path)

    def tasks(self) -> list[Task]:
        return [load_task(d) for d in find_task_folders(self.root, "task.yaml")]


# How a release evaluator states its direction: SandMLE's JSON key is ``is_lower_better``
# (deepresearch_tools.py:780-782); ``lower_is_better`` / ``higher_is_better`` spellings occur too,
# and the value may be a literal, a quoted string or a number ("true", 1: the release's parse_bool).
_DIRECTION = re.compile(r"""["']?(is_lower_better|lower_is_better|is_higher_better|higher_is_better)["']?"""
                        r"""\s*[:=]\s*["']?(True|False|true|false|yes|no|1|0)\b""", re.IGNORECASE)


def _release_direction(evaluator_text: str) -> bool:
    """``lower_is_better`` as the evaluator's source states it (False when it does not say).

    Only a first guess: grading takes the direction from the evaluator's JSON output."""
    match = _DIRECTION.search(evaluator_text)
    if match is None:
        return False
    value = match.group(2).lower() in {"true", "1", "yes"}
    return value if "lower" in match.group(1).lower() else not value


def load_release_task(root: Path) -> Task:
    """One task folder of SandMLE's release (answers and evaluator inside ``public/``)."""
    public = root / PUBLIC
    evaluator, answers = public / "evaluator.py", public / "answer.csv"
    if not evaluator.is_file():
        raise TaskError(f"{root}: no {PUBLIC}/evaluator.py (not a SandMLE release task)")
    sample = public / "sample_submission.csv"
    columns = [str(c) for c in pd.read_csv(sample, nrows=0).columns] if sample.is_file() else []
    task = Task(id=root.name, root=root, public_dir=public, private_dir=None, metric="evaluator",
                lower_is_better=_release_direction(evaluator.read_text(encoding="utf-8", errors="replace")),
                id_column=columns[0] if columns else "id", target_columns=columns[1:],
                answers_path=answers, evaluator_path=evaluator, format="sandmle-release",
                provenance={"source": "sandmle-release"})
    return validate_task(task)


class SandmleReleaseSource(TaskSource):
    """SandMLE's released task bundle, loaded as-is."""

    def __init__(self, config: PathConfig):
        self.root = Path(config.path)

    def tasks(self) -> list[Task]:
        return [load_release_task(d) for d in _task_dirs(self.root, str(PUBLIC / "evaluator.py"))]


def export_release(task: Task, out_root: Path) -> Path:
    """Write ``task`` in SandMLE's released layout under ``out_root/<task id>/``; return that folder."""
    if task.answers_path is None or not task.target_columns:
        raise TaskError(f"task {task.id!r} has no answers/target columns to export")
    dest = Path(out_root) / task.id / PUBLIC
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in task.public_files():
        target = dest / path.relative_to(task.public_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shutil.copy2(task.answers_path, dest / "answer.csv")
    th = task.thresholds.model_dump() if task.thresholds else {}
    (dest / "evaluator.py").write_text(evaluator_source(task.metric, task.target_columns, task.id_column, th,
                                                        task.lower_is_better, answers_file="answer.csv"),
                                       encoding="utf-8")
    return dest.parent.parent


OK_LIST = "ok_competitions_sanity.json"
OK_LIST_SAMPLED = "ok_competitions_sanity_random_64.json"


def passes_sanity(task: Task) -> bool:
    """SandMLE's sanity filter as far as the task itself can tell: all four thresholds present and
    strictly monotone in the task's direction (generation also checked they beat the sample)."""
    return task.thresholds is not None and task.thresholds.is_monotone(task.lower_is_better)


def write_release_lists(out_root: Path, task_ids: list[str], seed: int = 0) -> list[str]:
    """Write the release's task lists at ``out_root``: ``ok_competitions_sanity.json`` (the release's
    ``prepare_train_data.py`` and ``custom_evaluate.py --dataset synthetic`` refuse to start without
    it) and ``ok_competitions_sanity_random_64.json`` (``--dataset synthetic_sampled``: a seeded
    sample of at most 64). Ids already listed by an earlier export into ``out_root`` are kept when
    their folders are still there. Returns the full sorted list."""
    out_root = Path(out_root)
    listed: set[str] = set(task_ids)
    previous = out_root / OK_LIST
    if previous.is_file():
        try:
            old = json.loads(previous.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            old = []
        listed |= {str(t) for t in old if isinstance(t, str)} if isinstance(old, list) else set()
    ids = sorted(t for t in listed if (out_root / t / PUBLIC / "description.md").is_file())
    (out_root / OK_LIST).write_text(json.dumps(ids, indent=2) + "\n", encoding="utf-8")
    sample = sorted(random.Random(seed).sample(ids, min(64, len(ids))))
    (out_root / OK_LIST_SAMPLED).write_text(json.dumps(sample, indent=2) + "\n", encoding="utf-8")
    return ids


def make_directory(config: PathConfig) -> DirectorySource:
    """Factory registered as task source ``directory``."""
    return DirectorySource(config)


def make_release(config: PathConfig) -> SandmleReleaseSource:
    """Factory registered as task source ``sandmle-release``."""
    return SandmleReleaseSource(config)
