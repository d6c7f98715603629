"""GRPO step anatomy: where a step of the ``grpo`` trainer spends its time, and what batching
the episodes' generations buys.

One run, two modes side by side on the same tasks and seeds: the backend generating for the
concurrent episodes of a step in batches (``generation_batch`` = episodes per step) against one
reply at a time (``generation_batch: 1``). Each mode runs ``sandmle train`` on a small GRPO recipe
(SmolLM2-135M, ReAct, milestone reward) and reads its ``metrics.jsonl``. Printed per mode: seconds
per step split into rollout (of which model generation and sandbox execution), grading and update
(forward + backward + optimizer), and tokens/s for generation and for training; the last column
is batched / one-at-a-time.

    .venv/bin/python benchmarks/trainer_throughput.py [--tasks DIR] [--steps 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROWS = [("step_s", "step, s"), ("rollout_s", "  rollout, s"), ("generate_s", "    model generation, s"),
        ("exec_s", "    sandbox execution (summed over episodes), s"), ("grade_s", "  grading (summed), s"),
        ("update_s", "  update (fwd + bwd + optimizer), s"), ("generated_tokens", "tokens generated"),
        ("generation_tokens_per_s", "generation, tokens/s"), ("train_tokens", "tokens trained on"),
        ("training_tokens_per_s", "training, tokens/s")]


def recipe(tasks: Path, out: Path, batch: int, args: argparse.Namespace) -> str:
    return textwrap.dedent(f"""
        name: throughput
        output_dir: {out}
        tasks: {{name: bench, source: {{name: directory, args: {{path: {tasks}}}}}}}
        scaffolds: [{{name: react, args: {{limits: {{max_llm_calls: {args.calls}, max_wall_s: 36000, exec_timeout_s: 60}},
                      llm_timeout_s: 36000}}}}]
        train:
          trainer:
            name: grpo
            args: {{batch_tasks: {args.batch_tasks}, n: {args.n}, micro_batch: {args.n}, max_new_tokens: {args.max_new_tokens},
                    max_episode_tokens: 4096, generation_batch: {batch}, lora: {{r: 16}}}}
          max_steps: {args.steps}
          save_every: 1000
          compact_filtering: []
        """)


def measure(tasks: Path, batch: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_text(recipe(tasks, Path(tmp) / "out", batch, args), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "sandmle.core.cli", "train", str(path)], check=True,
                       stdout=subprocess.DEVNULL if args.json else None)
        steps = [json.loads(line) for line in (Path(tmp) / "out" / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "rollout_s" in s]
    return {key: sum(s.get(key) or 0.0 for s in steps) / len(steps) for key, _ in ROWS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=Path, default=None, help="task folder (default: generate 2 tasks)")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--batch-tasks", type=int, default=2)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2, help="replies per ReAct episode")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = args.tasks
        if tasks is None:
            tasks = Path(tmp) / "tasks"
            subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", str(args.batch_tasks),
                            "--out", str(tasks), "--workers", "1"], check=True, capture_output=True)
        episodes = args.batch_tasks * args.n
        modes = {f"batched ({episodes} at once)": measure(tasks, episodes, args), "one at a time": measure(tasks, 1, args)}
    if args.json:
        print(json.dumps(modes, indent=2))
        return
    (a_name, a), (b_name, b) = modes.items()
    table = Table(title=f"GRPO step, SmolLM2-135M, ReAct, {args.batch_tasks} tasks x {args.n} rollouts, "
                        f"{args.calls} replies of <= {args.max_new_tokens} tokens")
    for col in ("", a_name, b_name, "batched / one at a time"):
        table.add_column(col, justify="right" if col else "left")
    for key, label in ROWS:
        ratio = a[key] / b[key] if b[key] else float("nan")
        table.add_row(label, f"{a[key]:.1f}", f"{b[key]:.1f}", f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
