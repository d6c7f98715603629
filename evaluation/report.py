"""Reports from results rows alone: rich table, ``report.md``, self-contained ``report.html`` and
PNG plots (medal rate by scaffold, reward distribution, HumanRank by task)."""

from __future__ import annotations

import base64
import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .aggregate import Difference, GroupSummary, Stat, compare, summarize
from .store import read_results

COLUMNS = ("valid", "above median", "bronze", "silver", "gold", "any medal", "HumanRank",
           "reward", "steps", "tokens", "cost $", "wall s")
PLOTS = ("medal_rate.png", "reward_distribution.png", "humanrank_by_task.png")


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


def write_plots(rows: list[dict[str, Any]], summaries: list[GroupSummary], out: Path) -> list[Path]:
    """The three PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # medal rate by scaffold (one bar per group, SEM error bars when there are several seeds)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(summaries) + 2), 3.5))
    labels = [f"{s.scaffold}\n{s.policy}\n{s.task_set}" for s in summaries]
    means = [100 * (s.rates["any_medal"].mean or 0) for s in summaries]
    errs = [100 * (s.rates["any_medal"].sem or 0) for s in summaries]
    ax.bar(range(len(summaries)), means, yerr=errs, capsize=4, color="tab:orange")
    ax.set_xticks(range(len(summaries)), labels, fontsize=7)
    ax.set_ylabel("any-medal rate (%)")
    ax.set_title("Medal rate by scaffold (mean ± SEM over seeds)")
    paths.append(_save(fig, out / PLOTS[0], plt))
    # reward distribution per scaffold x policy
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(summaries) + 2), 3.5))
    by_group: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("reward_total") is not None:
            by_group[f"{r['scaffold']}\n{r['policy']}"].append(float(r["reward_total"]))
    if by_group:
        ax.boxplot(list(by_group.values()), showmeans=True)
        ax.set_xticks(range(1, len(by_group) + 1), list(by_group), fontsize=7)
    ax.set_ylabel("reward")
    ax.set_title("Reward distribution")
    paths.append(_save(fig, out / PLOTS[1], plt))
    # HumanRank by task, one line per scaffold
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ranks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("grade_human_rank") is not None:
            ranks[f"{r['scaffold']} / {r['policy']}"][r["task_id"]].append(float(r["grade_human_rank"]))
    tasks = sorted({t for per in ranks.values() for t in per})
    for label, per in sorted(ranks.items()):
        ax.plot(range(len(tasks)), [sum(per[t]) / len(per[t]) if per.get(t) else float("nan")
                                    for t in tasks], marker="o", label=label)
    ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("HumanRank (share of leaderboard beaten)")
    ax.set_title("HumanRank by task")
    if ranks:
        ax.legend(fontsize=6)
    paths.append(_save(fig, out / PLOTS[2], plt))
    return paths


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parts_md(summaries: list[GroupSummary]) -> str:
    from sandmle.graders.rewards import KEYS  # milestone order: format, valid, tiers, process
    seen = {k for s in summaries for k in s.reward_parts}
    if not seen:
        return "(no reward breakdown recorded)"
    ordered = [k for k in KEYS if k in seen] + sorted(seen - set(KEYS))
    # A milestone with weight 0 (the process milestones in every preset) contributes 0.000 in every
    # group; a column of zeros reads like "never reached", so such columns are named, not tabled.
    keys = [k for k in ordered if any(s.reward_parts.get(k, 0.0) for s in summaries)]
    silent = [k for k in ordered if k not in keys]
    lines = ["| scaffold | policy | task set | " + " | ".join(keys) + " |", "|" + "---|" * (3 + len(keys))]
    for s in summaries:
        cells = [f"{s.reward_parts.get(k, 0.0):.3f}" for k in keys]
        lines.append(f"| {s.scaffold} | {s.policy} | {s.task_set} | " + " | ".join(cells) + " |")
    if silent:
        lines += ["", "Contributed 0 in every group (weight 0, or never reached): " + ", ".join(silent) + "."]
    return "\n".join(lines)


def build_report(out_dir: Path, console: Console | None = None, title: str | None = None) -> Path:
    """Rebuild every report artefact of ``out_dir`` from its ``results.jsonl``; returns report.md."""
    out_dir = Path(out_dir)
    rows = read_results(out_dir)
    summaries = summarize(rows)
    title = title or f"sandmle evaluation: {out_dir.name}"
    plots = write_plots(rows, summaries, out_dir / "plots")
    (out_dir / "summary.json").write_text(
        json.dumps([s.to_dict() for s in summaries], indent=2), encoding="utf-8")
    failed = [r for r in rows if r.get("status") != "ok"]
    md = [f"# {title}", "", f"{len(rows)} episodes, {len(failed)} failed. Rates are mean ± SEM over "
          "seeds (SEM shown only with 2+ seeds); HumanRank and reward are means.", "",
          markdown_table(summaries), "", "## Reward breakdown (mean per episode)", "",
          _parts_md(summaries), "", "## Plots", ""]
    md += [f"![{p.stem}](plots/{p.name})" for p in plots]
    if failed:
        md += ["", "## Failed episodes", ""]
        md += [f"- {r['task_id']} / {r['scaffold']} / seed {r['seed']}: "
               f"{(r.get('error') or '').splitlines()[0][:200]}" for r in failed[:50]]
    report_md = out_dir / "report.md"
    report_md.write_text("\n".join(md) + "\n", encoding="utf-8")
    (out_dir / "report.html").write_text(_html(title, summaries, plots, len(rows), len(failed)),
                                         encoding="utf-8")
    if console is not None:
        if not console.is_terminal and console.width < 160:
            console = Console(file=console.file, width=160)  # logs: no wrapping of the numbers
        console.print(rich_table(summaries, title))
    return report_md


def _html(title: str, summaries: list[GroupSummary], plots: list[Path], n: int, failed: int) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in IDENT + COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _ident(s) + row_cells(s))
                   + "</tr>" for s in summaries)
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/></figure>' for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{n} episodes, {failed} failed. "
            "Rates: mean ± SEM over seeds.</p>"
            f"<table><tr>{head}</tr>{body}</table>{imgs}</body></html>")


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
