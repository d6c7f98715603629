"""Does training teach SmolLM2-135M anything? Base vs SFT vs SFT+GRPO on held-out generated tasks.

Not a test: one measurement, run once, its numbers reported in the README. Each stage is a
``sandmle`` command a user would type (recipes are written into OUT), so the study is resumable:
rerun the script and finished stages are skipped (their outputs exist).

1. generate a training task set and a held-out task set (different seeds, so different tasks);
2. ``sandmle train`` SFT (``collect``: the scripted baseline agent's valid ReAct episodes on the
   training tasks, assistant tokens only);
3. ``sandmle eval`` base SmolLM2 and the SFT model in ReAct on the held-out tasks: format rate
   (share of replies in SandMLE's format) and valid-submission rate;
4. ``sandmle train`` GRPO on top of the SFT model (ReAct, milestone reward) and report the reward
   of each step; 5. ``sandmle eval`` the GRPO model on the held-out tasks.

    SANDMLE_TORCH_THREADS=1 python benchmarks/learning_smollm2.py --out runs/learning
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REACT = ("{{name: react, args: {{limits: {{max_llm_calls: {calls}, max_wall_s: 14400, exec_timeout_s: 120}}, "
         "llm_timeout_s: 14400}}}}")


def sh(*args: str) -> None:
    print("$ sandmle", " ".join(args), flush=True)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "sandmle.core.cli", *args], check=True)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rates(study: Path) -> dict[str, dict[str, float]]:
    """Per policy: episodes, format rate, valid-submission rate, mean reward, mean replies."""
    out: dict[str, dict[str, float]] = {}
    for line in (study / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        agg = out.setdefault(row["policy"], {"episodes": 0, "format_rate": 0.0, "valid": 0.0, "reward": 0.0,
                                             "replies": 0.0, "any_format_ok": 0.0})
        agg["episodes"] += 1
        agg["format_rate"] += row.get("format_rate") or 0.0
        agg["valid"] += bool(row.get("grade_valid_submission"))
        agg["reward"] += row.get("reward_total") or 0.0
        agg["replies"] += row.get("llm_calls") or 0
        traj = json.loads((study / row["trajectory"]).read_text())["trajectory"] if row.get("trajectory") else None
        agg["any_format_ok"] += bool(traj and any(t["format_ok"] for t in traj["turns"]))
    for agg in out.values():
        n = agg["episodes"]
        for key in ("format_rate", "valid", "reward", "replies", "any_format_ok"):
            agg[key] /= n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/learning"))
    ap.add_argument("--train-tasks", type=int, default=16)
    ap.add_argument("--heldout-tasks", type=int, default=6)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--grpo-steps", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=1800, help="a baseline program is ~1,600 tokens")
    ap.add_argument("--calls", type=int, default=6, help="replies per ReAct episode")
    ap.add_argument("--no-grpo", action="store_true",
                    help="stop after base vs SFT (GRPO on top costs hours of CPU per step at full length)")
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    train_tasks, heldout_tasks = out / "tasks-train", out / "tasks-heldout"
    if not any(train_tasks.glob("*/task.yaml")):
        sh("generate", "--n", str(a.train_tasks), "--out", str(train_tasks), "--seed", "0", "--workers", "1")
    if not any(heldout_tasks.glob("*/task.yaml")):
        sh("generate", "--n", str(a.heldout_tasks), "--out", str(heldout_tasks), "--seed", "1", "--workers", "1")
    react = REACT.format(calls=a.calls)

    sft = write(out / "sft.yaml", f"""
        name: learning-sft
        output_dir: {out}/sft
        tasks: {{name: train, source: {{name: directory, args: {{path: {train_tasks}}}}}}}
        scaffolds: [react]
        train:
          trainer:
            name: sft
            args: {{collect: {{policy: baseline, filter: valid, heldout: 0.0}}, max_length: 3072,
                    lr: 1.0e-4, micro_batch: 1, grad_accum: 2}}
          max_steps: {a.sft_steps}
          save_every: {a.sft_steps}
        """)
    if not (out / "sft" / "train" / "final" / "config.json").is_file():
        sh("train", str(sft))

    def evaluate(name: str, models: dict[str, str | None]) -> dict[str, dict[str, float]]:
        policies = "\n".join(
            f"    - {{name: transformers, args: {{name: {label}, max_new_tokens: {a.max_new_tokens}"
            + (f", model: {model}" if model else "") + "}}" for label, model in models.items())
        recipe = write(out / f"{name}.yaml", f"""
name: learning-{name}
output_dir: {out}/{name}
tasks: {{name: heldout, source: {{name: directory, args: {{path: {heldout_tasks}}}}}}}
evaluation:
  policies:
{policies}
  scaffolds: [{react}]
  seeds: [0]
  concurrency: {a.heldout_tasks}
""")
        sh("eval", str(recipe))
        return rates(out / name)

    before_after = evaluate(f"eval-base-sft-{a.max_new_tokens}x{a.calls}", {"base": None, "sft": f"{out}/sft/train"})
    if a.no_grpo:
        summary = {"heldout": before_after, "max_new_tokens": a.max_new_tokens, "calls": a.calls}
        (out / "summary-base-sft.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
        return
    grpo = write(out / "grpo.yaml", f"""
        name: learning-grpo
        output_dir: {out}/grpo
        tasks: {{name: train, source: {{name: directory, args: {{path: {train_tasks}}}}}}}
        scaffolds: [{react}]
        reward: milestone
        train:
          trainer:
            name: grpo
            args: {{batch_tasks: 2, n: 2, micro_batch: 2, lr: 1.0e-5, max_new_tokens: {a.max_new_tokens},
                    max_episode_tokens: 8192, lora: {{r: 16, alpha: 32}}}}
          policy: {{name: transformers, args: {{model: {out}/sft/train}}}}
          max_steps: {a.grpo_steps}
        """)
    if not (out / "grpo" / "train" / "final" / "config.json").is_file():
        sh("train", str(grpo))
    steps = [json.loads(line) for line in (out / "grpo" / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "reward" in s]
    after_grpo = evaluate("eval-grpo", {"grpo": f"{out}/grpo/train"})
    summary = {"heldout": {**before_after, **after_grpo},
               "grpo_steps": [{k: s.get(k) for k in ("step", "reward", "reward_std", "valid_rate", "format_rate",
                                                     "loss", "rollout_s", "update_s")} for s in steps]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
