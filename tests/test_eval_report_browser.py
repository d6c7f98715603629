"""The report as people look at it: plots drawn per task and per tier, and report.html opened in
a real headless browser (Debian's chromium): it renders without script errors, every image
loads, a full-page screenshot is taken, and a click on a column header sorts the table."""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import pytest

from sandmle.evaluation.report import build_report
from sandmle.evaluation.store import Episode

from headless_browser import HeadlessChromium, find_chromium

TASKS = ["breast-cancer-binary-0001", "descr-text-multiclass-0002", "digits-image-multiclass-0003",
         "co2-forecast-0004", "a-rather-long-task-name-that-must-not-be-cut-0005"]
SCAFFOLDS = ["react", "aide", "mledojo"]


def write_results(out: Path, policies: list[str], seed: int = 0) -> list[dict]:
    """Hand-built rows: every policy x scaffold x task x 2 seeds, tiers and HumanRank drawn from
    a fixed random stream (some episodes invalid, some failed)."""
    rng = random.Random(seed)
    rows = []
    for pi, policy in enumerate(policies):
        for si, scaffold in enumerate(SCAFFOLDS):
            for task in TASKS:
                for s in (0, 1):
                    ep = Episode("gen", task, "/x", policy, pi, scaffold, si, s)
                    valid, score = rng.random() < 0.85, rng.random()
                    tier = ("gold" if score > .9 else "silver" if score > .8 else "bronze" if score > .7
                            else None) if valid else None
                    parts = {"format": 0.1, "valid": 0.2 * valid, "median": 0.2 * (valid and score > .5),
                             "gold": 0.3 * (tier == "gold"), "code_ran": 0.0}
                    rows.append({"key": ep.key, **ep.to_dict(), "status": "ok" if valid or s else "failed",
                                 "error": None if valid else "RuntimeError: sandbox died",
                                 "grade_valid_submission": valid, "grade_submission_exists": valid,
                                 "grade_gold_medal": tier == "gold", "grade_silver_medal": tier == "silver",
                                 "grade_bronze_medal": tier == "bronze", "grade_any_medal": tier is not None,
                                 "grade_above_median": valid and score > .5,
                                 "grade_human_rank": score if valid else 0.0,
                                 "reward_total": sum(parts.values()), "reward_parts": parts,
                                 "steps": rng.randint(3, 12), "prompt_tokens": 900, "completion_tokens": 300,
                                 "cost_usd": 0.0, "wall_s": 30 * rng.random()})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_plots_per_tier_and_task_and_the_comparison_only_with_several_policies(tmp_path):
    write_results(tmp_path / "two", ["baseline", "trained"])
    build_report(tmp_path / "two")
    plots = sorted(p.name for p in (tmp_path / "two" / "plots").iterdir())
    assert plots == ["cross_scaffold.png", "humanrank_by_task.png", "medal_tiers.png", "reward_breakdown.png",
                     "reward_distribution.png"]
    for summary in json.loads((tmp_path / "two" / "summary.json").read_text()):
        assert sum(t["mean"] for t in summary["tiers"].values()) == pytest.approx(1.0)  # tiers stack to 100%
    # nothing is cut at the edges (long task names, axis labels, legends): every border is blank
    import matplotlib.image

    for name in plots:
        pixels = matplotlib.image.imread(tmp_path / "two" / "plots" / name)[..., :3]
        for edge in (pixels[:3], pixels[-3:], pixels[:, :3], pixels[:, -3:]):
            assert edge.min() > 0.95, f"{name}: something is drawn across the image border"
    md = (tmp_path / "two" / "report.md").read_text()
    assert "![cross_scaffold](plots/cross_scaffold.png)" in md and "*Each policy in each scaffold" in md
    # one policy: no comparison plot, and a stale one from an earlier build is removed
    one = tmp_path / "two"
    write_results(one, ["baseline"])
    build_report(one)
    assert not (one / "plots" / "cross_scaffold.png").exists()
    assert "cross_scaffold" not in (one / "report.md").read_text()


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium: run scripts/install-system-deps.sh (it installs Debian's chromium)")
    chrome = HeadlessChromium(binary)
    yield chrome
    chrome.close()


def _column(browser: HeadlessChromium, table: str, header: str) -> list[str]:
    return browser.evaluate(
        f"(() => {{ const t = document.getElementById('{table}');"
        f" const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.startsWith('{header}'));"
        " return Array.from(t.tBodies[0].rows).map(r => r.cells[col].textContent); })()")


def _leading_number(text: str) -> float:
    return float(text.split("%")[0].split(" ")[0])


def test_report_html_in_a_real_browser(tmp_path, browser):
    out = tmp_path / "study"
    write_results(out, ["baseline", "trained"])
    build_report(out, title="browser check")
    browser.open(out / "report.html")
    assert browser.evaluate("document.title") == "browser check"
    assert browser.evaluate("document.querySelector('h1').textContent") == "browser check"
    images = browser.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert sorted(i[0] for i in images) == ["cross_scaffold", "humanrank_by_task", "medal_tiers",
                                            "reward_breakdown", "reward_distribution"]
    assert all(done and w > 300 and h > 150 for _, done, w, h in images), images
    assert browser.evaluate("document.querySelectorAll('#summary tbody tr').length") == 6
    # a real mouse click on a header sorts by it; a second click reverses
    browser.click("#summary th:nth-child(11)")  # "any medal"
    assert browser.evaluate("document.querySelector('#summary th:nth-child(11)').textContent") == "any medal"
    values = [_leading_number(v) for v in _column(browser, "summary", "any medal")]
    assert values == sorted(values) and len(set(values)) > 1
    browser.click("#summary th:nth-child(11)")
    assert [_leading_number(v) for v in _column(browser, "summary", "any medal")] == sorted(values, reverse=True)
    browser.click("#summary th:nth-child(3)")  # policy: text
    policies = _column(browser, "summary", "policy")
    assert policies == sorted(policies) and policies[0] == "baseline" and policies[-1] == "trained"
    browser.click("#reward-breakdown th:nth-child(4)")  # the other table sorts too
    formats = [float(v) for v in _column(browser, "reward-breakdown", "format")]
    assert formats == sorted(formats)
    assert browser.exceptions == []
    shot = browser.screenshot(tmp_path / "report.png")
    width, height = png_size(shot)
    assert width >= 1000 and height > 2000, (width, height)  # the whole page, all plots
    keep = os.environ.get("SANDMLE_SCREENSHOT_DIR")  # to look at it: SANDMLE_SCREENSHOT_DIR=/tmp pytest ...
    if keep:
        (Path(keep) / "report.png").write_bytes(shot)
