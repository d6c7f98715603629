"""Generation speed of the policy model, side by side in one run: ``transformers`` vs the
``openvino`` engine (its bfloat16 default and float32) and the ``ctranslate2`` engine (int8 with
its CPU default of 2 workers and with 1 worker, and float32) for one ReAct episode and for 8
concurrent ones, and the GRPO step split (rollout / refresh / update) with each rollout backend.

SmolLM2-135M-Instruct on generated tasks in the real ``local`` sandbox. Tokens/s is generated
tokens over the wall time of the episodes (aggregate over concurrent episodes), so it includes
prompt encoding, batching waits and the sandbox's tool calls. The ``transformers`` backend is
slow enough that its episodes are shorter by default (``--hf-tokens``, ``--hf-calls``); shorter
replies favour it (less attention per token), so the ratio printed is conservative. The engine
runs both the short workload (same as transformers) and the full one (``--tokens`` replies,
``--calls`` model calls per episode); ``--hf-tokens 256 --hf-calls 2`` puts every backend on the
full workload, run once.

Replies end where the model stops, so two backends' runs generate different numbers of tokens
(sampling differs in the last bits). ``--fixed-length`` makes every reply exactly its budget
(``Sampling.ignore_eos``, as vLLM's serving benchmark does): the same workload for every backend.
``--context-sweep 300,1000,1500`` times the engines' decoding step by prompt length, one request
alone and 8 at once (random prompt ids, fixed-length replies): what the attention over a long
prompt costs next to the weights.

    nice -n 10 .venv/bin/python benchmarks/generation_speed.py [--tokens 256] [--calls 2]
        [--hf-tokens 64] [--hf-calls 1] [--concurrent 8] [--grpo-steps 1] [--fixed-length]
        [--context-sweep 300,1000,1500] [--json]

Prints the load average before and after: the machine is shared, and every figure is only
comparable to the others of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from sandmle.core.cli import main as sandmle_main  # noqa: E402
from sandmle.core.plugins import get_registry  # noqa: E402


def _tasks(folder: Path, n: int) -> list[Any]:
    from sandmle.core.task import load_task
    from sandmle.generators.procedural import ProceduralConfig, ProceduralGenerator

    list(ProceduralGenerator(ProceduralConfig(workers=1)).generate(folder, n, seed=0))
    return [load_task(p) for p in sorted(folder.iterdir()) if (p / "task.yaml").exists()][:n]


async def _episodes(backend: Any, tasks: list[Any], sandbox: Any, *, concurrent: int, tokens: int,
                    calls: int, fixed: bool = False) -> dict[str, float]:
    scaffold = get_registry().create("scaffolds", "react", {
        "limits": {"max_llm_calls": calls, "exec_timeout_s": 30}, "llm_timeout_s": 7200,
        "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": tokens, "ignore_eos": fixed}})
    before = backend.stats.as_dict()

    async def one(i: int) -> Any:
        task = tasks[i % len(tasks)]
        session = await sandbox.open(task)
        try:
            return await scaffold.run(task, backend, session, seed=i)
        finally:
            await session.close()

    t0 = time.perf_counter()
    trajectories = await asyncio.gather(*[one(i) for i in range(concurrent)])
    wall = time.perf_counter() - t0
    after = backend.stats.as_dict()
    generated = after["generated_tokens"] - before["generated_tokens"]
    return {"episodes": concurrent, "calls": sum(len(t.turns) for t in trajectories), "generated_tokens": generated,
            "wall_s": round(wall, 1), "tokens_per_s": round(generated / wall, 2),
            "generate_s": round(after["generate_s"] - before["generate_s"], 1)}


async def _context_sweep(backend: Any, args: argparse.Namespace) -> list[dict[str, float]]:
    """Decoding step time by prompt length: 1 and ``--concurrent`` requests of random prompt ids
    (fresh ones each time: no cached prefix), ``--sweep-tokens`` fixed-length replies each."""
    import random

    from sandmle.core.records import Sampling

    rng = random.Random(0)
    sampling = Sampling(temperature=1.0, max_tokens=args.sweep_tokens, ignore_eos=True)
    rows = []

    async def timed(n: int, length: int, budget: Sampling) -> tuple[float, int]:
        prompts = [[rng.randrange(100, 40000) for _ in range(length)] for _ in range(n)]
        t0 = time.perf_counter()
        replies = await asyncio.gather(*[backend.generate(p, budget) for p in prompts])
        return time.perf_counter() - t0, sum(len(r.token_ids or []) for r in replies)

    for length in [int(x) for x in args.context_sweep.split(",")]:
        for n in (1, args.concurrent):
            encode_s, _ = await timed(n, length, sampling.model_copy(update={"max_tokens": 1}))
            wall, tokens = await timed(n, length, sampling)
            rows.append({"prompt_tokens": length, "requests": n, "generated_tokens": tokens, "wall_s": round(wall, 2),
                         "tokens_per_s": round(tokens / wall, 1), "prompt_encoding_s": round(encode_s, 2),
                         # a decoding step of the batch, the prompts' encoding (timed alone) taken out
                         "ms_per_step": round(1000 * max(wall - encode_s, 0) / max(args.sweep_tokens - 1, 1), 1)})
            print("context sweep", json.dumps(rows[-1]), flush=True)
    return rows


def _speed(args: argparse.Namespace, tasks: list[Any]) -> dict[str, Any]:
    sandbox = get_registry().create("sandboxes", "local")
    out: dict[str, Any] = {}
    engine = {"max_new_tokens": args.tokens, "max_batch": args.concurrent}
    backends = [("transformers", "transformers", dict(engine)),
                ("openvino", "openvino", dict(engine)),
                ("openvino-f32", "openvino", {**engine, "precision": "f32"}),
                ("ctranslate2-int8", "ctranslate2", {**engine, "compute_type": "int8"}),
                # one worker on all the cores: what the engine's CPU default (2 workers) gains
                ("ctranslate2-int8-1worker", "ctranslate2", {**engine, "compute_type": "int8", "workers": 1}),
                ("ctranslate2-float32", "ctranslate2", {**engine, "compute_type": "float32"})]
    for label, name, cfg in backends:
        if label not in args.backends.split(","):
            continue
        t0 = time.perf_counter()
        backend = get_registry().create("backends", name, cfg)
        row: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 1)}
        short = dict(tokens=args.hf_tokens, calls=args.hf_calls, fixed=args.fixed_length)
        row["one_short"] = asyncio.run(_episodes(backend, tasks, sandbox, concurrent=1, **short))
        row[f"{args.concurrent}_short"] = asyncio.run(_episodes(backend, tasks, sandbox, concurrent=args.concurrent, **short))
        full = dict(tokens=args.tokens, calls=args.calls, fixed=args.fixed_length)
        if full == short:  # --hf-tokens/--hf-calls at the full workload: every backend runs it once
            row["one_full"], row[f"{args.concurrent}_full"] = row["one_short"], row[f"{args.concurrent}_short"]
        elif name != "transformers":
            row["one_full"] = asyncio.run(_episodes(backend, tasks, sandbox, concurrent=1, **full))
            row[f"{args.concurrent}_full"] = asyncio.run(_episodes(backend, tasks, sandbox, concurrent=args.concurrent, **full))
        if args.context_sweep and name != "transformers":
            row["context_sweep"] = asyncio.run(_context_sweep(backend, args))
        asyncio.run(backend.aclose())
        out[label] = row
        print(label, json.dumps(row), flush=True)
    asyncio.run(sandbox.shutdown())
    hf = out.get("transformers")
    for label in [b for b in out if b != "transformers" and hf]:
        for key in ("one_short", f"{args.concurrent}_short"):
            out[f"ratio/{label}/{key}"] = round(out[label][key]["tokens_per_s"] / max(hf[key]["tokens_per_s"], 1e-9), 1)
        out[f"ratio/{label}/{args.concurrent}_full_vs_hf_short"] = round(
            out[label][f"{args.concurrent}_full"]["tokens_per_s"] / max(hf[f"{args.concurrent}_short"]["tokens_per_s"], 1e-9), 1)
    return out


def _grpo(args: argparse.Namespace, tasks_dir: Path, work: Path) -> dict[str, Any]:
    from sandmle.training.progress import read_metrics

    out: dict[str, Any] = {}
    variants = [("transformers", {}), ("openvino", {"rollout_backend": "openvino"}),
                ("openvino-f32", {"rollout_backend": "openvino", "rollout_precision": "f32"}),
                ("ctranslate2-float32", {"rollout_backend": "ctranslate2"}),
                ("ctranslate2-int8", {"rollout_backend": "ctranslate2", "rollout_compute_type": "int8"})]
    for label, extra in variants:
        if label not in args.grpo_backends.split(","):
            continue
        trainer_args = {"batch_tasks": 1, "n": args.grpo_n, "micro_batch": args.grpo_n, "max_new_tokens": args.hf_tokens,
                        "max_episode_tokens": 4 * args.hf_tokens, "lr": 1e-5, "lora": {"r": 8}, **extra}
        recipe = work / f"grpo-{label}.yaml"
        recipe.write_text(json.dumps({
            "name": f"grpo-speed-{label}", "output_dir": str(work / label),
            "tasks": {"name": "gen", "source": {"name": "directory", "args": {"path": str(tasks_dir)}}, "limit": 1},
            "scaffolds": [{"name": "react", "args": {"limits": {"max_llm_calls": args.hf_calls, "exec_timeout_s": 30},
                                                     "llm_timeout_s": 7200}}],
            "train": {"trainer": {"name": "grpo", "args": trainer_args}, "policy": {"name": "transformers"},
                      "max_steps": args.grpo_steps, "save_every": 1000}}), encoding="utf-8")
        t0 = time.perf_counter()
        sandmle_main(["train", str(recipe)])
        rows = [r for r in read_metrics(work / label / "train") if "loss" in r]
        keep = ("step_s", "rollout_s", "refresh_s", "update_s", "generated_tokens", "generation_tokens_per_s",
                "sampling/sampling_logp_difference/mean", "sampling/importance_sampling_ratio/mean")
        out[label] = {"wall_s": round(time.perf_counter() - t0, 1),
                      "steps": [{k: round(r[k], 4) for k in keep if k in r} for r in rows]}
        print("grpo", label, json.dumps(out[label]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256, help="reply budget of the engine's full workload")
    ap.add_argument("--calls", type=int, default=2, help="model calls per episode, full workload")
    ap.add_argument("--hf-tokens", type=int, default=64, help="reply budget of the short workload (both)")
    ap.add_argument("--hf-calls", type=int, default=1, help="model calls per episode, short workload")
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--grpo-steps", type=int, default=1, help="GRPO steps per rollout backend (0: skip)")
    ap.add_argument("--grpo-n", type=int, default=4, help="rollouts per step (one task)")
    ap.add_argument("--skip-speed", action="store_true", help="only the GRPO step split")
    ap.add_argument("--backends", default="transformers,openvino,openvino-f32,ctranslate2-int8,"
                    "ctranslate2-int8-1worker,ctranslate2-float32", help="which of the speed rows to run (comma-separated)")
    ap.add_argument("--grpo-backends", default="transformers,openvino,openvino-f32,ctranslate2-float32,ctranslate2-int8",
                    help="which rollout backends the GRPO step split runs (comma-separated)")
    ap.add_argument("--fixed-length", action="store_true",
                    help="every reply exactly its token budget (Sampling.ignore_eos): the same workload for every backend")
    ap.add_argument("--context-sweep", default="", help="prompt lengths (comma-separated) to time the engines' "
                    "decoding step at, 1 and --concurrent requests (not transformers)")
    ap.add_argument("--sweep-tokens", type=int, default=128, help="reply tokens per request in the context sweep")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sandmle-genspeed-"))
    result: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count(), "args": vars(args)}
    try:
        tasks = _tasks(work / "tasks", 4)
        if not args.skip_speed:
            result["speed"] = _speed(args, tasks)
        if args.grpo_steps:
            result["grpo"] = _grpo(args, work / "tasks", work)
    finally:
        result["load_after"] = os.getloadavg()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
