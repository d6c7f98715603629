"""Shared helpers of the trainer tests: tiny SFT data, a reward that separates rollouts, recipes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

# A reward plugin for tests: the first sampled token decides the reward, so the rollouts of a
# group differ (SmolLM2 untrained earns the milestone reward's 0 almost always, which gives
# every episode advantage 0 and the optimizer nothing to do).
REWARD_PLUGIN = '''
from sandmle.core.hookspecs import hookimpl
from sandmle.core.interfaces import Reward
from sandmle.core.records import RewardBreakdown


class FirstTokenReward(Reward):
    keys = ["first_token"]

    def score(self, trajectory, grade):
        ids = trajectory.turns[0].token_ids if trajectory.turns and trajectory.turns[0].token_ids else [0]
        value = (ids[0] % 97) / 97
        return RewardBreakdown(total=value, parts={"first_token": value})


@hookimpl
def register_rewards(register):
    register("first_token", lambda cfg: FirstTokenReward())
'''


def write_tiny_sft_data(folder: Path, n: int = 3) -> Path:
    """Short ReAct-shaped transcripts (tens of tokens, so a CPU step takes seconds)."""
    rows = []
    for i in range(n + 1):
        rows.append({"task_id": f"t{i}", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Task {i}."},
            {"role": "assistant", "content": "<think>Look.</think>\n<tool_call>\npython\n<code>\nprint(1)\n</code>\n</tool_call>"},
            {"role": "user", "content": "<tool_response>\n1\n</tool_response>"},
            {"role": "assistant", "content": "<think>Done.</think>\n<answer>submission</answer>"}]})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n]), encoding="utf-8")
    (folder / "sft.heldout.jsonl").write_text(json.dumps(rows[n]) + "\n", encoding="utf-8")
    return folder / "sft.jsonl"


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def sft_recipe(folder: Path, data: Path, *, max_steps: int = 2, lora: bool = True) -> Path:
    lora_arg = ", lora: {r: 4}" if lora else ""
    return write_recipe(folder / "sft.yaml", f"""
        name: sft-test
        output_dir: {folder}/sft
        train:
          trainer: {{name: sft, args: {{data: {data}, max_length: 96, micro_batch: 1, grad_accum: 1, lr: 1.0e-3{lora_arg}}}}}
          max_steps: {max_steps}
        """)


def grpo_recipe(folder: Path, tasks_dir: Path, *, policy_model: str | None, out: str, reward_plugin: Path,
                compact_filtering: list[str] | None = None, lora: bool = True, save_every: int = 1) -> Path:
    policy = "{name: transformers}" if policy_model is None else f"{{name: transformers, args: {{model: {policy_model}}}}}"
    lora_arg = ", lora: {r: 4}" if lora else ""
    cf = "" if compact_filtering is None else f"\n  compact_filtering: {json.dumps(compact_filtering)}"
    return write_recipe(folder / f"{out}.yaml", f"""
name: grpo-test
output_dir: {folder}/{out}
plugins: [{reward_plugin}]
tasks: {{name: gen, source: {{name: directory, args: {{path: {tasks_dir}}}}}, limit: 1}}
scaffolds: [{{name: react, args: {{limits: {{max_llm_calls: 1, exec_timeout_s: 20}}, llm_timeout_s: 3600}}}}]
train:
  trainer: {{name: grpo, args: {{batch_tasks: 1, n: 2, micro_batch: 2, max_new_tokens: 6, max_episode_tokens: 32, lr: 1.0e-3{lora_arg}}}}}
  policy: {policy}
  reward: first_token
  max_steps: 1
  save_every: {save_every}{cf}
""")
