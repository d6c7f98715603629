"""The report's PNG plots, each drawn the way a reader compares its numbers.

- ``medal_tiers.png``: per group, the share of episodes by best tier reached (gold, silver,
  bronze, above median, valid, invalid) stacked to 100%, with the any-medal SEM over seeds;
- ``humanrank_by_task.png``: a dot plot, tasks down the side, one marker per group (mean over
  seeds, SEM bars), so unrelated tasks are never joined by a line;
- ``reward_breakdown.png``: mean points per milestone, one bar per group, in milestone order,
  with SEM error bars (over seeds; over episodes when there is one seed);
- ``reward_distribution.png``: the spread of episode rewards per group;
- ``cross_scaffold.png`` (several policies only): any-medal rate and HumanRank per scaffold, one
  bar per policy: does a policy's advantage carry over to scaffolds it was not trained in?

Every figure is saved with a tight bounding box, so long task names and axis labels are kept.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .aggregate import TIERS, GroupSummary, mean_sem

TIER_COLOURS = {"gold": "#d4a017", "silver": "#a8a9ad", "bronze": "#b0703c", "above median": "#6a9fd4",
                "valid": "#c9d6e3", "invalid": "#e8e8e8"}
TIER_LABELS = {"above median": "above median, no medal", "valid": "valid, below median"}


def group_label(s: GroupSummary, several_task_sets: bool) -> str:
    return f"{s.scaffold} / {s.policy}" + (f" / {s.task_set}" if several_task_sets else "")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def medal_tiers(summaries: list[GroupSummary], path: Path) -> Path:
    """Stacked horizontal bars: the share of episodes in each tier, per group."""
    plt = _plt()
    several = len({s.task_set for s in summaries}) > 1
    labels = [group_label(s, several) for s in summaries]
    fig, ax = plt.subplots(figsize=(7.5, 1.1 + 0.5 * len(summaries)))
    left = [0.0] * len(summaries)
    for tier in TIERS:
        widths = [100 * (s.tiers[tier].mean or 0.0) for s in summaries]
        ax.barh(labels, widths, left=left, color=TIER_COLOURS[tier], edgecolor="white",
                label=TIER_LABELS.get(tier, tier))
        left = [a + b for a, b in zip(left, widths)]
    medal = [100 * (s.rates["any_medal"].mean or 0.0) for s in summaries]
    sem = [100 * (s.rates["any_medal"].sem or 0.0) for s in summaries]
    ax.errorbar(medal, labels, xerr=sem, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel("episodes (%) by best tier reached; bars: any-medal SEM over seeds")
    ax.set_title("Medal tiers per scaffold / policy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="best tier", title_fontsize=7)
    return _save(fig, path, plt)


def humanrank_by_task(rows: list[dict[str, Any]], path: Path) -> Path:
    """Dot plot: HumanRank of each task, one marker per group, mean ± SEM over seeds."""
    plt = _plt()
    several = len({r["task_set"] for r in rows}) > 1
    per: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if r.get("grade_human_rank") is not None:
            label = f"{r['scaffold']} / {r['policy']}" + (f" / {r['task_set']}" if several else "")
            per[label][r["task_id"]][r["seed"]].append(float(r["grade_human_rank"]))
    tasks = sorted({t for by_task in per.values() for t in by_task})
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * max(len(tasks), 1)))
    groups = sorted(per)
    step = 0.6 / max(len(groups), 1)
    for g, label in enumerate(groups):
        ys, xs, errs = [], [], []
        for i, task in enumerate(tasks):
            seeds = per[label].get(task)
            if not seeds:
                continue
            stat = mean_sem([sum(v) / len(v) for v in seeds.values()])
            ys.append(i - 0.3 + step * (g + 0.5))
            xs.append(stat.mean)
            errs.append(stat.sem or 0.0)
        ax.errorbar(xs, ys, xerr=errs, fmt="o", ms=5, capsize=2, label=label)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("HumanRank: share of the leaderboard beaten (mean ± SEM over seeds)")
    ax.set_title("HumanRank per task")
    for i in range(1, len(tasks)):  # rules between tasks: each row is read on its own
        ax.axhline(i - 0.5, color="#ddd", lw=0.6)
    if groups:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.text(0.5, 0.5, "no HumanRank recorded (tasks without a leaderboard)", ha="center",
                transform=ax.transAxes)
    return _save(fig, path, plt)


def milestone_sems(summaries: list[GroupSummary], keys: list[str],
                   rows: list[dict[str, Any]]) -> tuple[dict[tuple[str, str, str], list[float]], str]:
    """The error bar of each group's mean points per milestone, and what it measures: the SEM
    over seeds (of per-seed means) when every group has 2+ seeds, as for the rates; with one
    seed, the SEM over the group's episodes (else no study of one seed would get a bar)."""
    by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[(r["task_set"], r["scaffold"], r["policy"])].append(r)
    over_seeds = all(len(s.seeds) > 1 for s in summaries)
    sems = {}
    for s in summaries:
        group = by_group.get(s.key, [])
        errs = []
        for k in keys:
            if over_seeds:
                per_seed: dict[int, list[float]] = defaultdict(list)
                for r in group:
                    per_seed[r["seed"]].append(float((r.get("reward_parts") or {}).get(k, 0.0)))
                stat = mean_sem([sum(v) / len(v) for v in per_seed.values()])
            else:
                stat = mean_sem([float((r.get("reward_parts") or {}).get(k, 0.0)) for r in group])
            errs.append(stat.sem or 0.0)
        sems[s.key] = errs
    return sems, "SEM over seeds" if over_seeds else "SEM over episodes (one seed)"


def reward_breakdown(summaries: list[GroupSummary], keys: list[str], path: Path,
                     rows: list[dict[str, Any]] | None = None) -> Path:
    """Grouped bars: the mean points each milestone earned, one bar per group, with error bars
    (:func:`milestone_sems`) when the rows are given."""
    plt = _plt()
    several = len({s.task_set for s in summaries}) > 1
    sems, what = milestone_sems(summaries, keys, rows) if rows else ({}, "")
    fig, ax = plt.subplots(figsize=(min(11.0, 3.0 + len(keys) * (0.4 + 0.15 * len(summaries))), 3.8))
    width = 0.8 / max(len(summaries), 1)
    for g, s in enumerate(summaries):
        xs = [k + width * (g - (len(summaries) - 1) / 2) for k in range(len(keys))]
        ax.bar(xs, [s.reward_parts.get(k, 0.0) for k in keys], width=width, label=group_label(s, several),
               yerr=sems.get(s.key), capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean points per episode" + (f"\n(bars: {what})" if what else ""))
    ax.set_title("Reward breakdown per milestone")
    if keys:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.text(0.5, 0.5, "no reward breakdown recorded", ha="center", transform=ax.transAxes)
    return _save(fig, path, plt)


def reward_distribution(rows: list[dict[str, Any]], path: Path) -> Path:
    """Box plot of episode rewards per scaffold / policy (means as triangles)."""
    plt = _plt()
    by_group: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("reward_total") is not None:
            by_group[f"{r['scaffold']} / {r['policy']}"].append(float(r["reward_total"]))
    labels = sorted(by_group)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.45 * max(len(labels), 1)))
    if labels:
        ax.boxplot([by_group[k] for k in labels], vert=False, showmeans=True)
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
        ax.invert_yaxis()
    ax.set_xlabel("episode reward")
    ax.set_title("Reward distribution")
    return _save(fig, path, plt)


def cross_scaffold(summaries: list[GroupSummary], path: Path) -> Path | None:
    """With several policies: any-medal rate and HumanRank per scaffold, one bar per policy."""
    policies = sorted({s.policy for s in summaries})
    if len(policies) < 2:
        return None
    plt = _plt()
    scaffolds = sorted({s.scaffold for s in summaries})
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    width = 0.8 / len(policies)
    panels = ((lambda s: s.rates["any_medal"], 100.0, "any-medal rate (%)"),
              (lambda s: s.human_rank, 1.0, "HumanRank (mean)"))
    for ax, (stat_of, scale, ylabel) in zip(axes, panels):
        for p, policy in enumerate(policies):
            means, errs = [], []
            for scaffold in scaffolds:
                stats = [stat_of(s) for s in summaries if s.policy == policy and s.scaffold == scaffold]
                values = [st.mean for st in stats if st.mean is not None]
                means.append(scale * sum(values) / len(values) if values else 0.0)
                errs.append(scale * (stats[0].sem or 0.0) if len(stats) == 1 else 0.0)
            xs = [i + width * (p - (len(policies) - 1) / 2) for i in range(len(scaffolds))]
            ax.bar(xs, means, width=width, yerr=errs, capsize=3, label=policy)
        ax.set_xticks(range(len(scaffolds)), scaffolds)
        ax.set_ylabel(ylabel)
    axes[0].set_title("Any medal, per scaffold")
    axes[1].set_title("HumanRank, per scaffold")
    axes[1].legend(fontsize=7, title="policy", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Cross-scaffold comparison of policies", y=1.03)
    return _save(fig, path, plt)


def write_plots(rows: list[dict[str, Any]], summaries: list[GroupSummary], reward_keys: list[str],
                out: Path) -> list[Path]:
    """Every plot of the report into ``out``; returns their paths in reading order."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [medal_tiers(summaries, out / "medal_tiers.png"),
             humanrank_by_task(rows, out / "humanrank_by_task.png"),
             reward_breakdown(summaries, reward_keys, out / "reward_breakdown.png", rows),
             reward_distribution(rows, out / "reward_distribution.png")]
    cross = cross_scaffold(summaries, out / "cross_scaffold.png")
    stale = out / "cross_scaffold.png"
    if cross is not None:
        paths.append(cross)
    elif stale.exists():  # a rebuilt report with one policy must not show an old comparison
        stale.unlink()
    return paths
