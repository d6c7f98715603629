"""``report.html``: one static page that opens from the run folder without a server.

The summary per (task set, scaffold, policy), the reward breakdown and the plots, then a table
per task and one per episode, each episode linked to its own page (``episodes/<key>.html``,
:mod:`sandmle.evaluation.report_episodes`). A bar of filters (scaffold, task, policy, outcome)
narrows every table; its state lives in the URL fragment (``#episodes:scaffold=react&...``), so
the summary's episode counts link to their episodes and an episode page links back to its own.
Plain DOM JavaScript, nothing fetched: the page works offline and from ``file://``.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .aggregate import GroupSummary
from .report_episodes import EPISODES_DIR, esc, outcome, page_name

#: Outcomes in the order the filter offers them (best first).
OUTCOMES = ("gold", "silver", "bronze", "above median", "valid", "invalid", "failed")
FILTERS = ("scaffold", "task", "policy", "outcome")


class Html(str):
    """A table cell that is already HTML (every value in it escaped by :func:`esc`)."""


class Styled(str):
    """A text cell with a CSS class on its ``<td>``."""

    def __new__(cls, text: str, css_class: str) -> "Styled":
        cell = super().__new__(cls, text)
        cell.css_class = css_class
        return cell


CSS = ("body{font-family:system-ui,sans-serif;margin:1em 1.5em;color:#222;font-size:14px}"
       "h1{font-size:1.5em}h2{margin-top:1.6em}"
       "table{border-collapse:collapse;margin:.8em 0;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap;vertical-align:top}"
       "td.l,th.l{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:4.5em;max-width:20em}"
       "th{background:#f3f5f8}table.sortable th{cursor:pointer;user-select:none}"
       "th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}"
       ".sem{color:#666;font-size:11px}tr[hidden]{display:none}"
       "figure{margin:1.2em 0}figcaption{color:#555;font-size:13px}img{max-width:100%}"
       "a,h2,th,td{scroll-margin-top:4em}"  # what scrollIntoView brings up is not under the filter bar
       "#filters{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.5em 0;z-index:1}"
       "#filters label{margin-right:1em}#filters select{max-width:18em}"
       ".muted{color:#777}.bad{color:#b00020}.ok{color:#176f2c}"
       "td.o-gold{background:#f7e7a6}td.o-silver{background:#e6e7ea}td.o-bronze{background:#eed6c2}"
       "td.o-failed,td.o-invalid{color:#b00020}"
       # episode pages
       "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f9;border:1px solid #e2e2e6;"
       "padding:6px 8px;margin:.3em 0;max-height:28em;overflow-y:auto;font-size:12.5px}"
       "pre.code{background:#f3f7ff}pre.stderr{background:#fff4f4}pre.preview{max-height:12em}"
       ".turn{border-left:4px solid #6a9fd4;padding:.2em 0 .4em 1em;margin:1.2em 0}"
       ".turn h3{margin:.2em 0}.turn h4{margin:.6em 0 .1em;font-size:13px;color:#444}"
       ".exec-head{font-size:12px;margin-top:.4em}.exec-head.ok{color:#176f2c}.exec-head.bad{color:#b00020}"
       ".facts .fact{display:inline-block;margin-right:1.4em}"
       ".cols{display:flex;flex-wrap:wrap;gap:2em}.cols>div{min-width:18em;max-width:40em}"
       "table.kv th{text-align:left}tr.miss{color:#999}td.barcell{width:8em}"
       ".bar{background:#6a9fd4;height:.8em}ul.kept{padding-left:1.2em}")

# Click a column header to sort by it (again: reverse); numbers sort as numbers ("12.5% ± 3.1"
# by 12.5), "-" always last.
_SORT_JS = """
function cellKey(td) {
  const t = td.textContent.trim();
  const m = t.match(/^[-+]?\\d+(\\.\\d+)?/);
  return m && t !== "-" ? [0, parseFloat(m[0]), ""] : [t === "-" ? 2 : 1, 0, t.toLowerCase()];
}
function sortTable(th) {
  const table = th.closest("table"), body = table.tBodies[0];
  const col = Array.from(th.parentNode.children).indexOf(th);
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellKey(a.cells[col]), y = cellKey(b.cells[col]);
    if (x[0] !== y[0]) return x[0] - y[0];
    const c = x[0] === 0 ? x[1] - y[1] : x[2].localeCompare(y[2]);
    return dir * c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll("table.sortable th").forEach(th => {
  th.addEventListener("click", () => sortTable(th));
  th.title = "click to sort";
});
"""

# A row carries "|value|value|" per filter (a summary row: every task and outcome of its
# episodes); it stays visible when it holds each chosen value. Rows without the attribute
# ignore that filter.
_FILTER_JS = """
const FILTERS = ["scaffold", "task", "policy", "outcome"];
function chosen() {
  const want = {};
  FILTERS.forEach(k => { const v = document.getElementById("f-" + k).value; if (v) want[k] = v; });
  return want;
}
function applyFilters(updateUrl) {
  const want = chosen();
  document.querySelectorAll("tr[data-scaffold]").forEach(tr => {
    tr.hidden = !Object.keys(want).every(k => !(k in tr.dataset) || tr.dataset[k].includes("|" + want[k] + "|"));
  });
  const rows = document.querySelectorAll("#episodes tbody tr");
  const shown = Array.from(rows).filter(r => !r.hidden).length;
  document.getElementById("episode-count").textContent = shown + " of " + rows.length + " episodes shown";
  if (updateUrl) {
    const h = Object.keys(want).map(k => k + "=" + encodeURIComponent(want[k])).join("&");
    try { history.replaceState(null, "", h ? "#episodes:" + h : location.pathname); } catch (e) {}
  }
}
function fromHash() {
  if (!location.hash.startsWith("#episodes")) return false;
  const params = new URLSearchParams(location.hash.slice("#episodes:".length));
  FILTERS.forEach(k => {
    const select = document.getElementById("f-" + k), v = params.get(k) || "";
    select.value = Array.from(select.options).some(o => o.value === v) ? v : "";
  });
  applyFilters(false);
  document.getElementById("episodes-section").scrollIntoView();
  return true;
}
FILTERS.forEach(k => document.getElementById("f-" + k).addEventListener("change", () => applyFilters(true)));
document.getElementById("f-clear").addEventListener("click", () => {
  FILTERS.forEach(k => document.getElementById("f-" + k).value = "");
  applyFilters(true);
});
window.addEventListener("hashchange", fromHash);
if (!fromHash()) applyFilters(false);
"""


def _tokens(values: Any) -> str:
    return "|" + "|".join(sorted({str(v) for v in values})) + "|"


def _cell(value: Any, left: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("l" if left else "", cls) if c)
    attr = f" class='{classes}'" if classes else ""
    return f"<td{attr}>{value if isinstance(value, Html) else esc(value)}</td>"


def html_table(head: list[str] | tuple[str, ...], rows: list[list[Any]], table_id: str, left: int = 3,
               row_attrs: list[dict[str, str]] | None = None) -> str:
    """A sortable table; the first ``left`` columns are text (left-aligned, may wrap)."""
    th = "".join(f"<th{' class=l' if i < left else ''}>{esc(c)}</th>" for i, c in enumerate(head))
    body = []
    for n, row in enumerate(rows):
        attrs = "".join(f" data-{k}='{esc(v)}'" for k, v in (row_attrs[n] if row_attrs else {}).items())
        body.append(f"<tr{attrs}>" + "".join(_cell(c, i < left, getattr(c, "css_class", ""))
                                             for i, c in enumerate(row)) + "</tr>")
    return (f"<table class='sortable' id='{table_id}'><thead><tr>{th}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _with_sem(text: str) -> Html:
    """``12.5% ± 3.1`` on two lines, so the summary's 17 columns fit a 1400 px window."""
    mean, _, sem = text.partition(" ± ")
    return Html(esc(mean) + (f"<br><span class='sem'>± {esc(sem)}</span>" if sem else ""))


def filter_link(text: str, **values: str) -> Html:
    frag = "#episodes:" + "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())
    return Html(f"<a href='{esc(frag)}'>{esc(text)}</a>")


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f}" if values else "-"


def _num(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def episode_table(rows: list[dict[str, Any]], several_sets: bool) -> str:
    head = ["task", "scaffold", "policy", "seed", "outcome", "score", "HumanRank", "reward", "steps",
            "stop reason", "wall s"]
    if several_sets:
        head.insert(1, "task set")
    cells, attrs = [], []
    for r in sorted(rows, key=lambda r: (r["task_set"], r["task_id"], r["scaffold"], r["policy"], r["seed"])):
        link = Html(f"<a href='{EPISODES_DIR}/{esc(page_name(r))}'>{esc(r['task_id'])}</a>")
        o = outcome(r)
        line = [link, r["scaffold"], r["policy"], str(r["seed"]), Styled(o, "o-" + o.replace(" ", "-")),
                _num(r.get("grade_score"), 5),
                _num(r.get("grade_human_rank")), _num(r.get("reward_total")), str(r.get("steps", 0)),
                r.get("stop_reason") or "-", _num(r.get("wall_s"), 2)]
        if several_sets:
            line.insert(1, r["task_set"])
        cells.append(line)
        attrs.append({"scaffold": _tokens([r["scaffold"]]), "task": _tokens([r["task_id"]]),
                      "policy": _tokens([r["policy"]]), "outcome": _tokens([o])})
    return html_table(head, cells, "episodes", left=4 if several_sets else 3, row_attrs=attrs)


def task_table(rows: list[dict[str, Any]], several_sets: bool) -> str:
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task_set"], r["task_id"], r["scaffold"], r["policy"])].append(r)
    head = ["task", "scaffold", "policy", "episodes", "valid", "any medal", "best outcome", "score",
            "HumanRank", "reward"]
    if several_sets:
        head.insert(1, "task set")
    cells, attrs = [], []
    for (task_set, task, scaffold, policy), rs in sorted(groups.items()):
        outcomes = [outcome(r) for r in rs]
        best = min(outcomes, key=OUTCOMES.index)
        valid = sum(bool(r.get("grade_valid_submission")) and r.get("status") == "ok" for r in rs)
        medal = sum(bool(r.get("grade_any_medal")) and r.get("status") == "ok" for r in rs)
        line = [task, scaffold, policy, filter_link(str(len(rs)), scaffold=scaffold, task=task, policy=policy),
                f"{100 * valid / len(rs):.0f}%", f"{100 * medal / len(rs):.0f}%", best,
                _mean([r["grade_score"] for r in rs if r.get("grade_score") is not None]),
                _mean([r["grade_human_rank"] for r in rs if r.get("grade_human_rank") is not None]),
                _mean([r["reward_total"] for r in rs if r.get("reward_total") is not None])]
        if several_sets:
            line.insert(1, task_set)
        cells.append(line)
        attrs.append({"scaffold": _tokens([scaffold]), "task": _tokens([task]), "policy": _tokens([policy]),
                      "outcome": _tokens(outcomes)})
    return html_table(head, cells, "per-task", left=4 if several_sets else 3, row_attrs=attrs)


def _filter_bar(rows: list[dict[str, Any]]) -> str:
    values = {"scaffold": sorted({r["scaffold"] for r in rows}), "task": sorted({r["task_id"] for r in rows}),
              "policy": sorted({r["policy"] for r in rows}),
              "outcome": [o for o in OUTCOMES if any(outcome(r) == o for r in rows)]}
    selects = "".join(
        f"<label>{k} <select id='f-{k}'><option value=''>all</option>"
        + "".join(f"<option value='{esc(v)}'>{esc(v)}</option>" for v in values[k]) + "</select></label>"
        for k in FILTERS)
    return (f"<div id='filters'>{selects}<button type='button' id='f-clear'>clear</button> "
            "<span id='episode-count' class='muted'></span></div>")


def summary_page(title: str, summaries: list[GroupSummary], rows: list[dict[str, Any]],
                 summary_cells: list[list[str]], summary_head: tuple[str, ...],
                 parts: tuple[list[str], list[list[str]]], silent: list[str], plots: list[Path],
                 captions: dict[str, str], failed_lines: list[tuple[dict[str, Any], str]]) -> str:
    """The whole of ``report.html``."""
    several_sets = len({r["task_set"] for r in rows}) > 1
    by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[(r["task_set"], r["scaffold"], r["policy"])].append(r)
    cells, attrs = [], []
    for s, line in zip(summaries, summary_cells):
        group = by_group.get(s.key, [])
        line = [*line[:3], filter_link(line[3], scaffold=s.scaffold, policy=s.policy), line[4],
                *(_with_sem(c) for c in line[5:])]
        cells.append(line)
        attrs.append({"scaffold": _tokens([s.scaffold]), "policy": _tokens([s.policy]),
                      "task": _tokens(r["task_id"] for r in group), "outcome": _tokens(outcome(r) for r in group)})
    imgs = "".join(
        f'<figure><img alt="{esc(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/>'
        f"<figcaption>{esc(captions.get(p.stem, ''))}</figcaption></figure>" for p in plots)
    silent_note = (f"<p>Contributed 0 in every group (weight 0, or never reached): "
                   f"{esc(', '.join(silent))}.</p>" if silent else "")
    failures = ("<h2>Failed episodes</h2><ul>" + "".join(
        f"<li><a href='{EPISODES_DIR}/{esc(page_name(r))}'>{esc(line)}</a></li>" for r, line in failed_lines)
        + "</ul>" if failed_lines else "")
    n_failed = sum(r.get("status") != "ok" for r in rows)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p>{len(rows)} episodes, {n_failed} failed. "
            "Rates: mean ± SEM over seeds (SEM only with 2+ seeds). Click a column to sort; the filters "
            "narrow every table; an episode count opens its episodes, a task name its turns.</p>"
            + _filter_bar(rows)
            + "<h2>Summary</h2>"
            + html_table(summary_head, cells, "summary", row_attrs=attrs)
            + "<h2>Reward breakdown (mean per episode)</h2>"
            + html_table(parts[0], parts[1], "reward-breakdown") + silent_note
            + "<h2>Plots</h2>" + imgs
            + "<h2>Per task</h2>" + task_table(rows, several_sets)
            + "<h2 id='episodes-section'>Episodes</h2>" + episode_table(rows, several_sets)
            + failures
            + f"<script>{_SORT_JS}{_FILTER_JS}</script></body></html>")
