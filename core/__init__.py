"""sandmle.core: hook specs, plugin manager and registry, interfaces, records, recipes, CLI."""

from .errors import (
    DuplicateComponentError, MissingDependencyError, RecipeError, SandmleError, TaskError,
    UnknownComponentError,
)
from .hookspecs import hookimpl
from .interfaces import (
    Backend, ComponentConfig, Executor, Generator, Grader, Reward, Sandbox, SandboxSession,
    Scaffold, ScaffoldLimits, TaskSource, Trainer, TrainResult,
)
from .plugins import get_manager, get_registry
from .records import (
    Completion, ExecResult, Grade, RewardBreakdown, Sampling, ToolCall, Trajectory, Turn, Usage,
)
from .registry import KINDS, ComponentInfo, Registry, require
from .task import MedalThresholds, Task

__all__ = [
    "Backend", "Completion", "ComponentConfig", "ComponentInfo", "DuplicateComponentError",
    "ExecResult", "Executor", "Generator", "Grade", "Grader", "KINDS", "MedalThresholds",
    "MissingDependencyError", "RecipeError", "Registry", "Reward", "RewardBreakdown", "Sampling",
    "Sandbox", "SandboxSession", "SandmleError", "Scaffold", "ScaffoldLimits", "Task", "TaskError",
    "TaskSource", "ToolCall", "TrainResult", "Trainer", "Trajectory", "Turn", "UnknownComponentError",
    "Usage", "get_manager", "get_registry", "hookimpl", "require",
]
