"""The throughput benchmarks' own logic (issue 25), without their long runs: micro_vs_full resumes
from its results file (a line cut off by a kill runs again; another scale or method is not
reused), its micro side is sized as the procedural generator sizes tasks, and bench_summary
prints the targets table from the JSON ``make bench`` writes; the learning study gives the grpo
trainer only settings it takes and plots its curves. The measurements themselves are benchmarks, not tests (no timed
assertions here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_micro_vs_full_resumes_only_finished_seeds_of_the_same_run(tmp_path):
    mvf = _module("micro_vs_full")
    out = tmp_path / "results.jsonl"
    row = {"method": mvf.METHOD, "scale": 0.01, "max_rows": 1_000_000, "seed": "lite-a", "family": "text",
           "ratio_cold": 30.0, "ratio_warm": 3.0}
    out.write_text(json.dumps(row) + "\n"
                   + json.dumps({**row, "seed": "lite-b", "scale": 1.0}) + "\n"      # another scale
                   + json.dumps({**row, "seed": "lite-c", "method": 1}) + "\n"       # the old method
                   + '{"method": 2, "scale": 0.01, "max_rows": 1000000, "seed": "lite-d", "fam')  # cut off
    assert set(mvf.done_rows(out, 0.01, 1_000_000)) == {"lite-a"}
    assert set(mvf.done_rows(out, 1.0, 1_000_000)) == {"lite-b"}
    assert mvf.done_rows(tmp_path / "missing.jsonl", 0.01, 1_000_000) == {}


def test_micro_side_is_sized_like_a_generated_task_and_full_sizes_are_known():
    from sandmle.generators.configs import ProceduralConfig
    from sandmle.generators.seeds import all_seeds

    mvf = _module("micro_vs_full")
    cfg = ProceduralConfig()
    lite = [s for s in all_seeds() if s.mlebench_id]
    assert {s.mlebench_id for s in lite} <= set(mvf.FULL)  # every lite seed has its competition's size
    for seed in lite:
        n_train, n_test = mvf.micro_sizes(seed, np.random.default_rng(0))
        test_range = cfg.media_test_rows if seed.synth in ("image", "audio") else cfg.test_rows
        assert cfg.rows[0] <= n_train <= cfg.rows[1] and test_range[0] <= n_test <= test_range[1]
    summary = mvf.summarize([{"family": "text", "ratio_cold": 10.0, "ratio_warm": 2.0},
                             {"family": "text", "ratio_cold": 30.0, "ratio_warm": 4.0},
                             {"family": "audio", "ratio_cold": 100.0, "ratio_warm": 20.0}])
    assert summary["families"]["text"]["median_ratio_cold"] == 20.0
    assert summary["median_over_families_cold"] == 60.0  # of the family medians 20 and 100


def test_a_full_step_stopped_at_the_time_cap_counts_as_a_lower_bound(tmp_path, capsys):
    mvf = _module("micro_vs_full")
    # a real cold step: a program that would run for a minute is stopped at the cap
    (tmp_path / "solution.py").write_text("import time\ntime.sleep(60)\n")
    wall, _, stopped = mvf.cold_step(tmp_path, cap_s=0.5)
    assert stopped and wall == 0.5
    (tmp_path / "solution.py").write_text("print('done')\n")
    wall, _, stopped = mvf.cold_step(tmp_path, cap_s=30)
    assert not stopped and wall < 30
    (tmp_path / "solution.py").write_text("raise SystemExit('broken')\n")
    try:
        mvf.cold_step(tmp_path, cap_s=30)
    except RuntimeError as exc:  # a failing program is a failure, not a capped measurement
        assert "broken" in str(exc)
    else:
        raise AssertionError("a failed full step must raise")
    # A bound above the median cannot move it; one at or below it makes the median a bound too.
    assert mvf.censored_median([(10.0, False), (20.0, False), (4000.0, True)]) == (20.0, False)
    assert mvf.censored_median([(10.0, False), (15.0, True), (4000.0, False)]) == (15.0, True)
    rows = [{"family": "text", "ratio_cold": 10.0, "ratio_warm": 2.0},
            {"family": "audio", "ratio_cold": 100.0, "ratio_warm": 20.0},
            {"family": "text-multilabel", "ratio_cold": 5000.0, "ratio_warm": None, "censored": True}]
    summary = mvf.summarize(rows)
    assert summary["families"]["text-multilabel"] == {"seeds": 1, "median_ratio_cold": 5000.0,
                                                      "cold_lower_bound": True, "median_ratio_warm": None}
    assert summary["median_over_families_cold"] == 100.0 and not summary["median_over_families_cold_lower_bound"]
    assert summary["median_over_families_warm"] == 11.0  # over the families whose warm step ran
    # the run's own report, for a run whose only seed was stopped at the cap (no warm step anywhere)
    censored = {"seed": "lite-jigsaw", "micro_rows": [156, 1469], "full_rows": [159571, 153164], "capped": False,
                "micro_warm_s": 2.167, "full_cold_s": 1800.0, "full_warm_s": None, "ratio_cold": 830.7,
                "ratio_warm": None, "censored": True, "family": "text-multilabel"}
    mvf.print_report([censored], mvf.summarize([censored]), scale=1.0, max_rows=1_000_000)
    report = capsys.readouterr().out
    assert ">=830.7x" in report and "median over families: >= 830.7x cold, no warm step run" in report
    (tmp_path / "micro_vs_full.json").write_text(json.dumps({"rows": [{**r, "scale": 1.0} for r in rows], **summary}))
    out = subprocess.run([sys.executable, str(BENCH / "bench_summary.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if "text-multilabel" in x)
    assert ">=5000.0x" in line and "not run" in line


def test_bench_summary_prints_each_target_against_what_was_measured(tmp_path):
    (tmp_path / "sandbox_overhead.json").write_text(json.dumps({"rows": [
        {"mode": "local warm pool", "step": "trivial", "p50_ms": 1.5},
        {"mode": "local warm pool", "step": "session-start", "p50_ms": 12.0},
        {"mode": "pipe relay (floor)", "step": "trivial", "p50_ms": 0.1}], "notes": []}))
    (tmp_path / "rollout_throughput.json").write_text(json.dumps([
        {"scaffold": "react", "mode": "warm pool", "per_hour": 13_000.0},
        {"scaffold": "react", "mode": "cold processes", "per_hour": 3_250.0},
        {"scaffold": "aide", "mode": "warm pool", "per_hour": 1_000.0}]))
    (tmp_path / "micro_vs_full.json").write_text(json.dumps({
        "rows": [{"scale": 1.0}], "families": {"text": {"median_ratio_cold": 80.0, "median_ratio_warm": 9.0}},
        "median_over_families_cold": 80.0, "median_over_families_warm": 9.0}))
    out = subprocess.run([sys.executable, str(BENCH / "bench_summary.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert lines["local warm pool trivial p50"].rstrip().endswith("yes")
    assert lines["local warm pool session-start p50"].rstrip().endswith("no")
    assert "13,000" in out and "4.0x cold" in out
    aide = next(line for line in out.splitlines() if line.startswith("aide"))
    assert aide.rstrip().endswith("no") and "2,760" in aide  # 1,126/h x 12,000 / 4,895
    assert "80.0x" in out and "median over families" in out


def test_learning_study_gives_grpo_only_a_rollout_compute_type_the_trainer_takes(tmp_path):
    """learning_smollm2's --compute-type offers float16 and bfloat16 (for the engine on a GPU),
    which the grpo trainer's CPU engine rollouts (``rollout_compute_type``) do not take: the
    script refuses exactly those, before it makes anything, and what it passes validates."""
    import yaml
    from pydantic import ValidationError

    from sandmle.plugins.trl.grpo import GrpoConfig

    study = _module("learning_smollm2")

    def trainer_takes(compute: str) -> bool:
        try:
            GrpoConfig(rollout_backend="ctranslate2", rollout_compute_type=compute)
            return True
        except ValidationError:
            return False

    refused = set()
    for compute in (None, *study.COMPUTE_TYPES):
        for engine, device in (("ctranslate2", "cpu"), ("ctranslate2", "cuda"), ("transformers", "cpu")):
            try:
                args = study.grpo_rollout_args(engine, device, compute)
            except ValueError as exc:
                assert (engine, device) == ("ctranslate2", "cpu") and not trainer_takes(compute)
                assert "float32, int8, int8_float32, int16" in str(exc)
                refused.add(compute)
                continue
            config = GrpoConfig(**yaml.safe_load("{" + args.lstrip(", ") + "}"))  # the trainer's own check
            if (engine, device) == ("ctranslate2", "cpu"):
                assert (config.rollout_backend, config.rollout_compute_type) == ("ctranslate2", compute or "float32")
            else:
                assert args == "" and config.rollout_backend == "transformers"
    assert refused == {"float16", "bfloat16"}

    out = tmp_path / "study"  # the user's path: the script itself
    proc = subprocess.run([sys.executable, str(BENCH / "learning_smollm2.py"), "--out", str(out),
                           "--compute-type", "bfloat16"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--compute-type bfloat16" in proc.stderr, proc.stderr[-1000:]
    assert not out.exists()


def test_learning_study_plots_its_curves_and_skips_what_has_not_run(tmp_path):
    study = _module("learning_smollm2")
    only_sft = {"sft_heldout_nll": [{"step": 10, "eval_loss": 0.26}, {"step": 20, "eval_loss": 0.01}]}
    assert [p.name for p in study.write_plots(tmp_path, only_sft)] == ["sft_heldout_nll.png"]
    both = {**only_sft, "grpo_steps": [{"step": s, "reward": r, "reward_std": 0.2} for s, r in ((1, 0.3), (2, 0.6))]}
    written = study.write_plots(tmp_path, both)
    assert [p.name for p in written] == ["sft_heldout_nll.png", "grpo_reward.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000 for p in written)


def test_bench_summary_reads_a_stopped_full_scale_run_from_its_results_file(tmp_path):
    """``micro_vs_full`` prints its JSON summary only at its end; a full-scale run stopped after
    some seeds still has one line per finished seed, and the summary reads those (full scale only)."""
    mvf = _module("micro_vs_full")
    rows = [{"method": mvf.METHOD, "scale": 1.0, "max_rows": 1_000_000, "seed": f"lite-{i}", "family": fam,
             "ratio_cold": cold, "ratio_warm": cold / 2} for i, (fam, cold) in enumerate(
                 [("text", 10.0), ("text", 30.0), ("audio", 4.0)])]
    rows.append({**rows[0], "seed": "lite-x", "scale": 0.01, "ratio_cold": 1000.0})  # a quick run: not counted
    (tmp_path / "micro_vs_full-scale1.0.jsonl").write_text("\n".join(map(json.dumps, rows)) + '\n{"cut')
    out = subprocess.run([sys.executable, str(BENCH / "bench_summary.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "micro vs full, text" in out and "20.0x" in out and "micro vs full, audio" in out
    median = next(line for line in out.splitlines() if "median over families" in line)
    assert "12.0x" in median and median.split("x")[-2].strip().endswith("50")  # (20 + 4) / 2 against 50x
    assert "the 3 seeds a full-scale run has finished so far" in out


def test_full_scale_seeds_run_cheapest_first_and_images_past_the_free_disk_are_known():
    mvf = _module("micro_vs_full")
    small, taxi = mvf.FULL["leaf-classification"], mvf.FULL["new-york-city-taxi-fare-prediction"]
    assert small.cost(1.0, 1_000_000) < taxi.cost(1.0, 1_000_000)
    assert taxi.rows(1.0, 1_000_000) == (1_000_000, 9_914)  # capped at --max-rows, and marked so
    melanoma = mvf.FULL["siim-isic-melanoma-classification"]
    assert melanoma.pixels_bytes(1.0, 1_000_000) == (33_126 + 10_982) * 3 * 2_000 ** 2  # ~529 GB raw
    assert small.pixels_bytes(1.0, 1_000_000) == 0
