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

from sandmle.core.errors import SandmleError


def _console():
    from sandmle.core.cli import console

    return console


def _json_arg(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SandmleError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SandmleError(f"{what} must be a JSON object")
    return value


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


async def _rollout(task_dir: Path, scaffold_name: str, scaffold_args: dict, backend_name: str,
                   backend_args: dict, sandbox_name: str, grader_name: str, reward_name: str,
                   seed: int) -> dict[str, Any]:
    from sandmle.core.plugins import get_registry
    from sandmle.core.task import load_task
    from sandmle.sandboxes.files import safe_submission

    reg = get_registry()
    task = load_task(task_dir)
    scaffold = reg.create("scaffolds", scaffold_name, scaffold_args)
    backend = reg.create("backends", backend_name, backend_args)
    grader = reg.create("graders", grader_name)
    reward = reg.create("rewards", reward_name)
    sandbox = reg.create("sandboxes", sandbox_name)
    try:
        session = await sandbox.open(task, stateful=bool(getattr(scaffold, "stateful", False)))
        try:
            def score(path: Path):
                return grader.grade(task, safe_submission(Path(path).parent, Path(path).name))

            traj = await scaffold.run(task, backend, session, seed=seed, score=score)
            grade = await asyncio.to_thread(grader.grade, task, safe_submission(session.workdir))
        finally:
            await session.close()
    finally:
        await backend.aclose()
        await sandbox.shutdown()
    return {"episode": {"task_id": task.id, "scaffold": scaffold_name, "backend": backend_name, "seed": seed},
            "trajectory": traj.model_dump(mode="json"), "grade": grade.model_dump(mode="json"),
            "reward": reward.score(traj, grade).model_dump(mode="json")}


@click.command("rollout")
@click.argument("task_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scaffold", default="react", show_default=True)
@click.option("--backend", default="baseline", show_default=True)
@click.option("--args", "scaffold_args", default=None, help="scaffold config as JSON")
@click.option("--backend-args", default=None, help="backend config as JSON")
@click.option("--sandbox", default="local", show_default=True)
@click.option("--grader", default="default", show_default=True)
@click.option("--reward", default="milestone", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/rollouts"),
              show_default=True, help="folder for the trajectory JSONL")
@click.option("--json", "as_json", is_flag=True, help="print the saved record as JSON")
def rollout(task_dir: Path, scaffold: str, backend: str, scaffold_args: str | None, backend_args: str | None,
            sandbox: str, grader: str, reward: str, seed: int, out: Path, as_json: bool) -> None:
    """Run one episode on TASK_DIR, show it turn by turn, grade it and save the trajectory."""
    console = _console()
    t0 = time.monotonic()
    with console.status(f"{scaffold} x {backend} on {task_dir.name} ..."):
        record = asyncio.run(_rollout(task_dir, scaffold, _json_arg(scaffold_args, "--args"), backend,
                                      _json_arg(backend_args, "--backend-args"), sandbox, grader, reward, seed))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['episode']['task_id']}.{scaffold}.{backend}.s{seed}.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(record))
        return
    _print_record(record)
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
