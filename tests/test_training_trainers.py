"""The ``sft`` and ``grpo`` trainers for real (SmolLM2, TRL 1.16, the local sandbox), sized to
seconds: SFT -> GRPO in ReAct on generated tasks -> the GRPO checkpoint evaluated in all three
scaffolds; an all-zero loss mask leaves the weights exactly where they were; compact filtering
drops timeout episodes from TRL's mask; a ``kill -9`` mid-run resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from scaffolds_support import generate_tasks
from training_support import REWARD_PLUGIN, grpo_recipe, sft_recipe, write_recipe, write_tiny_sft_data

from sandmle.core.cli import main
from sandmle.core.records import Grade, RewardBreakdown, Trajectory, Turn
from sandmle.training import group_advantages
from sandmle.training.checkpoints import MARKER, complete_checkpoints
from sandmle.training.progress import read_metrics
from sandmle.training.rollout import EpisodeOutcome

pytestmark = pytest.mark.slow
ALL_STOP_REASONS = ["answer", "max_llm_calls", "format_error", "timeout", "unknown", "error", "backend_error",
                    "max_length"]


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_tasks")
    generate_tasks(out, ["iris-multiclass", "wine-multiclass"])
    return out


@pytest.fixture(scope="module")
def reward_plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "first_token_reward.py"
    path.write_text(REWARD_PLUGIN, encoding="utf-8")
    return path


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _base_dir():
    from sandmle.plugins.hf.backend import SMOLLM2_GGUF, converted_gguf, smollm2_dir

    return converted_gguf(smollm2_dir(), SMOLLM2_GGUF)


# ------------------------------------------------------------------ compact filtering (no model)
def _outcome(stop_reason, prompt, sampled, reward):
    traj = Trajectory(task_id="t", scaffold="react", backend="transformers", stop_reason=stop_reason, turns=[
        Turn(messages_in=2, text="x", prompt_token_ids=prompt, token_ids=sampled, logprobs=[-1.0] * len(sampled))])
    return EpisodeOutcome(SimpleNamespace(id="t"), 0, traj, Grade(), RewardBreakdown(total=reward, parts={"r": reward}))


def test_compact_filtering_removes_timeout_episodes_from_the_loss_mask():
    from sandmle.plugins.trl.grpo_run import StepStats, step_batch

    outcomes = [_outcome("answer", [1, 2], [5, 6], 1.0), _outcome("timeout", [1, 2], [7], 0.0),
                _outcome("max_llm_calls", [1, 2], [8, 9, 10], 0.5), _outcome("unknown", [1], [4], 0.2)]
    stats = StepStats(episodes=4)
    batch = step_batch(outcomes, stats, group_size=4, masked=["timeout", "unknown"], max_episode_tokens=100)
    assert [(r.episode, r.completion_ids, r.mask) for r in batch.rows] == [(0, [5, 6], [1, 1]), (2, [8, 9, 10], [1, 1, 1])]
    # the timeout counts in its group (mean of 1.0, 0.0, 0.5); the harness failure ("unknown") does not
    assert batch.advantages == pytest.approx(group_advantages([1.0, 0.0, 0.5], 3) + [0.0])
    assert stats.masked == 2 and stats.stop_reasons == {"answer": 1, "timeout": 1, "max_llm_calls": 1, "unknown": 1}
    assert batch.account.dropped == {"compact_filter": 1, "harness_failure": 1} and batch.account.trained == 5
    failed = EpisodeOutcome(SimpleNamespace(id="t"), 0, None, Grade(), None)  # harness failure, no turn
    batch = step_batch([failed, failed], StepStats(), group_size=2, masked=[], max_episode_tokens=100)
    assert batch.rows == [] and batch.skip_update and failed.stop_reason == "unknown"


# ------------------------------------------------------------------ SFT data from evaluation runs
def test_trajectories_export_filters_and_holds_out_whole_tasks(tmp_path, tasks_dir):
    from sandmle.evaluation.store import read_results
    from sandmle.training.sft_data import is_heldout

    recipe = write_recipe(tmp_path / "eval.yaml", f"""
        name: export-test
        output_dir: {tmp_path}/run
        tasks: {{name: gen, source: {{name: directory, args: {{path: {tasks_dir}}}}}}}
        backend: baseline
        scaffolds: [react, mledojo]
        evaluation: {{seeds: [0, 1]}}
        """)
    main(["eval", str(recipe)])
    rows = read_results(tmp_path / "run")
    assert len(rows) == 8
    for rule, field in (("valid", "grade_valid_submission"), ("medal", "grade_any_medal")):
        out = tmp_path / f"{rule}.jsonl"
        main(["trajectories", "export", str(tmp_path / "run"), "--filter", rule, "--out", str(out),
              "--heldout", "0.5", "--seed", "3", "--scaffold", "react"])
        train = [json.loads(x) for x in out.read_text().splitlines()]
        held = [json.loads(x) for x in (tmp_path / f"{rule}.heldout.jsonl").read_text().splitlines()]
        expected = [r for r in rows if r[field] and r["scaffold"] == "react"]
        assert len(train) + len(held) == len(expected)
        assert not {r["task_id"] for r in train} & {r["task_id"] for r in held}
        assert all(is_heldout(r["task_id"], 0.5, 3) for r in held)
        for r in train + held:
            assert r["scaffold"] == "react" and r["messages"][0]["role"] == "system"
            assert any(m["role"] == "assistant" for m in r["messages"])


# ------------------------------------------------------------------ the chain
def test_sft_then_grpo_in_react_then_eval_in_three_scaffolds(tmp_path, tasks_dir, reward_plugin):
    # 1. SFT a few steps on transcripts
    data = write_tiny_sft_data(tmp_path / "data")
    main(["train", str(sft_recipe(tmp_path, data, max_steps=2))])
    sft_out = tmp_path / "sft" / "train"
    assert [s for s, _ in complete_checkpoints(sft_out)] == [1, 2]
    assert (sft_out / "final" / "model.safetensors").is_file()
    assert list((sft_out / "tensorboard").glob("events.out.tfevents.*"))
    rows = [r for r in read_metrics(sft_out) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)

    # 2. GRPO on top, in ReAct on a generated task, from the SFT model
    main(["train", str(grpo_recipe(tmp_path, tasks_dir, policy_model=str(sft_out), out="grpo",
                                   reward_plugin=reward_plugin))])
    grpo_out = tmp_path / "grpo" / "train"
    assert (grpo_out / "checkpoint-1" / MARKER).is_file()
    assert list((grpo_out / "tensorboard").glob("events.out.tfevents.*"))
    episodes = [json.loads(line) for line in (grpo_out / "rollouts" / "step-000001.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 and {e["episode"]["task_id"] for e in episodes} == {episodes[0]["episode"]["task_id"]}
    rewards = [e["reward"]["total"] for e in episodes]
    assert [e["advantage"] for e in episodes] == pytest.approx(group_advantages(rewards, 2))
    if rewards[0] != rewards[1]:  # every sampled token reached the loss
        assert all(e["trained_tokens"] == len(e["trajectory"]["turns"][0]["token_ids"]) for e in episodes)
    else:  # a zero-spread group is left out and the update skipped
        assert all(e["trained_tokens"] == 0 for e in episodes)
    [step] = [r for r in read_metrics(grpo_out) if "loss" in r]
    for key in ("reward", "reward_std", "rollout_s", "update_s", "generation_tokens_per_s", "training_tokens_per_s"):
        assert key in step, key
    assert step["reward"] == pytest.approx(sum(rewards) / 2)
    info = json.loads((grpo_out / "train.json").read_text())
    assert info["policy_config"]["model"] == str(sft_out) and info["scaffold"].startswith("react")
    if rewards[0] != rewards[1]:  # a nonzero advantage moved the weights
        before, after = _weights(sft_out / "final"), _weights(grpo_out / "final")
        assert any(not before[k].equal(after[k]) for k in before)

    # 3. the GRPO checkpoint is a backend: evaluate it in react, aide and mledojo
    limits = "{max_llm_calls: 1, exec_timeout_s: 20}"
    eval_recipe = write_recipe(tmp_path / "eval.yaml", f"""
        name: eval-test
        output_dir: {tmp_path}/eval
        tasks: {{name: gen, source: {{name: directory, args: {{path: {tasks_dir}}}}}, limit: 1}}
        scaffolds:
          - {{name: react, args: {{limits: {limits}, llm_timeout_s: 3600}}}}
          - {{name: aide, args: {{steps: 1, num_drafts: 1, parse_attempts: 1, limits: {limits}}}}}
          - {{name: mledojo, args: {{max_steps: 1, parse_attempts: 1, limits: {limits}}}}}
        evaluation: {{seeds: [0], concurrency: 1}}
        """)
    main(["eval", str(eval_recipe), "--backend", "transformers",
          "--backend-args", json.dumps({"model": str(grpo_out), "max_new_tokens": 6})])
    results = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["scaffold"].split("(")[0] for r in results) == ["aide", "mledojo", "react"]
    assert all(r["status"] == "ok" and r["llm_calls"] >= 1 for r in results), results
    assert all(r["policy"].startswith("transformers(") and str(grpo_out) in r["policy"] for r in results)


def test_all_zero_mask_leaves_the_weights_unchanged(tmp_path, tasks_dir, reward_plugin):
    """Every stop reason masked: rewards differ, advantages are nonzero, yet no weight moves."""
    recipe = grpo_recipe(tmp_path, tasks_dir, policy_model=None, out="masked", reward_plugin=reward_plugin,
                         compact_filtering=ALL_STOP_REASONS, lora=False, save_every=100)
    main(["train", str(recipe)])
    out = tmp_path / "masked" / "train"
    episodes = [json.loads(line) for line in (out / "rollouts" / "step-000001.jsonl").read_text().splitlines()]
    assert all(e["trained_tokens"] == 0 for e in episodes)
    before, after = _weights(_base_dir()), _weights(out / "final")
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)


def test_resume_after_kill_9_continues_from_the_last_checkpoint(tmp_path):
    data = write_tiny_sft_data(tmp_path / "data")
    recipe = sft_recipe(tmp_path, data, max_steps=4)
    out = tmp_path / "sft" / "train"
    cmd = [sys.executable, "-m", "sandmle.core.cli", "train", str(recipe)]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 600
    while not (out / "checkpoint-2" / MARKER).is_file():
        assert proc.poll() is None and time.time() < deadline, "training ended or stalled before step 2"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    saved = [s for s, _ in complete_checkpoints(out)]
    assert 2 in saved and 4 not in saved
    last = max(saved)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resuming from checkpoint-{last}" in " ".join(done.stdout.split())
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    steps = [r["step"] for r in read_metrics(out) if "loss" in r]
    assert steps[-(4 - last):] == list(range(last + 1, 5)) and steps.count(1) == 1  # went on, not from 0
    assert (out / "final" / "model.safetensors").is_file()
