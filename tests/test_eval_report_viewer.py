"""The report's trajectory viewer on a real run: the shipped quickstart recipe (two tasks, the
baseline policy in all three scaffolds: 6 real episodes in the local sandbox), then
``sandmle report``. Every episode gets its own page with its turns; report.html links to them,
its filters narrow the tables, the summary fits a 1400 px window, and whatever an agent prints
reaches the pages as text only (checked in Debian's headless chromium)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from sandmle.evaluation.report import build_report
from sandmle.evaluation.report_episodes import render_turn, split_code
from sandmle.evaluation.store import read_results

from headless_browser import HeadlessChromium, find_chromium
from test_eval_report_browser import png_size, write_results
from test_eval_requirements import skip_unless_components

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandmle.core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    """The quickstart, cut to two tasks (6 episodes, about 15 s), run through the CLI."""
    skip_unless_components()
    tmp = tmp_path_factory.mktemp("viewer")
    data = yaml.safe_load((Path(str(resources.files("sandmle.recipes"))) / "quickstart.yaml").read_text())
    data["tasks"]["n"] = 2
    data["tasks"]["seeds"] = ["breast-cancer-binary", "co2-forecast"]
    data["output_dir"] = str(tmp / "qs")
    (tmp / "quickstart.yaml").write_text(yaml.safe_dump(data))
    proc = _cli("run", str(tmp / "quickstart.yaml"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return tmp / "qs"


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium: run scripts/install-system-deps.sh (it installs Debian's chromium)")
    chrome = HeadlessChromium(binary, width=1400)
    yield chrome
    chrome.close()


def _turns_of(out: Path, row: dict) -> list[dict]:
    return json.loads((out / row["trajectory"]).read_text())["trajectory"]["turns"]


def test_every_episode_of_the_quickstart_has_a_page_with_its_turns(quickstart_run):
    out = quickstart_run
    (out / "episodes").mkdir(exist_ok=True)
    (out / "episodes" / "stale.html").write_text("an episode no longer in the results")
    proc = _cli("report", str(out), timeout=300)  # the user's path: rebuilds the viewer too
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_results(out)
    assert len(rows) == 6 and {r["scaffold"] for r in rows} == {"react", "aide", "mledojo"}
    pages = sorted(p.name for p in (out / "episodes").glob("*.html"))
    assert pages == sorted(f"{r['key']}.html" for r in rows)  # one each, the stale page removed
    report = (out / "report.html").read_text()
    for row in rows:
        page = (out / "episodes" / f"{row['key']}.html").read_text()
        turns = _turns_of(out, row)
        assert f"<h2>turns ({len(turns)})</h2>" in page and page.count("<section class='turn'") == len(turns)
        assert row["task_id"] in page and f"href='episodes/{row['key']}.html'" in report
        # every turn that ran code shows that code, and its output, once
        ran = [t for t in turns if t["executions"]]
        assert ran and page.count("<pre class='code'>") >= len(ran), row["scaffold"]
        assert page.count("class='exec-head") == sum(len(t["executions"]) for t in turns)
        first_out = next(t["executions"][0]["stdout_tail"] for t in ran if t["executions"][0]["stdout_tail"])
        assert first_out.splitlines()[0].replace("'", "&#x27;") in page
        # the kept submission is linked (relative to the page) and previewed
        kept = row["kept_files"]["submission.csv"]
        assert f"href='../{kept}'" in page and (out / kept).is_file()
        assert (out / kept).read_text().splitlines()[0] in page
        # the milestones and the grade of the row
        for name, points in row["reward_parts"].items():
            assert f"<th>{name}</th><td>{points:.3f}</td>" in page
        assert f"<th>score</th><td>{row['grade_score']}</td>" in page


def test_code_is_shown_once_under_its_own_heading():
    react = {"text": "<think>fit</think>\n<tool_call>\npython\n<code>\nprint(1)\n</code>\n</tool_call>"}
    aide = {"text": "Plan: fit.\n\n```python\nprint(2)\n```\n"}
    dojo = {"text": '```json\n{"action": "execute_code", "params": {"code": "print(3)"}}\n```'}
    native = {"text": "", "tool_calls": [{"name": "python", "arguments": {"code": "print(4)"}}]}
    for turn, code in ((react, "print(1)\n"), (aide, "print(2)\n"), (dojo, "print(3)"), (native, "print(4)")):
        reply, codes = split_code(turn)
        assert codes == [code] and (code.strip() not in reply or turn is native), (turn, reply)
    assert split_code({"text": "no code here"}) == ("no code here", [])


def test_what_an_agent_prints_is_escaped_everywhere():
    turn = {"text": HOSTILE + "\n```python\nprint('" + HOSTILE + "')\n```", "stage": "<b>x</b>",
            "tool_calls": [{"name": "<i>t</i>", "arguments": {"q": HOSTILE}}], "observations": [HOSTILE],
            "executions": [{"exit_code": 1, "stdout_tail": HOSTILE, "stderr_tail": HOSTILE, "killed": "error",
                            "detail": HOSTILE}], "format_ok": False, "format_error": HOSTILE}
    page = render_turn(1, turn)
    assert "<script" not in page and "<img" not in page and "<b>x" not in page and "<i>t" not in page
    assert page.count("&lt;script&gt;window.__pwned = 1&lt;/script&gt;") >= 6


def _hostile_copy(src: Path, dest: Path) -> dict:
    """The run with one episode rewritten as a hostile agent would: a reply, code and output that
    are HTML, a failing grade reason and a file name that are HTML too."""
    shutil.copytree(src, dest)
    rows = read_results(dest)
    row = next(r for r in rows if r["scaffold"] == "react")
    path = dest / row["trajectory"]
    record = json.loads(path.read_text())
    turn = record["trajectory"]["turns"][1]
    turn["text"] = HOSTILE + turn["text"].replace("<code>\n", "<code>\nprint('" + HOSTILE + "')\n", 1)
    turn["executions"][0]["stdout_tail"] = HOSTILE + "\n" + turn["executions"][0]["stdout_tail"]
    turn["observations"] = [HOSTILE]
    path.write_text(json.dumps(record))
    row["grade_reason"] = HOSTILE
    row["error"] = HOSTILE
    lines = [json.dumps(r) for r in rows]
    (dest / "results.jsonl").write_text("\n".join(lines) + "\n")
    build_report(dest)
    return row


def test_hostile_episode_reaches_the_browser_as_text(quickstart_run, tmp_path, browser):
    out = tmp_path / "hostile"
    row = _hostile_copy(quickstart_run, out)
    page = out / "episodes" / f"{row['key']}.html"
    assert "<script>window" not in page.read_text() and "<img src=x" not in page.read_text()
    assert "<script>window" not in (out / "report.html").read_text()
    browser.open(page)
    assert browser.evaluate("document.scripts.length") == 0 and browser.evaluate("document.images.length") == 0
    assert browser.evaluate("window.__pwned === undefined")
    shown = browser.evaluate("Array.from(document.querySelectorAll('pre')).map(p => p.textContent).join('\\n')")
    assert shown.count(HOSTILE) >= 4  # reply, code, output, observation: all visible as text
    browser.open(out / "report.html")
    assert browser.evaluate("window.__pwned === undefined") and browser.exceptions == []


def _visible(browser: HeadlessChromium, table: str, column: int) -> list[str]:
    return browser.evaluate(f"Array.from(document.querySelectorAll('#{table} tbody tr'))"
                            f".filter(r => !r.hidden).map(r => r.cells[{column}].textContent)")


def test_viewer_in_a_real_browser(quickstart_run, browser, tmp_path):
    out = quickstart_run
    build_report(out, title="viewer check")
    rows = read_results(out)
    browser.open(out / "report.html")
    assert browser.evaluate("document.getElementById('episode-count').textContent") == "6 of 6 episodes shown"
    # the summary fits a 1400 px window: nothing scrolls sideways
    assert browser.evaluate("window.innerWidth") == 1400
    assert browser.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    # filter by scaffold, then by outcome: every table narrows, the count says so
    browser.select("#f-scaffold", "react")
    assert _visible(browser, "episodes", 1) == ["react", "react"]
    assert _visible(browser, "per-task", 1) == ["react", "react"] and _visible(browser, "summary", 1) == ["react"]
    assert browser.evaluate("location.hash") == "#episodes:scaffold=react"
    best = next(r for r in rows if r["scaffold"] == "aide" and r.get("grade_any_medal"))
    tier = next(t for t in ("gold", "silver", "bronze") if best[f"grade_{t}_medal"])
    browser.select("#f-scaffold", "")
    browser.select("#f-outcome", tier)
    medalled = [r for r in rows if r.get(f"grade_{tier}_medal")]
    assert sorted(_visible(browser, "episodes", 0)) == sorted(r["task_id"] for r in medalled)
    browser.click("#f-clear")
    assert len(_visible(browser, "episodes", 0)) == 6
    # the summary's episode count opens that group's episodes
    browser.click("#summary tbody tr:nth-child(2) td:nth-child(4) a")  # mledojo (groups are sorted)
    browser.wait_for("location.hash.includes('scaffold=mledojo')")
    # the page filters on its hashchange event, which can run after the new hash is readable
    browser.wait_for("Array.from(document.querySelectorAll('#episodes tbody tr')).filter(r => !r.hidden)"
                     ".every(r => r.cells[1].textContent === 'mledojo')")
    assert _visible(browser, "episodes", 1) == ["mledojo", "mledojo"]
    # click a task name: its episode page, with every turn
    browser.click("#episodes tbody tr:not([hidden]) td:first-child a")
    browser.wait_for("location.pathname.includes('/episodes/') && document.readyState === 'complete'")
    key = browser.evaluate("location.pathname.split('/').pop().replace('.html', '')")
    row = next(r for r in rows if r["key"] == key)
    assert row["scaffold"] == "mledojo"
    assert browser.evaluate("document.querySelectorAll('section.turn').length") == len(_turns_of(out, row))
    assert browser.evaluate("document.querySelector('h1').textContent").startswith(row["task_id"])
    replies = browser.evaluate("Array.from(document.querySelectorAll('pre.reply')).map(p => p.textContent)")
    assert any("execute_code" in text for text in replies)
    assert browser.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    shot = browser.screenshot(tmp_path / "episode.png")
    assert png_size(shot)[0] >= 1000
    # and back: the report opens filtered to this episode's task and group
    browser.click("a[href^='../report.html']")
    browser.wait_for("location.pathname.endsWith('report.html') && document.readyState === 'complete'")
    assert _visible(browser, "episodes", 0) == [row["task_id"]]
    assert browser.exceptions == []
    keep = os.environ.get("SANDMLE_SCREENSHOT_DIR")  # to look at them: SANDMLE_SCREENSHOT_DIR=/tmp pytest ...
    if keep:
        (Path(keep) / "episode.png").write_bytes(shot)
        browser.open(out / "report.html")
        browser.screenshot(Path(keep) / "report-viewer.png")


def test_summary_fits_1400px_with_many_groups_and_long_labels(tmp_path, browser):
    """Two seeds (every rate has a SEM), two policies, one with a long label: still no sideways scroll."""
    out = tmp_path / "wide"
    write_results(out, ["baseline", "transformers(model=runs/train_grpo_smollm2_cpu/train/checkpoint-1200)"])
    build_report(out)
    browser.open(out / "report.html")
    widths = browser.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                              " document.getElementById('summary').getBoundingClientRect().right]")
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths
    assert browser.evaluate("document.querySelectorAll('#episodes tbody tr').length") == len(read_results(out))
    # rows of failed episodes (no trajectory) still get a page that says why
    failed = next(r for r in read_results(out) if r["status"] != "ok")
    page = (out / "episodes" / f"{failed['key']}.html").read_text()
    assert "RuntimeError: sandbox died" in page and "<h2>turns (0)</h2>" in page


def test_a_rebuild_writes_only_the_pages_of_changed_episodes(tmp_path):
    out = tmp_path / "run"
    rows = write_results(out, ["baseline"])
    from sandmle.evaluation.report_episodes import write_episode_pages
    from sandmle.evaluation.report_html import CSS

    assert write_episode_pages(out, rows, CSS) == (len(rows), 0)
    assert write_episode_pages(out, rows, CSS) == (0, len(rows))
    rows[0]["reward_total"] = 0.123  # a changed row (a rerun episode): its page only
    assert write_episode_pages(out, rows, CSS) == (1, len(rows) - 1)
    assert "0.123" in (out / "episodes" / f"{rows[0]['key']}.html").read_text()
    (out / "episodes" / f"{rows[1]['key']}.html").unlink()  # a page deleted by hand comes back
    assert write_episode_pages(out, rows, CSS) == (1, len(rows) - 1)


def test_milestone_error_bars_are_the_sem_over_seeds_or_over_episodes():
    from sandmle.evaluation.aggregate import summarize
    from sandmle.evaluation.plots import milestone_sems

    def row(seed: int, task: str, valid: float) -> dict:
        return {"task_set": "s", "task_id": task, "scaffold": "react", "policy": "p", "seed": seed,
                "status": "ok", "reward_parts": {"valid": valid}}

    one_seed = [row(0, "a", 0.2), row(0, "b", 0.0), row(0, "c", 0.2), row(0, "d", 0.0)]
    sems, what = milestone_sems(summarize(one_seed), ["valid"], one_seed)
    # points 0.2, 0, 0.2, 0: std 0.11547 (ddof 1) / sqrt(4)
    assert what == "SEM over episodes (one seed)" and sems[("s", "react", "p")] == [pytest.approx(0.057735, abs=1e-6)]
    two_seeds = [row(0, "a", 0.2), row(0, "b", 0.2), row(1, "a", 0.0), row(1, "b", 0.2)]
    sems, what = milestone_sems(summarize(two_seeds), ["valid"], two_seeds)
    # per-seed means 0.2 and 0.1: std 0.0707 / sqrt(2) = 0.05
    assert what == "SEM over seeds" and sems[("s", "react", "p")] == [pytest.approx(0.05)]


def test_a_malformed_trajectory_costs_its_page_not_the_report(tmp_path):
    out = tmp_path / "run"
    rows = write_results(out, ["baseline"])
    bad, outside = [r for r in rows if r["status"] == "ok"][:2]
    bad["trajectory"] = "trajectories/bad.jsonl"
    outside["trajectory"] = "../../etc/passwd"  # a hand-edited row never reads outside the run
    (out / "trajectories").mkdir()
    (out / "trajectories" / "bad.jsonl").write_text(json.dumps(
        {"trajectory": {"turns": [{"text": 5, "wall_s": "slow", "usage": 3, "executions": "x"}]}}))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_report(out)
    assert "could not be shown: TypeError" in (out / "episodes" / f"{bad['key']}.html").read_text()
    page = (out / "episodes" / f"{outside['key']}.html").read_text()
    assert "trajectory path outside the run" in page and "root:" not in page
    assert len(list((out / "episodes").glob("*.html"))) == len(rows)
