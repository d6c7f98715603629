"""Does training teach SmolLM2-135M anything? Base vs SFT vs SFT->GRPO on held-out tasks, in three scaffolds.

Not a test: one measurement, its numbers reported in ``docs/results/learning-cpu/``. Each stage is
a ``sandmle`` command a user would type (the recipes are written into OUT), and the study is
resumable: rerun the same command and finished stages are skipped (their outputs exist; an
interrupted evaluation or training resumes where it stopped).

The curriculum is the scripted baseline agent in its ``short`` style
(:func:`sandmle.scaffolds.baseline_programs.short_program`, ~285 tokens: a compact sklearn
pipeline that writes a valid submission), so a 135M model can learn to emit a whole program
within a 384-token reply. The full AutoML programs (~1,500 tokens) never fit a 320-token reply,
which decided the first measurement (valid 0/6 -> 0/6) by its budget alone.

Stages (``--stages`` picks some; the default runs all):

1. ``generate``: training tasks (generation seed 0) from the ``--train-seeds`` families, held-out
   tasks (generation seed 1) from the ``--heldout-seeds`` families, none of them in training;
2. ``sft``: collect the short baseline's valid ReAct episodes on the training tasks (a fifth of
   the tasks' transcripts held out), fine-tune, held-out negative log-likelihood per assistant
   token at every checkpoint (a curve);
3. ``eval-sft``: base and SFT on the held-out tasks in react, aide and mledojo: format, valid,
   above-median and medal rates and reward, with standard errors, and Fisher's exact test of SFT
   vs base on the valid rate in each scaffold;
4. ``grpo``: GRPO from the SFT model (ReAct, milestone reward, ``--grpo-steps`` steps, ``--n``
   rollouts per task), its training-reward curve;
5. ``eval-grpo``: the GRPO model on the same held-out table.

    SANDMLE_TORCH_THREADS=2 python benchmarks/learning_smollm2.py --out runs/learning-cpu
    python benchmarks/learning_smollm2.py --out runs/learning-gpu --device cuda --dtype bfloat16
    python benchmarks/learning_smollm2.py --smoke --out /tmp/learning-smoke   # minutes: every stage, tiny

``summary.json`` and ``summary.md`` in OUT hold every number, the exact commands, seeds and the
wall time of each stage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import textwrap
import time
import typing
from pathlib import Path

from sandmle.plugins.trl.grpo import GrpoConfig

TRAIN_SEEDS = "breast-cancer-binary,penguins-binary,iris-multiclass,wine-multiclass,diabetes-regression,fair-regression"
HELDOUT_SEEDS = ("lite-tabular-playground-series-may-2022,lite-tabular-playground-series-dec-2021,"
                 "lite-nomad2018-predict-transparent-conductors,descr-text-binary,descr-text-multiclass")
SCAFFOLDS = ("react", "aide", "mledojo")
STAGES = ("generate", "sft", "eval-sft", "grpo", "eval-grpo")
COMPUTE_TYPES = ("float32", "int8", "int16", "float16", "bfloat16")  # --compute-type's choices


def grpo_rollout_args(engine: str, device: str, compute_type: str | None) -> str:
    """The grpo trainer's rollout settings for this study (YAML, appended to its args): with the
    ctranslate2 engine on the CPU, the engine generates the rollouts in ``compute_type`` (None:
    float32), which must be one the trainer's ``rollout_compute_type`` takes (its engine runs on
    the CPU, where ctranslate2 has no float16 or bfloat16), else ValueError; "" (the trainer's
    own model generates) otherwise."""
    if engine != "ctranslate2" or device != "cpu":
        return ""
    compute = compute_type or "float32"
    accepted = typing.get_args(GrpoConfig.model_fields["rollout_compute_type"].annotation)
    if compute not in accepted:
        raise ValueError(f"--compute-type {compute}: the grpo trainer's engine rollouts (on the CPU) take "
                         f"only {', '.join(accepted)}; float16 and bfloat16 need --device cuda or --engine transformers")
    return f", rollout_backend: ctranslate2, rollout_compute_type: {compute}"


def scaffold_yaml(name: str, calls: int) -> str:
    limits = f"{{max_llm_calls: {calls}, max_wall_s: 14400, exec_timeout_s: 120}}"
    extra = {"react": "", "aide": f"steps: {max(1, calls - 1)}, num_drafts: 1, ",
             "mledojo": f"max_steps: {calls}, "}[name]
    return f"{{name: {name}, args: {{{extra}limits: {limits}, llm_timeout_s: 14400}}}}"


class Study:
    """The study's folder, its log of commands and stage timings, and the ``sandmle`` runner."""

    def __init__(self, out: Path):
        self.out = out
        self.log_path = out / "commands.jsonl"

    def sh(self, stage: str, *args: str) -> None:
        cmd = [sys.executable, "-m", "sandmle.core.cli", *args]
        print("$ sandmle", " ".join(args), flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        wall = time.time() - t0
        print(f"  ({wall:.0f} s)", flush=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"stage": stage, "command": "sandmle " + " ".join(args), "wall_s": wall}) + "\n")

    def write(self, name: str, text: str) -> Path:
        path = self.out / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def stage_walls(self) -> dict[str, float]:
        walls: dict[str, float] = {}
        if self.log_path.is_file():
            for line in self.log_path.read_text().splitlines():
                row = json.loads(line)
                walls[row["stage"]] = walls.get(row["stage"], 0.0) + row["wall_s"]
        return walls


# ---------------------------------------------------------------------- statistics
def rate(successes: int, n: int) -> dict[str, float]:
    """A rate with its binomial standard error."""
    p = successes / n if n else 0.0
    return {"k": successes, "n": n, "rate": p, "se": math.sqrt(p * (1 - p) / n) if n else 0.0}


def mean_se(values: list[float]) -> dict[str, float]:
    n = len(values)
    if not n:
        return {"mean": 0.0, "se": 0.0, "n": 0}
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": m, "se": sd / math.sqrt(n), "n": n}


def fisher_exact(a_k: int, a_n: int, b_k: int, b_n: int) -> float:
    """Two-sided Fisher exact p-value of ``a_k/a_n`` vs ``b_k/b_n`` (scipy)."""
    from scipy.stats import fisher_exact as fe

    return float(fe([[a_k, a_n - a_k], [b_k, b_n - b_k]], alternative="two-sided")[1])


def table(results: list[dict]) -> dict[str, dict[str, dict]]:
    """Per policy, per scaffold (label's name before its arguments): the held-out rates."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for row in results:
        cells.setdefault((row["policy_name"], row["scaffold"].split("(")[0]), []).append(row)
    out: dict[str, dict[str, dict]] = {}
    for (policy, scaffold), rows in sorted(cells.items()):
        n = len(rows)
        out.setdefault(policy, {})[scaffold] = {
            "episodes": n,
            "format": mean_se([r.get("format_rate") or 0.0 for r in rows]),
            "valid": rate(sum(bool(r.get("grade_valid_submission")) for r in rows), n),
            "above_median": rate(sum(bool(r.get("grade_above_median")) for r in rows), n),
            "medal": rate(sum(bool(r.get("grade_any_medal")) for r in rows), n),
            "reward": mean_se([r.get("reward_total") or 0.0 for r in rows]),
        }
    return out


def compare(tab: dict, policy: str, baseline: str = "base") -> dict[str, float]:
    """Fisher's exact test of ``policy`` vs ``baseline`` on the valid rate, per scaffold."""
    out = {}
    for scaffold, cell in tab.get(policy, {}).items():
        ref = tab.get(baseline, {}).get(scaffold)
        if ref:
            out[scaffold] = fisher_exact(cell["valid"]["k"], cell["valid"]["n"], ref["valid"]["k"], ref["valid"]["n"])
    return out


def read_results(folder: Path, labels: dict[str, str]) -> list[dict]:
    rows = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        name = next((label for label, key in labels.items() if key in row["policy"]), row["policy"])
        rows.append({**row, "policy_name": name})
    return rows


def markdown(summary: dict) -> str:
    lines = ["# Learning study (SmolLM2-135M): base vs SFT vs SFT->GRPO on held-out tasks", ""]
    lines += [f"Settings: `{json.dumps(summary['settings'])}`", ""]
    lines += ["| policy | scaffold | n | format | valid | above median | medal | reward |", "|---|---|---|---|---|---|---|---|"]
    for policy, per in summary.get("heldout", {}).items():
        for scaffold, c in per.items():
            lines.append(f"| {policy} | {scaffold} | {c['episodes']} | {c['format']['mean']:.2f} ± {c['format']['se']:.2f} "
                         f"| {c['valid']['k']}/{c['valid']['n']} ± {c['valid']['se']:.2f} "
                         f"| {c['above_median']['k']}/{c['above_median']['n']} | {c['medal']['k']}/{c['medal']['n']} "
                         f"| {c['reward']['mean']:.3f} ± {c['reward']['se']:.3f} |")
    for name, tests in summary.get("fisher_valid", {}).items():
        lines += ["", f"Fisher exact, valid rate, {name}: " + ", ".join(f"{s} p={p:.3g}" for s, p in tests.items())]
    if summary.get("sft_heldout_nll"):
        lines += ["", "SFT held-out NLL per assistant token: "
                  + ", ".join(f"step {r['step']}: {r['eval_loss']:.3f}" for r in summary["sft_heldout_nll"])]
    if summary.get("grpo_steps"):
        lines += ["", "GRPO training reward: " + ", ".join(f"step {r['step']}: {r.get('reward', 0):.3f}"
                                                          for r in summary["grpo_steps"])]
    lines += ["", "Wall time per stage (s): " + json.dumps({k: round(v) for k, v in summary["wall_s"].items()})]
    lines += ["", "Commands (in order):", ""] + [f"    {c}" for c in summary["commands"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- the study
def write_plots(out: Path, summary: dict) -> list[Path]:
    """The curves of the study as PNGs in ``out``: SFT's held-out NLL per checkpoint and GRPO's
    training reward per step (mean and its spread over the step's rollouts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    nll, steps = summary.get("sft_heldout_nll"), summary.get("grpo_steps")
    for name, rows, ylabel, title in (
            ("sft_heldout_nll.png", nll, "held-out NLL per token", "SFT: held-out NLL"),
            ("grpo_reward.png", steps, "reward (mean ± sd of rollouts)", "GRPO: training reward")):
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        x = [r["step"] for r in rows]
        if name == "grpo_reward.png":
            y = [r["reward"] for r in rows]
            spread = [r.get("reward_std") or 0.0 for r in rows]
            ax.errorbar(x, y, yerr=spread, marker="o", capsize=3)
            ax.set_ylim(0, 1)
        else:
            ax.semilogy(x, [r["eval_loss"] for r in rows], marker="o")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/learning-cpu"))
    ap.add_argument("--device", default="cpu", help="torch device of every model: cpu, cuda, cuda:1")
    ap.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    ap.add_argument("--engine", default="ctranslate2", choices=("ctranslate2", "transformers"),
                    help="what generates held-out episodes and GRPO rollouts: the ctranslate2 engine "
                    "(sandmle[engine]) or the transformers backend")
    ap.add_argument("--compute-type", default=None, choices=COMPUTE_TYPES,
                    help="the engine's weights (default float32 on CPU: int8 garbles the fine-tuned model's "
                    "programs, 3 of 16 compiled vs 16 of 16 in float32)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--scaffolds", default=",".join(SCAFFOLDS), help="held-out evaluations to run, in order")
    ap.add_argument("--train-tasks", type=int, default=40, help="a fifth of them hold out SFT transcripts")
    ap.add_argument("--heldout-tasks", type=int, default=24)
    ap.add_argument("--train-seeds", default=TRAIN_SEEDS)
    ap.add_argument("--heldout-seeds", default=HELDOUT_SEEDS)
    ap.add_argument("--teacher-seeds", default="0,1", help="sampling seeds of the teacher's episodes per task")
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--sft-eval-every", type=int, default=10)
    ap.add_argument("--sft-lr", type=float, default=None, help="default: full fine-tuning 2e-5")
    ap.add_argument("--grpo-steps", type=int, default=10)
    ap.add_argument("--n", type=int, default=4, help="GRPO rollouts per task")
    ap.add_argument("--batch-tasks", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=384, help="reply budget (a short program is ~285 tokens)")
    ap.add_argument("--calls", type=int, default=4, help="replies per episode")
    ap.add_argument("--eval-seed", type=int, default=1, help="sampling seed of the held-out episodes")
    ap.add_argument("--smoke", action="store_true", help="every stage at the smallest size (checks the pipeline)")
    a = ap.parse_args(argv)
    if a.smoke:
        a.train_tasks, a.heldout_tasks, a.sft_steps, a.sft_eval_every = 5, 2, 2, 1
        a.grpo_steps, a.n, a.batch_tasks, a.max_new_tokens, a.calls, a.teacher_seeds = 1, 2, 1, 48, 2, "0"
    stages = set(a.stages.split(","))
    scaffolds = [s for s in a.scaffolds.split(",") if s]
    if set(scaffolds) - set(SCAFFOLDS):
        ap.error(f"unknown scaffolds {sorted(set(scaffolds) - set(SCAFFOLDS))}; choose from {SCAFFOLDS}")
    unknown = stages - set(STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
    try:
        rollout_args = grpo_rollout_args(a.engine, a.device, a.compute_type)
    except ValueError as exc:
        ap.error(str(exc))
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    study = Study(out)
    train_tasks, heldout_tasks = out / "tasks-train", out / "tasks-heldout"
    model_args = f"device: {a.device}, dtype: {a.dtype}"

    if "generate" in stages:
        for folder, n, seeds, gen_seed in ((train_tasks, a.train_tasks, a.train_seeds, 0),
                                           (heldout_tasks, a.heldout_tasks, a.heldout_seeds, 1)):
            if len(list(folder.glob("*/task.yaml"))) < n:  # generate resumes a partial set
                study.sh("generate", "generate", "--n", str(n), "--out", str(folder), "--seeds", seeds,
                         "--seed", str(gen_seed), "--workers", "1", "--no-calibrate")

    sft_out = out / "sft" / "train"
    teacher_seeds = "[" + ", ".join(a.teacher_seeds.split(",")) + "]"
    sft = study.write("sft.yaml", f"""
        name: learning-sft
        output_dir: {out}/sft
        seed: 0
        tasks: {{name: train, source: {{name: directory, args: {{path: {train_tasks}}}}}}}
        scaffolds: [{scaffold_yaml("react", a.calls)}]
        train:
          trainer:
            name: sft
            args: {{collect: {{policy: baseline, policy_args: {{style: short}}, filter: valid, heldout: 0.2,
                              seeds: {teacher_seeds}}},
                    max_length: 2048, micro_batch: 1, grad_accum: 4, warmup_steps: {max(1, a.sft_steps // 10)},
                    eval_every: {a.sft_eval_every}{f', lr: {a.sft_lr}' if a.sft_lr else ''}}}
          policy: {{name: transformers, args: {{{model_args}}}}}
          max_steps: {a.sft_steps}
          save_every: {a.sft_eval_every}
        """)
    if "sft" in stages and not (sft_out / "final" / "config.json").is_file():
        study.sh("sft", "train", str(sft))

    if a.engine == "ctranslate2":  # one engine per policy; concurrent episodes share its batches
        compute = a.compute_type or ("float32" if a.device == "cpu" else "float16")
        engine_args = f"device: {a.device}, compute_type: {compute}, max_batch: 8"
    else:
        engine_args = model_args

    def evaluate(name: str, models: dict[str, str | None]) -> None:
        # one evaluation folder per scaffold, so a short session can finish ReAct (the study's
        # main comparison) before aide and mledojo; each resumes on its own
        policies = "\n".join(
            f"    - {{name: {a.engine}, args: {{name: {label}, max_new_tokens: {a.max_new_tokens}, {engine_args}"
            + (f", model: {model}" if model else "") + "}}" for label, model in models.items())
        for scaffold in scaffolds:
            stage = f"{name}-{scaffold}"
            recipe = study.write(f"{stage}.yaml", f"""
name: learning-{stage}
output_dir: {out}/{stage}
tasks: {{name: heldout, source: {{name: directory, args: {{path: {heldout_tasks}}}}}}}
evaluation:
  policies:
{policies}
  scaffolds:
    - {scaffold_yaml(scaffold, a.calls)}
  seeds: [{a.eval_seed}]
  concurrency: 8
""")
            study.sh(name, "eval", str(recipe))  # resumes: finished episodes are kept

    if "eval-sft" in stages:
        evaluate("eval-sft", {"base": None, "sft": str(sft_out)})
    grpo_out = out / "grpo" / "train"
    grpo = study.write("grpo.yaml", f"""
        name: learning-grpo
        output_dir: {out}/grpo
        seed: 0
        tasks: {{name: train, source: {{name: directory, args: {{path: {train_tasks}}}}}}}
        scaffolds: [{scaffold_yaml("react", a.calls)}]
        reward: milestone
        train:
          trainer:
            name: grpo
            args: {{batch_tasks: {a.batch_tasks}, n: {a.n}, micro_batch: {a.n}, max_new_tokens: {a.max_new_tokens},
                    max_episode_tokens: {a.max_new_tokens * a.calls + 2048},
                    lora: {{r: 16, alpha: 32}}{rollout_args}}}
          policy: {{name: transformers, args: {{model: {sft_out}, {model_args}}}}}
          max_steps: {a.grpo_steps}
          save_every: 1
        """)
    if "grpo" in stages and not (grpo_out / "final" / "config.json").is_file():
        study.sh("grpo", "train", str(grpo))
    if "eval-grpo" in stages:
        evaluate("eval-grpo", {"grpo": str(grpo_out)})

    # the summary covers every evaluation finished so far, whichever run of the script made it
    results: list[dict] = []
    for name, labels in (("eval-sft", ("base", "sft")), ("eval-grpo", ("grpo",))):
        for scaffold in SCAFFOLDS:
            if (out / f"{name}-{scaffold}" / "results.jsonl").is_file():
                results += read_results(out / f"{name}-{scaffold}", {label: f"(name={label}," for label in labels})

    summary: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}
    if results:
        tab = table(results)
        summary["heldout"] = tab
        summary["fisher_valid"] = {f"{p} vs base": compare(tab, p) for p in tab if p != "base" and "base" in tab}
    metrics = sft_out / "metrics.jsonl"
    if metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        nll = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}  # the final evaluation repeats the last step
        summary["sft_heldout_nll"] = [{"step": step, "eval_loss": loss} for step, loss in sorted(nll.items())]
    metrics = grpo_out / "metrics.jsonl"
    if metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        summary["grpo_steps"] = [{k: r.get(k) for k in ("step", "reward", "reward_std", "valid_rate", "format_rate",
                                                        "trained_token_share", "update_skipped", "loss",
                                                        "rollout_s", "update_s")} for r in rows if "reward" in r]
    summary["wall_s"] = study.stage_walls()
    summary["commands"] = [json.loads(line)["command"] for line in study.log_path.read_text().splitlines()] \
        if study.log_path.is_file() else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    write_plots(out, summary)
    print(markdown(summary))


if __name__ == "__main__":
    main()
