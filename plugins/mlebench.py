"""Entry-point plugin ``mlebench``: task sources for MLE-bench competitions and MLE-Dojo boards.

- ``mlebench``: a prepared MLE-bench competition folder (``config.yaml``, ``description.md``,
  ``leaderboard.csv`` and the prepared data, ``prepared/public`` + ``prepared/private``), or a
  folder of such competitions. Medals follow MLE-bench's rules from ``leaderboard.csv`` (best
  first, as MLE-bench ships it). The metric comes from the shipped MLE-bench-lite list
  (``sandmle/graders/data/mlebench_lite.yaml``) or the ``metrics`` override.
- ``mledojo``: MLE-Dojo's layout (``<comp>/data/public``, ``<comp>/data/private/test_answer.csv``,
  ``<comp>/info/{private,public}_leaderboard.csv`` with ``rank,score``): HumanRank averages the
  position score over both boards; medals use MLE-bench's rules on the private board.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import Field

from sandmle.core.errors import TaskError
from sandmle.core.hookspecs import hookimpl
from sandmle.core.interfaces import ComponentConfig, TaskSource
from sandmle.core.task import Task, validate_task


@lru_cache(maxsize=1)
def lite_competitions() -> dict[str, dict[str, Any]]:
    """The 22 MLE-bench-lite competitions with the metric, direction and modality of each."""
    text = resources.files("sandmle.graders").joinpath("data/mlebench_lite.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


class CompetitionsConfig(ComponentConfig):
    """Where the competitions are, plus metric overrides for competitions outside the lite list."""

    path: Path = Field(description="one competition folder, or a folder of them")
    data_dir: Path | None = Field(None, description="MLE-bench data dir that config.yaml's dataset paths "
                                                    "are relative to (default: the competition's parent)")
    metrics: dict[str, str] = Field(default_factory=dict, description="competition id -> metric name")
    competitions: list[str] | None = Field(None, description="only these ids (default: every one found)")


def _board(path: Path) -> list[float] | None:
    """The ``score`` column of a leaderboard CSV, in file order (None when absent)."""
    if not path.is_file():
        return None
    scores = pd.read_csv(path)["score"].dropna().astype(float).tolist()
    return scores or None


def _competition_dirs(cfg: CompetitionsConfig, marker: str) -> list[Path]:
    root = Path(cfg.path)
    if not root.is_dir():
        raise TaskError(f"competition folder {root} does not exist")
    dirs = [root] if (root / marker).exists() else sorted(p for p in root.iterdir() if (p / marker).exists())
    if cfg.competitions is not None:
        dirs = [d for d in dirs if d.name in cfg.competitions]
    if not dirs:
        raise TaskError(f"{root} holds no competitions (no {marker} found)")
    return dirs


def _metric_info(comp_id: str, cfg: CompetitionsConfig) -> dict[str, Any]:
    from sandmle.graders.metrics import get_metric

    info = dict(lite_competitions().get(comp_id, {}))
    if comp_id in cfg.metrics:
        info["metric"] = get_metric(cfg.metrics[comp_id]).name
        info["lower_is_better"] = get_metric(cfg.metrics[comp_id]).lower_is_better
    if "metric" not in info:
        raise TaskError(f"no metric known for competition {comp_id!r}; pass metrics: {{{comp_id}: <name>}}")
    return info


def _build(comp_id: str, root: Path, public: Path, answers: Path, cfg: CompetitionsConfig,
           leaderboard: list[float] | None, public_board: list[float] | None, source: str) -> Task:
    info = _metric_info(comp_id, cfg)
    sample = public / "sample_submission.csv"
    if not sample.is_file():
        raise TaskError(f"competition {comp_id!r}: missing {sample}")
    columns = [str(c) for c in pd.read_csv(sample, nrows=0).columns]
    task = Task(id=comp_id, root=root, public_dir=public, private_dir=answers.parent,
                metric=info["metric"], lower_is_better=bool(info["lower_is_better"]),
                id_column=columns[0], target_columns=columns[1:], modality=info.get("modality", "tabular"),
                task_type=info.get("task_type", "classification"), leaderboard=leaderboard,
                public_leaderboard=public_board, answers_path=answers, format="mlebench",
                provenance={"source": source, "competition": comp_id})
    return validate_task(task)


class MLEBenchSource(TaskSource):
    """Prepared MLE-bench competitions, graded with MLE-bench's medal rules."""

    def __init__(self, config: CompetitionsConfig):
        self.config = config

    def tasks(self) -> list[Task]:
        return [self._load(d) for d in _competition_dirs(self.config, "config.yaml")]

    def _load(self, comp: Path) -> Task:
        meta = yaml.safe_load((comp / "config.yaml").read_text(encoding="utf-8")) or {}
        comp_id = str(meta.get("id", comp.name))
        data_dir = Path(self.config.data_dir) if self.config.data_dir else comp.parent
        dataset = meta.get("dataset") or {}
        answers = data_dir / dataset["answers"] if "answers" in dataset else comp / "prepared/private/test.csv"
        sample = data_dir / dataset["sample_submission"] if "sample_submission" in dataset else None
        public = sample.parent if sample is not None else comp / "prepared/public"
        if not (public / "description.md").exists() and (comp / "description.md").exists():
            # MLE-bench keeps description.md next to config.yaml; agents read it from public/.
            try:
                (public / "description.md").write_text((comp / "description.md").read_text(encoding="utf-8"),
                                                       encoding="utf-8")
            except OSError as exc:  # a read-only data dir: the agent simply gets no description file
                raise TaskError(f"cannot copy description.md into {public}: {exc}") from exc
        return _build(comp_id, comp, public, answers, self.config, _board(comp / "leaderboard.csv"), None,
                      "mlebench")


class MLEDojoSource(TaskSource):
    """MLE-Dojo competitions with their public and private ``rank,score`` leaderboards."""

    def __init__(self, config: CompetitionsConfig):
        self.config = config

    def tasks(self) -> list[Task]:
        return [self._load(d) for d in _competition_dirs(self.config, "info")]

    def _load(self, comp: Path) -> Task:
        private = _board(comp / "info/private_leaderboard.csv")
        public = _board(comp / "info/public_leaderboard.csv")
        if private is None and public is None:
            raise TaskError(f"competition {comp.name!r}: no info/private_leaderboard.csv or public_leaderboard.csv")
        return _build(comp.name, comp, comp / "data/public", comp / "data/private/test_answer.csv", self.config,
                      private or public, public if private else None, "mledojo")


def _make_mlebench(config: CompetitionsConfig) -> MLEBenchSource:
    return MLEBenchSource(config)


def _make_mledojo(config: CompetitionsConfig) -> MLEDojoSource:
    return MLEDojoSource(config)


@hookimpl
def register_task_sources(register: Any) -> None:
    register("mlebench", _make_mlebench, config=CompetitionsConfig,
             description="prepared MLE-bench competitions (config.yaml, leaderboard.csv): MLE-bench medal rules")
    register("mledojo", _make_mledojo, config=CompetitionsConfig,
             description="MLE-Dojo competitions with public/private rank,score boards for HumanRank")
