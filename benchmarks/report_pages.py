"""The report's trajectory viewer at the size of a training study: how long ``sandmle report``
takes to write one page per episode for N synthetic episodes (default 2,000).

Each synthetic episode looks like a baseline ReAct/AIDE episode of the quickstart: 8 turns, each
a reply with a 150-line script, its sandbox output and the observation, a results row with every
grade field and a kept ``submission.csv``. Measured in one run: (a) reading and JSON-parsing
every trajectory (the floor: the pages need that data), (b) writing every episode page, (c) the
whole ``build_report`` (plots, report.html with the per-task and per-episode tables, the pages),
(d) the pages again when nothing changed (a rebuild writes only the pages of new or changed
episodes). The ratio (b) / (a) says what rendering costs on top of reading.

    .venv/bin/python benchmarks/report_pages.py [--episodes 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from sandmle.evaluation.report import build_report
from sandmle.evaluation.report_episodes import write_episode_pages
from sandmle.evaluation.report_html import CSS
from sandmle.evaluation.store import Episode, read_results

CODE = "\n".join(f"x{i} = train['feature_{i % 17}'].fillna(0).to_numpy()  # step {i}" for i in range(150))


def synthetic_run(out: Path, n: int, turns: int = 8) -> None:
    rng = random.Random(0)
    rows = []
    scaffolds, policies = ["react", "aide", "mledojo"], ["baseline", "trained"]
    for i in range(n):
        ep = Episode("procedural", f"task-{i % 100:03d}", "/x", policies[i % 2], i % 2, scaffolds[i % 3],
                     i % 3, i // 300)
        rel = f"trajectories/procedural/{ep.task_id}.{ep.scaffold}.s{ep.seed}.{ep.key}.jsonl"
        traj = {"task_id": ep.task_id, "scaffold": ep.scaffold, "backend": "baseline", "seed": ep.seed,
                "stop_reason": "answer", "extra": {"score_calls": []},
                "turns": [{"messages_in": 2 * t + 1, "stage": "react", "format_ok": True, "wall_s": 0.4,
                           "text": f"<think>Fit model {t}.</think>\n<tool_call>\npython\n<code>\n{CODE}\n</code>",
                           "tool_calls": [],
                           "observations": [f"[Output]\nVALIDATION_METRIC rmse {rng.random():.6f}\n" * 20],
                           "executions": [{"exit_code": 0, "stdout_tail": "wrote submission.csv: 125 rows\n" * 30,
                                           "stderr_tail": "", "wall_s": 0.3, "peak_mem_mb": 150.0}],
                           "usage": {"completion_tokens": 900}} for t in range(turns)]}
        grade = {"score": rng.random(), "valid_submission": True, "submission_exists": True,
                 "gold_medal": False, "silver_medal": False, "bronze_medal": rng.random() < .2,
                 "above_median": rng.random() < .5, "human_rank": rng.random()}
        grade["any_medal"] = grade["bronze_medal"]
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"episode": ep.to_dict(), "trajectory": traj, "grade": grade,
                                    "reward": {"total": 0.4, "parts": {}}}) + "\n")
        keep = path.with_suffix("")
        keep.mkdir(exist_ok=True)
        (keep / "submission.csv").write_text("id,y\n" + "".join(f"{k},{rng.random():.6f}\n" for k in range(125)))
        parts = {"format": 0.1, "valid": 0.2, "median": 0.1 * grade["above_median"],
                 "bronze": 0.5 * grade["bronze_medal"]}
        rows.append({"key": ep.key, **ep.to_dict(), "status": "ok", "error": None, "trajectory": rel,
                     **{f"grade_{k}": v for k, v in grade.items()}, "reward_total": sum(parts.values()),
                     "reward_parts": parts, "steps": turns, "llm_calls": turns, "prompt_tokens": 9000,
                     "completion_tokens": 900 * turns, "cost_usd": 0.0, "wall_s": 3.0, "stop_reason": "answer",
                     "format_rate": 1.0, "kept_files": {"submission.csv": f"{keep.relative_to(out)}/submission.csv"}})
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandmle-report-bench-") as tmp:
        out = Path(tmp)
        synthetic_run(out, args.episodes)
        rows = read_results(out)
        start = time.perf_counter()
        for row in rows:
            json.loads((out / row["trajectory"]).read_text(encoding="utf-8"))
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        build_report(out)  # from nothing: plots, report.html, every page
        report_s = time.perf_counter() - start
        (out / "episodes" / "index.json").unlink()
        for page in (out / "episodes").glob("*.html"):
            page.unlink()
        start = time.perf_counter()
        write_episode_pages(out, rows, CSS)  # the pages alone, from nothing
        pages_s = time.perf_counter() - start
        start = time.perf_counter()
        written, kept = write_episode_pages(out, rows, CSS)  # a rebuild with nothing new
        rebuild_s = time.perf_counter() - start
        assert written == 0 and kept == len(rows), (written, kept)
        sizes = [p.stat().st_size for p in (out / "episodes").iterdir()]
        result = {"episodes": len(rows), "read_s": round(read_s, 3), "pages_s": round(pages_s, 3),
                  "pages_ms_per_episode": round(1000 * pages_s / len(rows), 3),
                  "pages_over_read": round(pages_s / read_s, 2), "build_report_s": round(report_s, 3),
                  "rebuild_pages_s": round(rebuild_s, 3),
                  "page_kb_median": round(sorted(sizes)[len(sizes) // 2] / 1024, 1),
                  "report_html_kb": round((out / "report.html").stat().st_size / 1024, 1)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['episodes']} episodes: reading the trajectories {read_s:.2f} s; writing the episode pages "
          f"{pages_s:.2f} s ({result['pages_ms_per_episode']} ms each, {result['pages_over_read']}x the read); "
          f"whole report {report_s:.2f} s; pages again with nothing new {rebuild_s:.2f} s; "
          f"page {result['page_kb_median']} KiB (median), "
          f"report.html {result['report_html_kb']} KiB")


if __name__ == "__main__":
    main()
