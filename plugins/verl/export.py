"""Task sets -> veRL's parquet layout, and the agent-loop YAML that points veRL at our loop.

One parquet row per task, in the layout of veRL's ``examples/data_preprocess/
gsm8k_tool_agent_loop.py`` that ``RLHFDataset`` reads:

- ``prompt``: chat messages (the task's public description as a user message). veRL logs it as
  ``raw_prompt``; the scaffold builds the episode's real prompt from the task itself.
- ``agent_name``: :data:`AGENT_NAME`, which the agent-loop YAML maps to our loop class.
- ``extra_info``: ``index``, ``split``, ``task_id`` and ``task`` (the task reference: the whole
  :class:`~sandmle.core.task.Task` as JSON, so tasks from any source load on a worker without the
  source). Paths in it must be readable on every Ray node (a shared filesystem on a cluster).
- ``data_source``, ``ability``, ``reward_model`` (``style: sandmle-milestone``, no ground truth:
  the hidden answers stay in the task folder and reach only the grader).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sandmle.core.errors import SandmleError
from sandmle.core.task import Task

from .config import AGENT_LOOP_TARGET, AGENT_NAME


def task_row(task: Task, index: int, *, split: str, data_source: str) -> dict[str, Any]:
    """The parquet row of one task."""
    return {
        "data_source": data_source,
        "agent_name": AGENT_NAME,
        "prompt": [{"role": "user", "content": task.description}],
        "ability": "mle",
        "reward_model": {"style": "sandmle-milestone", "ground_truth": ""},
        "extra_info": {"index": index, "split": split, "task_id": task.id,
                       "task": task.model_dump_json()},
    }


def task_from_extra_info(extra_info: Any) -> Task:
    """Rebuild the task a parquet row refers to (raises ``SandmleError`` with the reason)."""
    if not isinstance(extra_info, dict) or not extra_info.get("task"):
        raise SandmleError("parquet row has no extra_info.task (export it with sandmle's verl trainer)")
    task = Task.model_validate_json(extra_info["task"])
    if not task.public_dir.is_dir():
        raise SandmleError(f"task {task.id!r}: {task.public_dir} is not readable on this node "
                           "(on a cluster, put the task set on a shared filesystem)")
    return task


def export_parquet(tasks: list[Task], path: Path, *, split: str, data_source: str = "sandmle") -> Path:
    """Write ``tasks`` as one veRL parquet file (``index`` = position in ``tasks``)."""
    import pandas as pd

    if not tasks:
        raise SandmleError(f"no tasks to export for the {split} split")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [task_row(t, i, split=split, data_source=data_source) for i, t in enumerate(tasks)]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def split_tasks(tasks: list[Task], val_tasks: int) -> tuple[list[Task], list[Task]]:
    """Hold the last ``val_tasks`` tasks out for validation (at least one task trains).

    With ``val_tasks=0`` (or a single task) the validation file repeats the training tasks, since
    veRL always reads ``data.val_files``; set ``test_freq=-1`` and ``val_before_train=false`` to
    skip validation then.
    """
    if not tasks:
        raise SandmleError("the verl trainer got no tasks")
    held = min(val_tasks, len(tasks) - 1)
    if held <= 0:
        return list(tasks), list(tasks)
    return list(tasks[:-held]), list(tasks[-held:])


def agent_loop_entry(settings: dict[str, Any]) -> dict[str, Any]:
    """One entry of the agent-loop YAML: veRL passes every key but ``_target_`` to our loop."""
    return {"name": AGENT_NAME, "_target_": AGENT_LOOP_TARGET, **settings}


def write_agent_loop_yaml(path: Path, settings: dict[str, Any]) -> Path:
    """Write the file named by ``actor_rollout_ref.rollout.agent.agent_loop_config_path``.

    veRL's ``AgentLoopWorker`` loads it in every worker process and instantiates the entry named by
    a row's ``agent_name`` with ``hydra.utils.instantiate`` (a bare ``@register`` would not be seen
    by the Ray workers). ``settings`` must be plain YAML data (component specs, timeouts).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    json.dumps(settings)  # fail here, not in a Ray worker, on values YAML would not round-trip
    path.write_text(yaml.safe_dump([agent_loop_entry(settings)], sort_keys=False), encoding="utf-8")
    return path
