"""The pieces of SandMLE's released ReAct loop that the ``react`` presets switch on.

Anchor: Tonyzhou98/SandMLE@0912362, ``examples/deepresearch/`` (prompts in our words):

- ``custom_train.py`` / ``custom_evaluate.py``: the system prompt (PythonInterpreter + ``Score``
  with ``{"competition_id": ...}``, one tool call per reply, ``<answer>submission</answer>``, then
  ``Current date:``) and the user prompt (competition id, absolute data folder and files,
  hardware line, rules);
- ``deepresearch_tools.py`` ``SynScoreTool.call``: the Score reply and its ``Details`` key names;
- ``deepresearch_agent.py`` ``_run`` / ``_prune_failed_tool_turns``: context pruning *after* the
  turn, with a characters / 4 token estimate.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from sandmle.core.interfaces import SandboxSession, ScoreFn
from sandmle.core.records import Grade
from sandmle.core.task import Task

from .plumbing import SUBMISSION, Episode, public_file_listing

SCORE_TOOL = "Score"

RELEASE_SYSTEM = """You are an expert Kaggle competitor. Write one Python script that trains a model and \
writes `submission.csv` for the dataset described in the user prompt.

Rules:
- Only use common libraries that are already installed; do not install anything.
- Write, run and revise your script with the PythonInterpreter tool.
- Once a submission exists, grade it with the Score tool; while the score is unsatisfying, keep \
improving the code and grading again.
- Stay concise and on task.

Loop:
1) This is a multi-turn task: each turn, propose or refine the script (or your reasoning), then wait \
for the tool's feedback.
2) Run the code until it runs cleanly and writes the file. STRICT: a reply holds exactly ONE \
<tool_call> block, never several.
3) You must read at least one tool feedback (wrapped in <tool_response></tool_response>) before you \
stop. Only when the feedback looks good, reply <answer>submission</answer>; otherwise keep iterating \
without <answer> tags.
4) Run updated code with PythonInterpreter and grade `submission.csv` with Score; repeat until the \
submission is acceptable, then finish with <answer>submission</answer>.

Tool usage:
Each call goes inside <tool_call></tool_call> tags.
- Executable code, exactly like this:
<tool_call>
python
<code>
# Your Python code here
print("Hello World")
</code>
</tool_call>
The code inside runs in Python; keep the word `python` and the <code></code> tags.

- To grade submission.csv, call Score with a JSON object like this:
<tool_call>
{{"name": "Score", "arguments": {{"competition_id": "the competition id given in the task description"}}}}
</tool_call>
{extra_tools}
Current date: {today}"""

RELEASE_RULES = [
    "Prefer GPU (CUDA) acceleration when it is available: move models and tensors to the GPU, and fall "
    "back to the CPU when CUDA is not present.",
    "Each Python interpreter execution must finish within a given time limit.",
    "Overall runtime limits: the agent may take up to {max_llm_calls} turns.",
    "Load the train/test data from the dataset folder (## Dataset Folder). Check the data files and their "
    "formats first (file types, column names, row counts, ...).",
    "Match the exact columns of sample_submission.csv (## Dataset Folder) and write submission.csv to the "
    "**current directory**.",
    "Only use common preinstalled libraries (no installs).",
    "Do NOT display progress bars (the context window is limited); silence them where a function shows one.",
    "Keep external libraries to the common ones.",
    "The task is an old competition: ignore any timeline in the description.",
]

SCORE_KEY = "score_primary (main competition metric for current code)"
DIRECTION_KEY = "metric_lower_is_better (true means lower score is better)"
THRESHOLD_KEYS = {"gold": "threshold_gold (score needed for gold tier)",
                  "silver": "threshold_silver (score needed for silver tier)",
                  "bronze": "threshold_bronze (score needed for bronze tier)",
                  "median": "threshold_median (median submission score)"}


def release_system_prompt(extra_tool_docs: list[str]) -> str:
    """The release's system prompt; tools beyond python and Score are listed after its examples."""
    extra = "".join(f"- {doc}\n" for doc in extra_tool_docs)
    return RELEASE_SYSTEM.format(extra_tools=extra, today=date.today().strftime("%Y-%m-%d"))


def release_user_prompt(task: Task, folder: str, max_llm_calls: int) -> str:
    """The release's user prompt: id, description, files and folder by absolute path, rules.

    ``folder`` is the data folder as the agent's code sees it; top-level entries are listed the
    release's way (zip archives skipped, folders with a trailing slash).
    """
    root = PurePosixPath(folder)
    top = sorted({PurePosixPath(rel).parts[0]: len(PurePosixPath(rel).parts) > 1
                  for rel in public_file_listing(task)}.items())
    entries = [f"- **{root / name}{'/' if is_dir else ''}**" for name, is_dir in top if "zip" not in name]
    description = f"{task.description.strip()}\n\n## Files Provided in **{root}**:\n" + "\n".join(entries)
    rules = "\n".join("- " + rule.replace("{max_llm_calls}", str(max_llm_calls)) for rule in RELEASE_RULES)
    return (f"\nYou are solving the task below. Follow the requirements precisely.\n\n## Description\n\n"
            f"## Competition ID: {task.id}\n\n{description}\n\n## Dataset Folder:\n{root}/\n\n\n"
            f"Your code should adhere to the following requirements:\n{rules}\n")


async def agent_workdir(session: SandboxSession) -> str:
    """The session directory's absolute path as agent code sees it (``/workspace`` inside bwrap or
    docker, the host path otherwise), asked once from the sandbox itself."""
    result = await session.exec("import os\nprint(os.getcwd())", timeout=30)
    lines = result.stdout_tail.strip().splitlines()
    if result.ok and lines and lines[-1].startswith("/"):
        return lines[-1]
    return str(session.workdir)


def release_score_reply(grade: Grade | None, submission_path: str) -> str:
    """What the release's Score tool answers for this grade (``None``: no submission file)."""
    if grade is None or not grade.submission_exists:
        return (f"[Error] submission file not found at {submission_path}. Revise your Python code so that "
                "it writes submission.csv.")
    if not grade.valid_submission or grade.score is None:
        return ("Submission csv is invalid. Revise your Python code and write submission.csv again. "
                f"Detailed issue: {grade.reason or 'no score'}")
    raw = grade.unrounded_score  # the release prints its evaluator's float as it is
    details: dict[str, Any] = {SCORE_KEY: raw}
    if grade.is_lower_better is not None:
        details[DIRECTION_KEY] = grade.is_lower_better
    details |= {key: getattr(grade, f"{tier}_threshold") for tier, key in THRESHOLD_KEYS.items()}
    details["submission_path"] = submission_path
    bronze = grade.bronze_threshold
    short = bronze is not None and (raw > bronze if grade.is_lower_better else raw < bronze)
    nudge = (" But the score does not reach the bronze threshold for a medal yet. Revise your Python code "
             "to improve it.") if short else ""
    return f"Submission OK.{nudge} Details: {json.dumps(details)}"


async def release_score_tool(ep: Episode, task: Task, args: dict[str, Any], score: ScoreFn | None,
                             folder: str) -> tuple[str, Grade | None]:
    """Run the release's Score tool: its reply, and the grade when the call succeeded."""
    competition = args.get("competition_id")
    if competition is None:  # the release: a TypeError caught as "Error calling tool Score: ..."
        return f"Error calling tool {SCORE_TOOL}: missing required argument 'competition_id'", None
    if str(competition).strip() != task.id:
        return (f"[Error] unknown competition_id {str(competition)[:200]!r}; use the task's Competition ID.",
                None)
    grade = await ep.grade_off_loop(score) if ep.submission_exists() else None  # off the event loop
    reply = release_score_reply(grade, str(PurePosixPath(folder) / SUBMISSION))
    return reply, grade if reply.startswith("Submission OK.") else None


def release_context_tokens(messages: list[dict[str, Any]]) -> int:
    """The release's estimate: characters of the newline-joined contents / 4 (tiktoken has no
    "qwen3" encoding, so the release always falls back to this)."""
    return max(1, len("\n".join(str(m.get("content") or "") for m in messages)) // 4)


def _failed_exchange(msg: dict[str, Any], nxt: dict[str, Any] | None) -> bool | None:
    """``True``/``False`` for an assistant tool call followed by its response (failed or not);
    ``None`` when ``msg`` does not open such an exchange."""
    if nxt is None or msg.get("role") != "assistant":
        return None
    text_call = "<tool_call>" in str(msg.get("content") or "") and nxt.get("role") == "user" and \
        "<tool_response>" in str(nxt.get("content") or "")
    native_call = bool(msg.get("tool_calls")) and nxt.get("role") == "tool"
    if not (text_call or native_call):
        return None
    return "error" in str(nxt.get("content") or "").lower()


def prune_release(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The release's pruning, run after each turn: over ``budget``, drop every tool exchange whose
    response mentions "error"; when none was dropped, keep the first two and the last two messages.
    """
    if release_context_tokens(messages) <= budget or len(messages) <= 2:
        return messages
    kept, i = list(messages[:2]), 2
    while i < len(messages):
        failed = _failed_exchange(messages[i], messages[i + 1] if i + 1 < len(messages) else None)
        if failed is None:
            kept.append(messages[i])
            i += 1
            continue
        if not failed:
            kept.extend(messages[i:i + 2])
        i += 2
    if len(kept) < len(messages):
        return kept  # the release continues with this even when still over budget
    return messages[:2] + messages[-2:]
