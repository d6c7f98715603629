"""The on-disk task format and its in-memory model.

Layout (compatible with SandMLE's released layout)::

    <task_id>/
      task.yaml                      # metadata: metric, direction, columns, thresholds, provenance
      prepared/public/               # everything an agent may see
        description.md  train.csv  test.csv  sample_submission.csv  [...]
      prepared/private/              # never enters a sandbox
        answers.csv  evaluator.py

A task from SandMLE's own release keeps ``answer.csv`` and ``evaluator.py`` *inside* ``public/``;
such files are listed in :attr:`Task.hidden_files` and filtered out of everything an agent sees.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import SandmleError, TaskError

Modality = Literal["tabular", "text", "image", "time_series", "audio", "graph", "multimodal"]


class MedalThresholds(BaseModel):
    """Score thresholds for gold/silver/bronze and the median, in the metric's own units."""

    gold: float
    silver: float
    bronze: float
    median: float

    def is_monotone(self, lower_is_better: bool) -> bool:
        """True when gold is strictly better than silver, silver than bronze, bronze than median."""
        seq = [self.gold, self.silver, self.bronze, self.median]
        pairs = list(zip(seq, seq[1:]))
        return all(a < b for a, b in pairs) if lower_is_better else all(a > b for a, b in pairs)


class Task(BaseModel):
    """A loaded task. ``public_dir`` minus ``hidden_files`` is all an agent may see.

    Attributes:
        id: Unique, stable name (studies resume by it).
        root: The task folder.
        public_dir: Files copied into every sandbox session (``prepared/public``).
        private_dir: Where the hidden files live (``prepared/private``), if anywhere.
        metric: Name of the metric (``sandmle.graders.metrics``), or ``evaluator`` when the task's
            own ``evaluator.py`` grades it.
        lower_is_better: The metric's direction.
        id_column: Column that identifies rows of ``test.csv`` and of a submission.
        target_columns: Columns a submission must predict.
        modality: ``tabular``, ``text``, ``image``, ``time_series``, ``audio``, ``graph`` or
            ``multimodal``.
        task_type: ``classification``, ``regression``, ``forecasting``, ...
        thresholds: Medal thresholds (gold, silver, bronze, median) in the metric's units.
        leaderboard: Scores of a human leaderboard, best first (MLE-bench's leaderboard.csv),
            for HumanRank.
        public_leaderboard: MLE-Dojo's public board, when the task has one.
        answers_path: The hidden answers; never copied into a sandbox.
        evaluator_path: The task's own evaluator script; never copied into a sandbox.
        hidden_files: Files inside ``public_dir`` that agents must not see (SandMLE's release
            keeps ``answer.csv`` and ``evaluator.py`` there).
        format: The layout it was loaded from: ``sandmle``, ``sandmle-release`` or ``mlebench``.
        provenance: Where the task came from (generator, seed task, source), free-form.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    root: Path
    public_dir: Path
    private_dir: Path | None = None
    metric: str
    lower_is_better: bool
    id_column: str = "id"
    target_columns: list[str] = Field(default_factory=list)
    modality: Modality = "tabular"
    task_type: str = "classification"
    thresholds: MedalThresholds | None = None
    leaderboard: list[float] | None = None  # best first, as MLE-bench's leaderboard.csv
    public_leaderboard: list[float] | None = None  # MLE-Dojo keeps a public and a private board
    answers_path: Path | None = None
    evaluator_path: Path | None = None
    # MLE-bench names it per competition (``sampleSubmission.csv``, ``sample_submission_null.csv``,
    # or a file under ``private/``); None means ``public_dir / "sample_submission.csv"``.
    sample_submission: Path | None = None
    hidden_files: list[Path] = Field(default_factory=list)
    format: Literal["sandmle", "sandmle-release", "mlebench"] = "sandmle"
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hidden_answers_stay_hidden(self) -> "Task":
        # The answers and the evaluator may sit inside public/ (SandMLE's release): hide them.
        for path in (self.answers_path, self.evaluator_path):
            if path is not None and is_within(path, self.public_dir) and path not in self.hidden_files:
                self.hidden_files.append(path)
        return self

    def public_files(self) -> list[Path]:
        """Every file under ``public_dir`` an agent may see (hidden files removed)."""
        hidden = {p.resolve() for p in self.hidden_files}
        return sorted(  # no hidden files (most tasks): no path of hundreds of media files to resolve
            p for p in self.public_dir.rglob("*")
            if p.is_file() and not (hidden and p.resolve() in hidden) and not p.is_symlink()
        )

    @property
    def sample_submission_path(self) -> Path:
        """The task's sample submission (it may sit outside ``public_dir``, as in MLE-bench)."""
        return self.sample_submission or self.public_dir / "sample_submission.csv"

    @property
    def description(self) -> str:
        path = self.public_dir / "description.md"
        try:
            return read_task_text(path)
        except TaskError:
            return ""  # validate_task names the fault; an agent gets no text rather than a traceback


def is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- reading and writing
PUBLIC, PRIVATE = Path("prepared/public"), Path("prepared/private")
REQUIRED_PUBLIC = ("train.csv", "test.csv", "sample_submission.csv")
MAX_TEXT_BYTES = 4 * 1024 * 1024  # task.yaml and description.md: far above any real one


def read_task_text(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a task file, read only when it is a regular file (a FIFO, a device such
    as ``/dev/zero`` or a link to one would block or never end) of at most ``max_bytes``;
    :class:`TaskError` naming the file otherwise. Links inside a task folder are followed (a
    task set may link shared files), but what they name must be a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TaskError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TaskError(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise TaskError(f"{path}: too large ({info.st_size} bytes > {max_bytes})")
        data = os.read(fd, max_bytes + 1)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "")
        raise TaskError(f"{path}: cannot be read ({exc.strerror or code})") from None
    finally:
        os.close(fd)
    if b"\0" in data:
        raise TaskError(f"{path}: binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def _inside(root: Path, value: Any, key: str, meta_path: Path) -> Path:
    """``root / value`` when it stays inside the task folder (links resolved), else TaskError:
    ``answers: /etc/passwd`` or ``../../x`` must not make the grader read files of the host."""
    if not isinstance(value, str) or not value:
        raise TaskError(f"{meta_path}: {key!r} must be a path inside the task folder, got {value!r:.80}")
    path = root / value
    if not is_within(path, root):
        raise TaskError(f"{meta_path}: {key!r} points outside the task folder ({value!r:.200}); "
                        f"task files must sit inside {root}")
    return path


def _csv_columns(path: Path) -> list[str]:
    import pandas as pd

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a task error
        raise TaskError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc


def _data_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable data CSV (binary, empty, no rows, unparseable), else None."""
    import pandas as pd

    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror})"
    if not head.strip():
        return f"{path.name} is empty"
    if b"\0" in head:
        return f"{path.name} is not a text CSV (binary data)"
    try:
        rows = pd.read_csv(path, nrows=5)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a task error
        return f"{path.name} is not a readable CSV ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if rows.empty:
        return f"{path.name} has a header but no rows"
    return None


class MetricClashError(SandmleError):
    """Two plugins both say they score the same metric name (a plugin's ``mape`` in fractions
    and the built-in one in percent graded a task x100 without a word)."""

    exit_code = 2


def metric_lower_is_better(metric: str) -> bool | None:
    """Whether a lower ``metric`` is better, as the plugin that scores it says (``None``: no
    loaded plugin knows it). Asked through the ``metric_lower_is_better`` hook, so that core
    knows no metric itself and a plugin's metrics count like the built-in ones.

    Raises :class:`MetricClashError` naming every plugin when more than one claims ``metric``:
    which of them grades a task would depend on load order, and their units may differ."""
    from .plugins import get_manager

    pm = get_manager().pm
    claims = []
    for impl in reversed(pm.hook.metric_lower_is_better.get_hookimpls()):  # pluggy's call order
        answer = impl.function(metric=metric)
        if answer is not None:
            claims.append((impl.plugin_name, bool(answer)))
    if len(claims) > 1:
        named = ", ".join(f"{name!r} ({'lower' if lower else 'higher'} is better)" for name, lower in claims)
        raise MetricClashError(
            f"metric {metric!r} is claimed by several plugins: {named}. Their scores may differ in units "
            f"or direction, so a task naming it cannot be graded reliably: give the plugin's metric a name "
            f"of its own (e.g. '{claims[-1][0]}_{metric}'), or disable one with "
            f"SANDMLE_BLOCK_PLUGINS={claims[-1][0]}")
    return claims[0][1] if claims else None


def unknown_metric_message(metric: str) -> str:
    return (f"unknown metric {metric!r}: no loaded plugin scores it (`sandmle list graders` shows the "
            f"graders; the task format page lists the built-in metrics)")


def validate_task(task: Task) -> Task:
    """Check files, columns, data and thresholds of a loaded task; raise :class:`TaskError`
    naming each fault (a task that fails here would otherwise end every episode "no submission"
    or mark every submission invalid, blaming the agent)."""
    problems: list[str] = []
    if not task.public_dir.is_dir():
        raise TaskError(f"task {task.id!r}: public folder {task.public_dir} does not exist")
    # MLE-bench competitions ship folders of images/audio instead of train/test CSVs, and its
    # task source supplies description.md itself.
    data_files = [] if task.format == "mlebench" else [task.public_dir / n for n in REQUIRED_PUBLIC[:2]]
    for path in data_files + [task.sample_submission_path]:  # the sample may sit outside public/ (MLE-bench)
        if not path.is_file():
            problems.append(f"missing file {path}")
        else:
            problem = _data_file_problem(path)
            if problem:
                problems.append(problem)
    if task.format != "mlebench":
        if not (task.public_dir / "description.md").is_file():
            problems.append(f"missing file {task.public_dir / 'description.md'}")
        else:
            try:
                read_task_text(task.public_dir / "description.md")
            except TaskError as exc:
                problems.append(str(exc))
    if task.format != "sandmle-release" and task.target_columns:  # scored in-process by name
        if metric_lower_is_better(task.metric) is None:
            problems.append(unknown_metric_message(task.metric))
    if task.answers_path is None or not task.answers_path.is_file():
        problems.append(f"missing answers file {task.answers_path}")
    if task.evaluator_path is not None and not task.evaluator_path.is_file():
        problems.append(f"missing evaluator {task.evaluator_path}")
    if task.format != "sandmle-release" and not task.target_columns:
        problems.append("target_columns is empty")
    want = [task.id_column, *task.target_columns] if task.target_columns else []
    for label, path in (("answers", task.answers_path), ("sample submission", task.sample_submission_path)):
        if want and path is not None and path.is_file():
            missing = [c for c in want if c not in _csv_columns(path)]
            if missing:
                problems.append(f"{label} {path.name} lacks column(s) {missing}")
    if task.thresholds is not None and not task.thresholds.is_monotone(task.lower_is_better):
        order = "gold < silver < bronze < median" if task.lower_is_better else "gold > silver > bronze > median"
        problems.append(f"thresholds {task.thresholds.model_dump()} are not strictly monotone ({order} "
                        f"for a {'lower' if task.lower_is_better else 'higher'}-is-better metric)")
    if problems:
        raise TaskError(f"invalid task {task.id!r} at {task.root}:\n  " + "\n  ".join(problems))
    return task


def load_task(path: Path | str) -> Task:
    """Load and validate the task in ``path`` (a folder holding ``task.yaml``)."""
    root = Path(path)
    meta_path = root / "task.yaml"
    if not meta_path.is_file():
        raise TaskError(f"{root}: no task.yaml (not a task folder)")
    try:
        meta = yaml.safe_load(read_task_text(meta_path)) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{meta_path}: invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise TaskError(f"{meta_path}: expected a mapping at the top level")
    missing = [k for k in ("id", "metric") if k not in meta]
    if missing:
        raise TaskError(f"{meta_path}: missing key(s) {missing}")
    fmt = meta.get("format", "sandmle")
    public = _inside(root, meta.get("public_dir", str(PUBLIC)), "public_dir", meta_path)
    answers = _inside(root, meta.get("answers", str(PRIVATE / "answers.csv")), "answers", meta_path)
    evaluator = meta.get("evaluator")
    evaluator = _inside(root, evaluator, "evaluator", meta_path) if evaluator is not None else None
    fields = {k: meta[k] for k in ("id_column", "target_columns", "modality", "task_type", "leaderboard",
                                   "public_leaderboard") if meta.get(k) is not None}
    try:
        lower = meta.get("lower_is_better")
        if lower is None:
            lower = metric_lower_is_better(str(meta["metric"]))
            if lower is None:
                raise TaskError(f"{meta_path}: {unknown_metric_message(meta['metric'])}")
        elif not isinstance(lower, bool):  # `maybe`, "false" (a string), 0: never guess a direction
            raise TaskError(f"{meta_path}: lower_is_better must be true or false, got {lower!r:.80}")
        task = Task(id=str(meta["id"]), root=root, public_dir=public, private_dir=root / PRIVATE,
                    metric=meta["metric"], lower_is_better=lower, format=fmt,
                    thresholds=MedalThresholds(**meta["thresholds"]) if meta.get("thresholds") else None,
                    answers_path=answers, evaluator_path=evaluator,
                    provenance=meta.get("provenance") or {}, **fields)
    except (ValidationError, KeyError, TypeError) as exc:
        raise TaskError(f"{meta_path}: {exc}") from exc
    return validate_task(task)
