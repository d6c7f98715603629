"""``sandmle rollout`` (one episode, shown turn by turn, graded, rewarded, saved) and
``sandmle show`` (replay a saved trajectory)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table

from sandmle.core.arguments import FiniteFloatRange
from sandmle.core.errors import SandmleError
from sandmle.evaluation.graded_episode import KeepPolicy, run_graded_episode
from sandmle.evaluation.episode import _safe_name


def _console():
    from sandmle.core.cli import console

    return console


def render_turn(index: int, turn: dict[str, Any], max_chars: int = 1500) -> Panel:
    """One recorded turn as a rich panel: the model's text, tool calls, observations, timings."""
    from rich.markup import escape as markup_escape

    from sandmle.core.terminal import printable

    def escape(value: object) -> str:  # agent-made text: no markup, no terminal control codes
        return markup_escape(printable(value))

    text = str(turn.get("text") or "")
    body = escape(text[:max_chars] + ("…" if len(text) > max_chars else ""))
    for call in turn.get("tool_calls") or []:
        body += f"\n[cyan]tool call[/] {escape(call.get('name'))} {escape(json.dumps(call.get('arguments'))[:300])}"
    for obs in turn.get("observations") or []:
        body += f"\n[green]observation[/]\n{escape(str(obs)[:max_chars])}"
    ntok = len(turn.get("token_ids") or [])
    fmt = "[green]ok[/]" if turn.get("format_ok", True) else f"[red]format failure[/]: {escape(str(turn.get('format_error')))}"
    title = (f"turn {index} · {escape(turn.get('stage') or '')} · {fmt} · {turn.get('wall_s', 0):.2f}s"
             + (f" · {ntok} tokens" if ntok else ""))
    return Panel(body or "[dim](empty reply)[/]", title=title, title_align="left")


def render_summary(record: dict[str, Any]) -> Table:
    from rich.text import Text

    from sandmle.core.terminal import printable

    traj, grade, reward = record["trajectory"], record.get("grade") or {}, record.get("reward") or {}
    title = Text(printable(f"{traj.get('task_id')} · {traj.get('scaffold')} · {traj.get('backend')}"))
    table = Table(title=title, show_header=False)
    usage = traj.get("usage", {})
    rows = [("stop reason", traj.get("stop_reason")), ("turns", len(traj.get("turns", []))),
            ("LLM calls", usage.get("llm_calls")), ("tokens (prompt/completion)",
                                                    f"{usage.get('prompt_tokens')}/{usage.get('completion_tokens')}"),
            ("wall time", f"{traj.get('wall_s', 0):.2f}s"),
            ("valid submission", grade.get("valid_submission")), ("score", grade.get("score")),
            ("medal / tier", _tier(grade)), ("reward", reward.get("total"))]
    rows += [(f"  {k}", f"{v:.3f}" if isinstance(v, (int, float)) else v)
             for k, v in (reward.get("parts") or {}).items()]
    if (traj.get("extra") or {}).get("backend_error"):  # why the episode stopped, in full
        rows.append(("backend error", traj["extra"]["backend_error"]))
    for k, v in rows:  # Text: printed as is, never read as markup
        table.add_row(Text(printable(k)), Text(printable(v)))
    return table


def _tier(grade: dict[str, Any]) -> str:
    if not grade.get("valid_submission"):
        return "invalid" + (f" ({grade['reason']})" if grade.get("reason") else "")
    for name in ("gold", "silver", "bronze"):
        if grade.get(f"{name}_medal"):
            return name
    return "median" if grade.get("at_or_above_median") else "valid"


def validate_rollout_components(scaffold: str, scaffold_args: str | None, backend: str,
                                backend_args: str | None, sandbox: str, grader: str,
                                reward: str) -> dict[str, Any]:
    """Every component of one rollout, looked up and its JSON arguments validated (nothing built
    yet), with the same messages as a recipe: ``{role: (info, config)}``."""
    from sandmle.core.arguments import validate_args
    from sandmle.core.plugins import get_registry

    reg = get_registry()

    def one(kind: str, name: str, args: str | None, name_option: str, args_option: str) -> Any:
        return validate_args(reg, kind, name, args, name_option=name_option, args_option=args_option)

    return {"scaffold": one("scaffolds", scaffold, scaffold_args, "--scaffold", "--args"),
            "backend": one("backends", backend, backend_args, "--backend", "--backend-args"),
            "grader": one("graders", grader, None, "--grader", "--grader"),
            "reward": one("rewards", reward, None, "--reward", "--reward"),
            "sandbox": one("sandboxes", sandbox, None, "--sandbox", "--sandbox")}


async def _rollout(task: Any, parts: dict[str, Any], names: dict[str, str], seed: int,
                   keep: KeepPolicy, out: Path) -> dict[str, Any]:
    scaffold, backend, grader, reward, sandbox = (parts[k] for k in ("scaffold", "backend", "grader",
                                                                     "reward", "sandbox"))
    stem = f"{_safe_name(task.id)}.{_safe_name(names['scaffold'])}.{_safe_name(names['backend'])}.s{seed}"
    try:
        traj, grade = await run_graded_episode(task, scaffold, backend, sandbox, grader, seed=seed,
                                               keep=keep, keep_dir=out / stem)
    finally:
        await backend.aclose()
        await sandbox.shutdown()
    return {"episode": {"task_id": task.id, "scaffold": names["scaffold"], "backend": names["backend"],
                        "seed": seed},
            "trajectory": traj.model_dump(mode="json"), "grade": grade.model_dump(mode="json"),
            "reward": reward.score(traj, grade).model_dump(mode="json"), "_stem": stem}


@click.command("rollout")
@click.argument("task_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scaffold", default="react", show_default=True)
@click.option("--backend", default="baseline", show_default=True)
@click.option("--args", "scaffold_args", default=None, help="scaffold config as a JSON object")
@click.option("--backend-args", default=None, help="backend config as a JSON object")
@click.option("--sandbox", default="local", show_default=True)
@click.option("--grader", default="default", show_default=True)
@click.option("--reward", default="milestone", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/rollouts"),
              show_default=True, help="folder for the trajectory JSONL (and the kept submission)")
@click.option("--keep-files/--no-keep-files", default=True, show_default=True,
              help="keep the final submission.csv (and AIDE's best solution) next to the trajectory")
@click.option("--keep-max-mb", type=FiniteFloatRange(min=0), default=KeepPolicy().max_mb, show_default=True,
              help="largest kept file; a bigger one is recorded as skipped")
@click.option("--json", "as_json", is_flag=True, help="print the saved record as JSON")
def rollout(task_dir: Path, scaffold: str, backend: str, scaffold_args: str | None, backend_args: str | None,
            sandbox: str, grader: str, reward: str, seed: int, out: Path, keep_files: bool,
            keep_max_mb: float, as_json: bool) -> None:
    """Run one episode on TASK_DIR, show it turn by turn, grade it and save the trajectory.

    TASK_DIR is a task in sandmle's format (``task.yaml``) or in SandMLE's release layout
    (``prepared/public/evaluator.py``)."""
    from sandmle.graders.commands import load_any_task

    console = _console()
    t0 = time.monotonic()
    specs = validate_rollout_components(scaffold, scaffold_args, backend, backend_args, sandbox, grader, reward)
    task = load_any_task(task_dir)  # after the arguments: a typo is reported before any loading
    parts = {role: info.build(config) for role, (info, config) in specs.items()}
    keep = KeepPolicy(enabled=keep_files, max_mb=keep_max_mb)
    with console.status(f"{scaffold} x {backend} on {task.id} ..."):
        record = asyncio.run(_rollout(task, parts, {"scaffold": scaffold, "backend": backend}, seed, keep, out))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record.pop('_stem')}.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(record))
        return
    _print_record(record)
    kept = record["trajectory"].get("extra", {}).get("kept_files") or {}
    for name, where in kept.items():
        console.print(f"kept {name}: {where}")
    console.print(f"trajectory: {path}  ({time.monotonic() - t0:.1f}s)")


def _print_record(record: dict[str, Any]) -> None:
    console = _console()
    for i, turn in enumerate(record["trajectory"].get("turns", [])):
        console.print(render_turn(i, turn))
    console.print(render_summary(record))


@click.command("show")
@click.argument("trajectory", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--line", default=0, show_default=True, help="which record of the JSONL file")
def show(trajectory: Path, line: int) -> None:
    """Replay a saved trajectory JSONL (from ``rollout`` or an evaluation study) turn by turn."""
    try:
        text = trajectory.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SandmleError(f"{trajectory}: not a text JSONL file ({exc.reason} at byte {exc.start})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not 0 <= line < len(lines):
        raise SandmleError(f"{trajectory}: no record {line} (the file has {len(lines)})")
    try:
        record = json.loads(lines[line])
    except ValueError as exc:
        raise SandmleError(f"{trajectory}: record {line} is not JSON: {exc}") from exc
    if not isinstance(record, dict) or ("trajectory" not in record and "turns" not in record):
        raise SandmleError(f"{trajectory}: record {line} is not a trajectory record")
    if "trajectory" not in record:
        record = {"trajectory": record}
    turns = record["trajectory"].get("turns", []) if isinstance(record["trajectory"], dict) else None
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise SandmleError(f"{trajectory}: record {line} is not a trajectory record")
    _print_record(record)
