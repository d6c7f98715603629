"""Task sources for MLE-bench competitions and MLE-Dojo boards.

- ``mlebench``: MLE-bench competitions. ``path`` is MLE-bench's data dir (``<id>/prepared/``), whose
  ``config.yaml`` / ``leaderboard.csv`` / ``description.md`` come from ``competitions_dir`` (mle-bench's
  ``mlebench/competitions``, found automatically when mle-bench is installed), or a folder of
  competition folders holding those files. The prepared data sits where MLE-bench's registry puts it (``mlebench/registry.py:92-100`` at
  783b15a): answers and sample submission at ``config.yaml``'s ``dataset`` paths relative to the
  data dir, the agent's folder at ``<data dir>/<id>/prepared/public``. The sample submission's
  name is read from the config (``sampleSubmission.csv``, ``sample_submission_null.csv``, or a
  file under ``prepared/private`` for text normalization). Medals follow MLE-bench's rules on
  ``leaderboard.csv`` (best first, every row a team). Metric, direction, id and target columns
  come from the shipped MLE-bench-lite list (``sandmle/graders/data/mlebench_lite.yaml``, read
  from each competition's ``grade.py``) or the ``metrics`` override.
- ``mledojo``: MLE-Dojo's prepared layout (``prepare/mle.py`` at 667a8fd): ``<comp>/data/public``
  (``sample_submission.csv``), ``<comp>/data/private/test_answer.csv`` and the boards
  ``<comp>/data/private/{private,public}_leaderboard.csv``; the repository's own layout
  (``<comp>/info/*_leaderboard.csv``) is read too. HumanRank averages the position score over
  both boards (``mledojo/gym/interface.py:549-603``); medals use MLE-bench's rules on the
  private board.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from sandmle.core.errors import TaskError
from sandmle.core.interfaces import ComponentConfig, TaskSource
from sandmle.core.task import Task, validate_task


@lru_cache(maxsize=1)
def lite_competitions() -> dict[str, dict[str, Any]]:
    """The 22 MLE-bench-lite competitions: metric, direction, data paths and columns of each."""
    text = resources.files("sandmle.graders").joinpath("data/mlebench_lite.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


class CompetitionsConfig(ComponentConfig):
    """Where the competitions are, plus metric overrides for competitions outside the lite list."""

    path: Path = Field(description="MLE-bench's data dir (``<id>/prepared/...``, e.g. ~/.cache/mle-bench/data), "
                                   "a folder of competition folders holding config.yaml, or one of either")
    competitions_dir: Path | None = Field(None, description="MLE-bench's mlebench/competitions folder (config.yaml, "
                                                            "leaderboard.csv, description.md per id); default: "
                                                            "the competition folder itself, else the installed "
                                                            "mlebench package's")
    data_dir: Path | None = Field(None, description="MLE-bench data dir that config.yaml's dataset paths "
                                                    "are relative to (default: ``path`` when it holds the "
                                                    "prepared data, else the competition folder's parent)")
    metrics: dict[str, str] = Field(default_factory=dict, description="competition id -> metric name")
    competitions: list[str] | None = Field(None, description="only these ids (default: every one found)")


def read_board(path: Path) -> list[float] | None:
    """The scores of a leaderboard CSV in file order, NaN rows kept (MLE-bench counts them as
    teams); the ``score`` column, else the second column as MLE-Dojo reads it. None when absent."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        if f.read(40).startswith(b"version https://git-lfs"):
            raise TaskError(f"{path} is a Git LFS pointer, not the leaderboard: run `git lfs pull` in the "
                            f"mle-bench checkout (MLE-bench ships its leaderboards through LFS)")
    import pandas as pd  # here, not at the top: every sandmle command loads this plugin

    frame = pd.read_csv(path)
    if frame.empty:
        return None
    column = frame["score"] if "score" in frame.columns else frame.iloc[:, min(1, frame.shape[1] - 1)]
    try:
        return pd.to_numeric(column, errors="raise").astype(float).tolist()
    except (TypeError, ValueError) as exc:
        raise TaskError(f"{path}: leaderboard scores are not numbers ({exc})") from exc


def _installed_competitions_dir() -> Path | None:
    """``mlebench/competitions`` of an installed mle-bench (located without importing it)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlebench")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "competitions").is_dir():
            return Path(location) / "competitions"
    return None


def _competition_dirs(cfg: CompetitionsConfig, markers: tuple[str, ...]) -> list[Path]:
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise TaskError(f"competition folder {root} does not exist")
    holds = lambda p: any((p / m).exists() for m in markers)  # noqa: E731
    dirs = [root] if holds(root) else sorted(p for p in root.iterdir() if p.is_dir() and holds(p))
    if cfg.competitions is not None:
        dirs = [d for d in dirs if d.name in cfg.competitions]
    if not dirs:
        raise TaskError(f"{root} holds no competitions (none of {', '.join(markers)} found)")
    return dirs


def _metric_info(comp_id: str, cfg: CompetitionsConfig) -> dict[str, Any]:
    from sandmle.graders.metrics import get_metric

    info = dict(lite_competitions().get(comp_id, {}))
    if comp_id in cfg.metrics:
        metric = get_metric(cfg.metrics[comp_id])
        info["metric"], info["lower_is_better"] = metric.name, metric.lower_is_better
    if "metric" not in info:
        raise TaskError(f"no metric known for competition {comp_id!r}; pass metrics: {{{comp_id}: <name>}}, "
                        f"or choose the competitions to load with competitions: [...]")
    return info


def _columns(comp_id: str, info: dict[str, Any], sample: Path) -> tuple[str, list[str]]:
    """(id column, target columns): the competition's own (its grade.py's) where known, else the
    sample submission's first column and the rest."""
    if not sample.is_file():
        raise TaskError(f"competition {comp_id!r}: sample submission {sample} not found")
    import pandas as pd

    header = [str(c) for c in pd.read_csv(sample, nrows=0).columns]
    id_column = info.get("id_column") if info.get("id_column") in header else header[0]
    targets = info.get("target_columns") or [c for c in header if c != id_column
                                             and c not in info.get("passthrough", [])]
    return id_column, list(targets)


def _build(comp_id: str, root: Path, public: Path, answers: Path, sample: Path, cfg: CompetitionsConfig,
           leaderboard: list[float] | None, public_board: list[float] | None, source: str) -> Task:
    info = _metric_info(comp_id, cfg)
    id_column, targets = _columns(comp_id, info, sample)
    task = Task(id=comp_id, root=root, public_dir=public, private_dir=answers.parent,
                metric=info["metric"], lower_is_better=bool(info["lower_is_better"]),
                id_column=id_column, target_columns=targets, modality=info.get("modality", "tabular"),
                task_type=info.get("task_type", "classification"), leaderboard=leaderboard,
                public_leaderboard=public_board, answers_path=answers, sample_submission=sample,
                format="mlebench", provenance={"source": source, "competition": comp_id,
                                               **{k: info[k] for k in ("score_rounding",) if k in info}})
    return validate_task(task)


class MLEBenchSource(TaskSource):
    """Prepared MLE-bench competitions, graded with MLE-bench's medal rules."""

    def __init__(self, config: CompetitionsConfig):
        self.config = config

    def tasks(self) -> list[Task]:
        # a competition folder (config.yaml) or a prepared-data folder (prepared/) per id
        return [self._load(d) for d in _competition_dirs(self.config, ("config.yaml", "prepared"))]

    def _meta_dir(self, found: Path) -> Path:
        """Where config.yaml, leaderboard.csv and description.md of competition ``found`` live."""
        if self.config.competitions_dir is not None:
            return Path(self.config.competitions_dir).expanduser() / found.name
        if (found / "config.yaml").is_file():
            return found
        installed = _installed_competitions_dir()
        return installed / found.name if installed is not None else found

    def _load(self, found: Path) -> Task:
        comp = self._meta_dir(found)
        meta: dict[str, Any] = {}
        if (comp / "config.yaml").is_file():
            try:
                meta = yaml.safe_load((comp / "config.yaml").read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise TaskError(f"{comp / 'config.yaml'}: invalid YAML: {exc}") from exc
        comp_id = str(meta.get("id", found.name))
        if self.config.data_dir is not None:
            data_dir = Path(self.config.data_dir).expanduser()
        else:
            data_dir = found.parent if (found / "prepared").is_dir() or not (found / "config.yaml").is_file() \
                else comp.parent
        known = lite_competitions().get(comp_id, {})
        dataset = {**{k: known[k] for k in ("answers", "sample_submission") if k in known},
                   **(meta.get("dataset") or {})}
        answers = data_dir / dataset.get("answers", f"{comp_id}/prepared/private/test.csv")
        sample = data_dir / dataset.get("sample_submission", f"{comp_id}/prepared/public/sample_submission.csv")
        public = data_dir / comp_id / "prepared" / "public"
        board = read_board(comp / "leaderboard.csv")
        if board is None:  # MLE-bench asserts it exists (mlebench/data.py:403-405)
            raise TaskError(f"competition {comp_id!r}: no leaderboard.csv in {comp}; point competitions_dir at "
                            f"mle-bench's mlebench/competitions (after `git lfs pull`)")
        if not (public / "description.md").exists() and (comp / "description.md").exists() and public.is_dir():
            # MLE-bench keeps description.md next to config.yaml; agents read it from public/.
            try:
                (public / "description.md").write_text((comp / "description.md").read_text(encoding="utf-8"),
                                                       encoding="utf-8")
            except OSError as exc:
                raise TaskError(f"cannot copy description.md into {public}: {exc}") from exc
        return _build(comp_id, comp, public, answers, sample, self.config, board, None, "mlebench")


class MLEDojoSource(TaskSource):
    """MLE-Dojo competitions with their public and private ``rank,score`` leaderboards."""

    def __init__(self, config: CompetitionsConfig):
        self.config = config

    def tasks(self) -> list[Task]:
        return [self._load(d) for d in _competition_dirs(self.config, ("data/private", "info"))]

    def _load(self, comp: Path) -> Task:
        boards: dict[str, list[float] | None] = {}
        for kind in ("private", "public"):
            # prepared data keeps the boards in data/private/ (prepare/mle.py:84-101); the
            # repository keeps them in info/
            found = [read_board(d / f"{kind}_leaderboard.csv") for d in (comp / "data/private", comp / "info")]
            boards[kind] = next((b for b in found if b is not None), None)
        private, public = boards["private"], boards["public"]
        if private is None and public is None:
            raise TaskError(f"competition {comp.name!r}: no private_leaderboard.csv or public_leaderboard.csv "
                            f"in data/private/ or info/")
        return _build(comp.name, comp, comp / "data/public", comp / "data/private/test_answer.csv",
                      comp / "data/public/sample_submission.csv", self.config, private or public,
                      public if private else None, "mledojo")


def make_mlebench(config: CompetitionsConfig) -> MLEBenchSource:
    return MLEBenchSource(config)


def make_mledojo(config: CompetitionsConfig) -> MLEDojoSource:
    return MLEDojoSource(config)
