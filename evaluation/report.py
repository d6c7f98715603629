"""Reports from results rows: rich table, ``report.md``, ``report.html`` (sortable, filterable
tables, plots inlined: :mod:`sandmle.evaluation.report_html`), one page per episode under
``episodes/`` (:mod:`sandmle.evaluation.report_episodes`) and the PNG plots of
:mod:`sandmle.evaluation.plots`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .aggregate import Difference, GroupSummary, Stat, compare, summarize
from .store import read_results

COLUMNS = ("valid", "above median", "bronze", "silver", "gold", "any medal", "HumanRank",
           "reward", "steps", "tokens", "cost $", "wall s")


def fmt(stat: Stat, pct: bool = True) -> str:
    """``mean ± sem`` (percent for rates); ``-`` when undefined."""
    if stat.mean is None:
        return "-"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    text = f"{stat.mean * scale:.1f}{unit}" if pct else f"{stat.mean:.3f}"
    if stat.sem is not None:
        text += f" ± {stat.sem * scale:.1f}" if pct else f" ± {stat.sem:.3f}"
    return text


def row_cells(s: GroupSummary) -> list[str]:
    r = s.rates
    return [fmt(r["valid_submission"]), fmt(r["above_median"]), fmt(r["bronze_medal"]),
            fmt(r["silver_medal"]), fmt(r["gold_medal"]), fmt(r["any_medal"]),
            fmt(s.human_rank, pct=False), fmt(s.reward, pct=False), f"{s.steps:.1f}",
            f"{s.tokens:.0f}", f"{s.cost_usd:.4f}", f"{s.wall_s:.2f}"]


def _ident(s: GroupSummary) -> list[str]:
    return [s.task_set, s.scaffold, s.policy, f"{s.episodes} ({s.failed} failed)", str(len(s.seeds))]


IDENT = ("task set", "scaffold", "policy", "episodes", "seeds")


TERMINAL = ("scaffold", "policy", "task set", "episodes", "valid", "above median", "any medal",
            "gold", "HumanRank", "reward", "steps", "wall s")


def rich_table(summaries: list[GroupSummary], title: str = "evaluation") -> Table:
    """The terminal table: the columns that matter most (report.md/html have them all)."""
    table = Table(title=title, pad_edge=False)
    for col in TERMINAL:
        table.add_column(col, justify="left" if col in TERMINAL[:3] else "right")
    for s in summaries:
        full = dict(zip(IDENT + COLUMNS, _ident(s) + row_cells(s)))
        table.add_row(*(escape(full[c]) for c in TERMINAL))
    return table


def markdown_table(summaries: list[GroupSummary]) -> str:
    head = IDENT + COLUMNS
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join((_ident(s) + row_cells(s))) + " |" for s in summaries]
    return "\n".join(lines)


def reward_keys(summaries: list[GroupSummary]) -> tuple[list[str], list[str]]:
    """(milestones that earned points in some group, in reward order; those that never did)."""
    from sandmle.graders.rewards import KEYS  # milestone order: format, valid, tiers, process

    seen = {k for s in summaries for k in s.reward_parts}
    ordered = [k for k in KEYS if k in seen] + sorted(seen - set(KEYS))
    # A milestone with weight 0 (the process milestones in every preset) contributes 0.000 in every
    # group; a column of zeros reads like "never reached", so such columns are named, not tabled.
    keys = [k for k in ordered if any(s.reward_parts.get(k, 0.0) for s in summaries)]
    return keys, [k for k in ordered if k not in keys]


def _parts_rows(summaries: list[GroupSummary], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["scaffold", "policy", "task set", *keys]
    return head, [[s.scaffold, s.policy, s.task_set, *(f"{s.reward_parts.get(k, 0.0):.3f}" for k in keys)]
                  for s in summaries]


def _parts_md(summaries: list[GroupSummary]) -> str:
    keys, silent = reward_keys(summaries)
    if not keys and not silent:
        return "(no reward breakdown recorded)"
    head, rows = _parts_rows(summaries, keys)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if silent:
        lines += ["", "Contributed 0 in every group (weight 0, or never reached): " + ", ".join(silent) + "."]
    return "\n".join(lines)


CAPTIONS = {
    "medal_tiers": "Share of episodes by the best tier reached, stacked to 100% per scaffold and policy.",
    "humanrank_by_task": "HumanRank of every task (share of the human leaderboard beaten), one marker per "
                         "scaffold and policy.",
    "reward_breakdown": "Mean points per episode that each milestone of the reward contributed (error bars: "
                        "SEM over seeds, or over episodes with one seed).",
    "reward_distribution": "Spread of episode rewards (box: quartiles, triangle: mean).",
    "cross_scaffold": "Each policy in each scaffold: does an advantage carry over across scaffolds?",
}


def _failed_lines(failed: list[dict[str, Any]]) -> list[str]:
    return [f"{r['task_id']} / {r['scaffold']} / seed {r['seed']}: "
            f"{((r.get('error') or '').splitlines() or [''])[0][:200]}" for r in failed[:50]]


def build_report(out_dir: Path, console: Console | None = None, title: str | None = None) -> Path:
    """Rebuild every report artefact of ``out_dir`` from its ``results.jsonl``; returns report.md."""
    from .plots import write_plots
    from .report_episodes import write_episode_pages
    from .report_html import CSS, summary_page

    out_dir = Path(out_dir)
    rows = read_results(out_dir)
    summaries = summarize(rows)
    title = title or f"sandmle evaluation: {out_dir.resolve().name}"
    plots = write_plots(rows, summaries, reward_keys(summaries)[0], out_dir / "plots")
    (out_dir / "summary.json").write_text(
        json.dumps([s.to_dict() for s in summaries], indent=2), encoding="utf-8")
    failed = [r for r in rows if r.get("status") != "ok"]
    md = [f"# {title}", "", f"{len(rows)} episodes, {len(failed)} failed. Rates are mean ± SEM over "
          "seeds (SEM shown only with 2+ seeds); HumanRank and reward are means. Every episode, turn by "
          "turn: report.html (filters, per-task and per-episode tables) and episodes/<key>.html.", "",
          markdown_table(summaries), "", "## Reward breakdown (mean per episode)", "",
          _parts_md(summaries), "", "## Plots", ""]
    for p in plots:
        md += [f"![{p.stem}](plots/{p.name})", "", f"*{CAPTIONS.get(p.stem, '')}*", ""]
    if failed:
        md += ["", "## Failed episodes", ""] + [f"- {line}" for line in _failed_lines(failed)]
    report_md = out_dir / "report.md"
    report_md.write_text("\n".join(md) + "\n", encoding="utf-8")
    keys, silent = reward_keys(summaries)
    (out_dir / "report.html").write_text(summary_page(
        title, summaries, rows, [_ident(s) + row_cells(s) for s in summaries], IDENT + COLUMNS,
        _parts_rows(summaries, keys), silent, plots, CAPTIONS,
        list(zip(failed[:50], _failed_lines(failed)))), encoding="utf-8")
    write_episode_pages(out_dir, rows, CSS)
    if console is not None:
        if not console.is_terminal and console.width < 160:
            console = Console(file=console.file, width=160)  # logs: no wrapping of the numbers
        console.print(rich_table(summaries, title))
    return report_md


def compare_dirs(a: Path, b: Path) -> list[Difference]:
    return compare(summarize(read_results(a)), summarize(read_results(b)))


def compare_table(diffs: list[Difference], a: str, b: str) -> Table:
    table = Table(title=f"{a} -> {b} (b - a, ± combined SEM)")
    for col in ("task set", "scaffold", "policy", "metric", "a", "b", "b - a"):
        table.add_column(col)
    for d in diffs:
        pct = d.metric.endswith("_rate")
        scale = 100.0 if pct else 1.0

        def show(v: float | None) -> str:
            return "-" if v is None else (f"{v * scale:.1f}%" if pct else f"{v:.3f}")

        delta = "-" if d.diff is None else (f"{d.diff * scale:+.1f}" if pct else f"{d.diff:+.3f}")
        if d.diff is not None and d.se is not None:
            delta += f" ± {d.se * scale:.1f}" if pct else f" ± {d.se:.3f}"
        table.add_row(*(escape(x) for x in (*d.key, d.metric, show(d.a), show(d.b), delta)))
    return table
