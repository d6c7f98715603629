"""The small, stable interfaces every component kind implements.

Each component is built by a registered factory from a pydantic config model (see
:mod:`sandmle.core.hookspecs`). Sandboxes, backends and scaffolds are ``async`` so many
episodes share one event loop; graders and rewards are plain functions of their inputs.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .records import Completion, ExecResult, Grade, RewardBreakdown, Sampling, Trajectory
from .task import Task


#: The largest integer any option may hold (2**53, the last one a float or JSON number holds
#: exactly): beyond it a count, a size or a concurrency is a typo, not a setting.
MAX_OPTION_INT = 2**53


def bounded_numbers(value: Any) -> Any:
    """``value`` unchanged, after refusing integers beyond :data:`MAX_OPTION_INT` in it (in lists
    and mappings too). NaN and infinities are refused by ``allow_inf_nan=False``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_OPTION_INT:
            raise ValueError(f"{value} is out of range (at most {MAX_OPTION_INT} in size)")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            bounded_numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            bounded_numbers(item)
    return value


class ComponentConfig(BaseModel):
    """Base for component config models: unknown keys are errors, not silently ignored; NaN,
    infinities and integers beyond :data:`MAX_OPTION_INT` are refused in every field (give
    fields their own ``ge``/``le`` bounds too)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any) -> Any:
        return bounded_numbers(value)


# ----------------------------------------------------------------------------- sandboxes
class SandboxSession(abc.ABC):
    """One task x one trajectory: a private working directory with the task's public files.

    Paths given to ``read_file``/``write_file``/``list_files`` are relative to the session's
    working directory; paths escaping it are refused. ``close()`` always cleans up and may be
    called twice.
    """

    @abc.abstractmethod
    async def exec(
        self, code: str | None = None, *, command: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run Python ``code`` (or an argv ``command``) in the session; never raises for agent faults."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes:
        """Read a file of the session directory."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes | str) -> None:
        """Write a file into the session directory (parents created)."""

    @abc.abstractmethod
    async def list_files(self, path: str = ".") -> list[str]:
        """Relative paths of the files under ``path`` in the session directory."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Kill anything still running and remove the session's private state."""

    @property
    @abc.abstractmethod
    def workdir(self) -> Path:
        """Host path of the session directory (where ``submission.csv`` lands)."""

    async def __aenter__(self) -> "SandboxSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class Sandbox(abc.ABC):
    """Opens isolated sessions for tasks; may keep warm resources shared by sessions."""

    @abc.abstractmethod
    async def open(self, task: Task, *, stateful: bool = False) -> SandboxSession:
        """Open a session holding ``task``'s public files only.

        ``stateful=True`` asks for variables that persist across ``exec`` calls (a notebook-like
        interpreter); sandboxes that cannot offer it raise ``NotImplementedError``.
        """

    async def shutdown(self) -> None:
        """Release shared resources (worker pools, images). Default: nothing to release."""


# ----------------------------------------------------------------------------- backends
class Backend(abc.ABC):
    """A policy: chat completion with optional tools."""

    name: str = "backend"

    @abc.abstractmethod
    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        sampling: Sampling | None = None,
        protocol: str | None = None,
    ) -> Completion:
        """Return the model's next message.

        ``protocol`` names the scaffold stage asking (``"react"``, ``"aide.draft"``,
        ``"aide.review"``, ``"mledojo"``); real LLMs ignore it, scripted policies use it.
        Transient API failures are retried inside the backend; a final failure raises.
        """

    async def aclose(self) -> None:
        """Release clients or models."""


# ----------------------------------------------------------------------------- grading
class Grader(abc.ABC):
    """Scores a submission file for a task; an invalid submission is a result, not an error."""

    @abc.abstractmethod
    def grade(self, task: Task, submission: Path | None) -> Grade:
        """Grade ``submission`` (``None`` or a missing file -> ``valid_submission=False``)."""


class Reward(abc.ABC):
    """Turns a trajectory and its grade into a scalar with a named milestone breakdown."""

    @property
    @abc.abstractmethod
    def keys(self) -> list[str]:
        """The breakdown keys, identical for every trajectory."""

    @abc.abstractmethod
    def score(self, trajectory: Trajectory, grade: Grade) -> RewardBreakdown:
        """Total and parts for one graded trajectory."""


# ----------------------------------------------------------------------------- scaffolds
ScoreFn = Callable[[Path], Grade]


class ScaffoldLimits(ComponentConfig):
    """Budget of one episode (defaults follow SandMLE's training limits, scaled to micro tasks)."""

    max_llm_calls: int = Field(15, ge=1)
    max_wall_s: float = Field(1200.0, gt=0)
    exec_timeout_s: float = Field(300.0, gt=0)


class Scaffold(abc.ABC):
    """A control loop around a policy; all scaffolds emit the same :class:`Trajectory`."""

    name: str = "scaffold"

    @abc.abstractmethod
    async def run(
        self,
        task: Task,
        backend: Backend,
        session: SandboxSession,
        *,
        seed: int = 0,
        score: ScoreFn | None = None,
    ) -> Trajectory:
        """Run one episode. ``score`` grades a submission path (for score tools and feedback);
        scaffolds only reveal its result when their config allows. Never raises for agent faults.
        """


# ----------------------------------------------------------------------------- tasks
class TaskSource(abc.ABC):
    """Existing tasks: a folder of tasks, a SandMLE release, MLE-bench competitions, ..."""

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """Load and validate every task of the source."""


class Generator(abc.ABC):
    """Makes new verified tasks from seed tasks."""

    @abc.abstractmethod
    def generate(self, out_dir: Path, n: int, *, seed: int = 0,
                 seeds: Sequence[str] | None = None,
                 sandbox: "Sandbox | None" = None) -> Iterator[Any]:
        """Generate ``n`` verified tasks into ``out_dir``, yielding one outcome per candidate
        (an accepted :class:`Task` or a rejection carrying its reason). Reference solvers run
        in ``sandbox``. Resumable: tasks already verified in ``out_dir`` are kept."""


# ----------------------------------------------------------------------------- training
class TrainResult(BaseModel):
    """What a trainer leaves behind."""

    checkpoint_dir: Path | None = None
    steps: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict)


class Trainer(abc.ABC):
    """Trains a policy on a task set."""

    @abc.abstractmethod
    def train(self, recipe: Any, tasks: list[Task]) -> TrainResult:
        """Train with the recipe's components on ``tasks``."""


# ----------------------------------------------------------------------------- executors
class Executor(abc.ABC):
    """Schedules independent jobs (evaluation episodes) and hands back results as they finish."""

    @abc.abstractmethod
    def map_unordered(
        self, fn: Callable[[Any], Awaitable[Any] | Any], jobs: Iterable[Any]
    ) -> Iterator[Any]:
        """Apply ``fn`` to every job, yielding results in completion order."""
