"""One static HTML page per episode of a study: ``<out>/episodes/<key>.html``.

Each page shows the episode's identity and outcome, the final grade, the reward's milestones,
the kept submission (a preview and a link), and every turn: the model's reply, the code it ran,
the sandbox output of each execution and what the scaffold showed the model next. Pages are
written one per episode (a study may have thousands) from the trajectory records the study
wrote under ``trajectories/``, read as plain JSON (no model validation: it is the slow part).

Everything that comes from an episode (replies, code, output, error messages, file contents) is
untrusted, since agent code can print anything: it only reaches the page through :func:`esc`.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .aggregate import row_tier

EPISODES_DIR = "episodes"
_PREVIEW_BYTES = 4096
_PREVIEW_LINES = 8
# (opening pattern, closing text) of the places code hides in a reply; found with str.find, since
# a lazy ``(.*?)`` regex scans long replies several times slower.
_ACTION = (re.compile(r"```json[ \t]*\n"), "```")
_CODE_TAG = (re.compile(r"<code>\n?"), "</code>")
_FENCE = (re.compile(r"```(?:python|py)?[ \t]*\n"), "```")


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too: the result is safe in text and in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def outcome(row: dict[str, Any]) -> str:
    """``failed`` for an episode that raised, else the best tier it reached."""
    return "failed" if row.get("status") != "ok" else row_tier(row)


def page_name(row: dict[str, Any]) -> str:
    """The page's file name: the episode key, reduced to safe characters (rows may be hand-edited)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(row["key"]))[:80] + ".html"


def inside(out_dir: Path, rel: Any) -> Path | None:
    """``out_dir / rel`` when ``rel`` is a relative path that stays inside ``out_dir`` (checked on
    the text, without touching the disk: a run has thousands), else None."""
    if not isinstance(rel, str) or not rel:
        return None
    norm = os.path.normpath(rel)
    if os.path.isabs(norm) or norm == ".." or norm.startswith(("..", "/", "\\")):
        return None
    return out_dir / norm


def read_record(out_dir: Path, row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the episode's trajectory record, None) or (None, why it could not be read)."""
    path = inside(out_dir, row.get("trajectory"))
    if path is None:
        return None, "no trajectory recorded" if not row.get("trajectory") else "trajectory path outside the run"
    try:
        record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        return None, f"trajectory unreadable: {type(exc).__name__}: {exc}"
    return (record, None) if isinstance(record, dict) else (None, "trajectory is not a JSON object")


def _placeholder(code: str) -> str:
    return f"… {len(code.splitlines())} lines of code, shown under code …"


def _spans(text: str, kind: tuple[re.Pattern[str], str]) -> list[tuple[int, int]]:
    """(start, end) of every block's inside, in order."""
    opener, close = kind
    spans, pos = [], 0
    while (found := opener.search(text, pos)) is not None:
        end = text.find(close, found.end())
        if end < 0:
            break
        spans.append((found.end(), end))
        pos = end + len(close)
    return spans


def _replace(text: str, spans: list[tuple[int, int]], new: list[str]) -> str:
    out, pos = [], 0
    for (start, end), piece in zip(spans, new):
        out += [text[pos:start], piece]
        pos = end
    return "".join(out) + text[pos:]


def split_code(turn: dict[str, Any]) -> tuple[str, list[str]]:
    """(the reply with its code left out, the code the turn asked to run): a tool call's
    ``code`` argument, else code found in the reply (an MLE-Dojo ``{"action": ..., "params":
    {"code": ...}}`` block, ``<code>`` tags as in the ReAct format, or fenced Python as AIDE
    writes it). Each piece of code is shown once, under its own heading."""
    text = turn.get("text") or ""
    codes = [c["arguments"]["code"] for c in turn.get("tool_calls") or []
             if isinstance(c, dict) and isinstance(c.get("arguments"), dict)
             and isinstance(c["arguments"].get("code"), str)]
    if codes:
        return text, codes
    spans = _spans(text, _ACTION)
    actions = []
    for start, end in spans:
        try:
            data = json.loads(text[start:end])
            params = data.get("params")
        except (ValueError, AttributeError):
            params = data = None
        if isinstance(params, dict) and isinstance(params.get("code"), str):
            codes.append(params["code"])
            shown = {**data, "params": {**params, "code": _placeholder(params["code"])}}
            actions.append(json.dumps(shown, indent=1, ensure_ascii=False) + "\n")
        else:
            actions.append(text[start:end])
    if codes:
        return _replace(text, spans, actions), codes
    for kind in (_CODE_TAG, _FENCE):
        spans = _spans(text, kind)
        if spans:
            codes = [text[start:end] for start, end in spans]
            return _replace(text, spans, [_placeholder(c) for c in codes]), codes
    return text, []


def _pre(text: str, cls: str = "") -> str:
    return f"<pre class='{cls}'>{esc(text)}</pre>"


def _execution(i: int, ex: dict[str, Any]) -> str:
    killed = f", killed: {esc(ex.get('killed'))} {esc(ex.get('detail'))}" if ex.get("killed") else ""
    status = "ok" if ex.get("exit_code") == 0 and not ex.get("killed") else "bad"
    head = (f"<div class='exec-head {status}'>execution {i + 1}: exit code {esc(ex.get('exit_code'))}"
            f"{killed}, {float(ex.get('wall_s') or 0):.2f} s, {float(ex.get('peak_mem_mb') or 0):.0f} MiB</div>")
    out = _pre(ex["stdout_tail"], "stdout") if ex.get("stdout_tail") else ""
    err = _pre(ex["stderr_tail"], "stderr") if ex.get("stderr_tail") else ""
    return head + (out + err or "<p class='muted'>no output</p>")


def render_turn(n: int, turn: dict[str, Any]) -> str:
    """One turn as an ``<section class='turn'>``."""
    fmt = "" if turn.get("format_ok", True) else (
        f" <span class='bad'>format error: {esc(turn.get('format_error'))}</span>")
    usage = turn.get("usage") or {}
    reply, codes = split_code(turn)
    parts = [f"<section class='turn' id='turn-{n}'><h3>turn {n}"
             f"{' · ' + esc(turn['stage']) if turn.get('stage') else ''}"
             f"<span class='muted'> · {float(turn.get('wall_s') or 0):.2f} s · "
             f"{esc(usage.get('completion_tokens', 0))} tokens out</span>{fmt}</h3>",
             "<h4>reply</h4>" + (_pre(reply, "reply") if reply else "<p class='muted'>(empty)</p>")]
    calls = [c for c in turn.get("tool_calls") or [] if isinstance(c, dict)]
    if calls:
        parts.append("<h4>tool calls</h4>" + "".join(
            _pre(f"{c.get('name')}({json.dumps(c.get('arguments'), ensure_ascii=False)[:4000]})", "call")
            for c in calls))
    for code in codes:
        parts.append("<h4>code</h4>" + _pre(code.strip("\n"), "code"))
    executions = [e for e in turn.get("executions") or [] if isinstance(e, dict)]
    if executions:
        parts.append("<h4>sandbox output</h4>" + "".join(_execution(i, e) for i, e in enumerate(executions)))
    shown = sum(len(str(e.get("stdout_tail") or "")) + len(str(e.get("stderr_tail") or "")) for e in executions)
    for obs in turn.get("observations") or []:
        # Folded when it mostly repeats the output above; open when it says more (a validation
        # result, MLE-Dojo's submission evaluation, a tool's answer).
        unfold = " open" if len(str(obs)) - shown > 200 or not executions else ""
        parts.append(f"<details{unfold}><summary>what the model saw next</summary>" + _pre(str(obs), "obs")
                     + "</details>")
    return "".join(parts) + "</section>"


_GRADE_FIELDS = ("score", "raw_score", "valid_submission", "reason", "is_lower_better", "gold_threshold",
                 "silver_threshold", "bronze_threshold", "median_threshold", "above_median", "any_medal",
                 "beats_sample_submission", "human_rank")


def _grade_table(row: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(row.get('grade_' + k))}</td></tr>"
                    for k in _GRADE_FIELDS if row.get("grade_" + k) is not None)
    return f"<table class='kv'>{cells}</table>"


def _milestones(row: dict[str, Any]) -> str:
    parts = row.get("reward_parts") or {}
    if not parts:
        return "<p class='muted'>no reward recorded</p>"
    top = max([abs(float(v)) for v in parts.values()] + [1e-9])
    cells = "".join(
        f"<tr class='{'hit' if v else 'miss'}'><th>{esc(k)}</th><td>{float(v):.3f}</td>"
        f"<td class='barcell'><div class='bar' style='width:{100 * abs(float(v)) / top:.0f}%'></div></td></tr>"
        for k, v in parts.items())
    return (f"<table class='kv milestones'>{cells}<tr><th>total</th><td>{esc(row.get('reward_total'))}</td>"
            "<td></td></tr></table>")


def _kept(out_dir: Path, row: dict[str, Any]) -> str:
    kept = row.get("kept_files") or {}
    if not isinstance(kept, dict) or not kept:
        return "<p class='muted'>no files kept</p>"
    items = []
    for name, where in kept.items():
        path = inside(out_dir, where)
        if path is None or not path.is_file():
            items.append(f"<li>{esc(name)}: {esc(where)}</li>")
            continue
        link = "../" + quote(str(where))
        with path.open("rb") as fh:
            head = fh.read(_PREVIEW_BYTES).decode("utf-8", errors="replace")
        lines = head.splitlines()[:_PREVIEW_LINES]
        preview = "\n".join(line[:200] for line in lines)
        items.append(f"<li><a href='{esc(link)}'>{esc(name)}</a> ({path.stat().st_size:,} bytes)"
                     + _pre(preview + ("\n…" if len(head) >= _PREVIEW_BYTES or len(lines) == _PREVIEW_LINES
                                       else ""), "preview") + "</li>")
    return "<ul class='kept'>" + "".join(items) + "</ul>"


def _extras(traj: dict[str, Any]) -> str:
    extra = {k: v for k, v in (traj.get("extra") or {}).items() if k not in ("journal", "kept_files")}
    if not extra:
        return ""
    text = json.dumps(extra, indent=1, ensure_ascii=False, default=str)
    return ("<details><summary>scaffold extras (" + esc(", ".join(extra)) + ")</summary>"
            + _pre(text[:20000], "obs") + "</details>")


def episode_filter_hash(row: dict[str, Any]) -> str:
    """The report's fragment that filters the episode table to this episode's task and group."""
    values = {"scaffold": row.get("scaffold"), "task": row.get("task_id"), "policy": row.get("policy")}
    return "#episodes:" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in values.items() if v)


def render_episode(out_dir: Path, row: dict[str, Any], css: str, report_name: str = "report.html") -> str:
    """The whole page of one episode."""
    record, problem = read_record(out_dir, row)
    traj = (record or {}).get("trajectory") or {}
    title = f"{row['task_id']} · {row['scaffold']} · {row['policy']} · seed {row['seed']}"
    back = f"../{report_name}" + episode_filter_hash(row)
    result = outcome(row)
    facts = [("task set", row["task_set"]), ("outcome", result), ("stop reason", row.get("stop_reason")),
             ("reward", row.get("reward_total")), ("steps", row.get("steps")),
             ("tokens", f"{row.get('prompt_tokens', 0)} in / {row.get('completion_tokens', 0)} out"),
             ("wall s", f"{float(row.get('wall_s') or 0):.2f}"), ("key", row["key"])]
    head = "".join(f"<span class='fact'><b>{esc(k)}</b> {esc(v)}</span>" for k, v in facts)
    body = [f"<p><a href='{esc(back)}'>← back to the report</a></p>",
            f"<h1>{esc(title)}</h1><p class='facts outcome-{esc(result.replace(' ', '-'))}'>{head}</p>"]
    if row.get("error"):
        body.append("<h2>error</h2>" + _pre(row["error"], "stderr"))
    body.append("<div class='cols'><div><h2>grade</h2>" + _grade_table(row) + "</div><div><h2>reward milestones"
                "</h2>" + _milestones(row) + "</div><div><h2>kept submission</h2>" + _kept(out_dir, row)
                + "</div></div>")
    turns = traj.get("turns") or []
    body.append(f"<h2>turns ({len(turns)})</h2>")
    if problem and row.get("status") == "ok":
        body.append(f"<p class='bad'>{esc(problem)}</p>")
    body += [render_turn(n, t) for n, t in enumerate(turns, 1) if isinstance(t, dict)]
    if traj:
        body.append(_extras(traj))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{css}</style></head><body class='episode'>" + "".join(body) + "</body></html>")


@functools.cache
def _source_hash() -> str:
    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()


def _fingerprint(out_dir: Path, row: dict[str, Any], css: str) -> str:
    """What a page is made of, cheaply: the row, the trajectory file's size and time, the style
    and this module's source (a changed page layout writes every page again). Same fingerprint:
    the page need not be written again."""
    traj = inside(out_dir, row.get("trajectory"))
    try:
        stat = traj.stat() if traj is not None else None
    except OSError:
        stat = None
    seen = [row, [stat.st_size, stat.st_mtime_ns] if stat else None, _source_hash(), css]
    return hashlib.sha1(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()


def write_episode_pages(out_dir: Path, rows: list[dict[str, Any]], css: str) -> tuple[int, int]:
    """Write ``episodes/<key>.html`` for every row; returns (pages written, pages already up to
    date). A rebuild after a resumed study writes only the pages whose episode changed (an index,
    ``episodes/index.json``, keeps each page's fingerprint); pages of episodes no longer in the
    results are removed."""
    out_dir = Path(out_dir)
    folder = out_dir / EPISODES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    try:
        old_index = json.loads(index_path.read_text(encoding="utf-8"))
        old_index = old_index if isinstance(old_index, dict) else {}
    except (OSError, ValueError):
        old_index = {}
    index: dict[str, str] = {}
    written = 0
    for row in rows:
        name = page_name(row)
        index[name] = _fingerprint(out_dir, row, css)
        if old_index.get(name) == index[name] and (folder / name).is_file():
            continue
        try:
            page = render_episode(out_dir, row, css)
        except Exception as exc:  # noqa: BLE001 - a malformed trajectory costs its page, not the report
            page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><style>{css}</style></head>"
                    f"<body><p><a href='../report.html'>← back to the report</a></p><h1>{esc(row['task_id'])}</h1>"
                    f"<p class='bad'>this episode's record could not be shown: {esc(type(exc).__name__)}: "
                    f"{esc(exc)}</p></body></html>")
        (folder / name).write_text(page, encoding="utf-8")
        written += 1
    for old in folder.glob("*.html"):
        if old.name not in index:
            old.unlink()
    index_path.write_text(json.dumps(index), encoding="utf-8")
    return written, len(rows) - written
