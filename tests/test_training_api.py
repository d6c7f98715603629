"""The trainers' shared pieces without a model: sequences and masks from recorded turns, GRPO
advantages computed by hand, compact filtering, the ``train:`` recipe section, checkpoints."""

from __future__ import annotations

import math
import textwrap

import pytest

from sandmle.core.errors import RecipeError
from sandmle.core.plugins import get_registry
from sandmle.core.recipe import parse_recipe, resolve
from sandmle.core.records import Trajectory, Turn
from sandmle.training import (
    MissingTokenIdsError, apply_compact_filter, compact_filter, group_advantages, trajectory_segments,
    trajectory_sequence,
)
from sandmle.training import checkpoints as ck

from cli_support import cli  # noqa: F401  (fixture)


def _turn(prompt, sampled, logprobs=None):
    return Turn(messages_in=1, text="x", prompt_token_ids=prompt, token_ids=sampled,
                logprobs=logprobs or [-0.5] * len(sampled))


# ------------------------------------------------------------------ sequences and masks
def test_multi_turn_mask_is_one_exactly_on_sampled_tokens():
    # prompt 1..4; reply 10,11 (sampled); tool response 90,91 appended by the scaffold; reply 12,13,14
    traj = Trajectory(task_id="t", scaffold="react", backend="transformers", turns=[
        _turn([1, 2, 3, 4], [10, 11], [-0.1, -0.2]),
        _turn([1, 2, 3, 4, 10, 11, 90, 91], [12, 13, 14], [-0.3, -0.4, -0.5]),
        _turn([1, 2, 3, 4, 10, 11, 90, 91, 12, 13, 14, 92], [15], [-0.6]),
    ])
    seq = trajectory_sequence(traj)
    assert seq.prompt_ids == [1, 2, 3, 4]
    assert seq.completion_ids == [10, 11, 90, 91, 12, 13, 14, 92, 15]
    assert seq.mask == [1, 1, 0, 0, 1, 1, 1, 0, 1]
    assert seq.logprobs == [-0.1, -0.2, 0, 0, -0.3, -0.4, -0.5, 0, -0.6]
    assert seq.reward_index == 8 and seq.model_tokens == 6 and seq.turns == [0, 1, 2]
    sampled = [t for turn in traj.turns for t in turn.token_ids]
    assert [t for t, m in zip(seq.completion_ids, seq.mask) if m] == sampled


def test_rewritten_history_starts_a_new_segment_never_splices():
    traj = Trajectory(task_id="t", scaffold="react", backend="transformers", turns=[
        _turn([1, 2], [10, 11]),
        _turn([1, 2, 10, 11, 90], [12]),
        _turn([1, 2, 77, 90, 12, 91], [13, 14]),  # the scaffold edited reply 0: not a prefix any more
    ])
    segments = trajectory_segments(traj)
    assert [s.turns for s in segments] == [[0, 1], [2]]
    assert segments[1].prompt_ids == [1, 2, 77, 90, 12, 91] and segments[1].mask == [1, 1]
    assert trajectory_sequence(traj).turns == [2]  # the segment with the final reply


def test_turn_without_token_ids_is_a_clear_error():
    traj = Trajectory(task_id="t", scaffold="react", backend="baseline",
                      turns=[Turn(messages_in=1, text="hi")])
    with pytest.raises(MissingTokenIdsError, match="baseline"):
        trajectory_sequence(traj)
    assert trajectory_sequence(Trajectory(task_id="t", scaffold="react", backend="x")).completion_ids == []


def test_truncate_to_a_length_budget():
    traj = Trajectory(task_id="t", scaffold="react", backend="x",
                      turns=[_turn([1], [5, 6]), _turn([1, 5, 6, 7], [8, 9])])
    seq = trajectory_sequence(traj).truncate(4)
    assert seq.completion_ids == [5, 6, 7, 8] and seq.mask == [1, 1, 0, 1] and seq.truncated
    assert not trajectory_sequence(traj).truncate(10).truncated


# ------------------------------------------------------------------ advantages
def test_group_advantages_equal_the_hand_computed_formula():
    rewards = [1.0, 0.0, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2]
    adv = group_advantages(rewards, 4)
    # group 1: mean 0.5, unbiased std sqrt((0.25 + 0.25 + 0 + 0) / 3)
    std = math.sqrt(0.5 / 3)
    assert adv[:4] == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.0, 0.0])
    assert adv[4:] == pytest.approx([0.0] * 4, abs=1e-9)  # equal rewards: no signal
    assert group_advantages(rewards, 4, scale="none")[:2] == pytest.approx([0.5, -0.5])
    batch_std = math.sqrt(sum((r - sum(rewards) / 8) ** 2 for r in rewards) / 7)
    assert group_advantages(rewards, 4, scale="batch")[0] == pytest.approx(0.5 / (batch_std + 1e-4))
    with pytest.raises(ValueError):
        group_advantages([1.0, 2.0, 3.0], 2)


def test_compact_filtering_masks_timeout_and_unknown_episodes():
    keep = compact_filter(["answer", "timeout", "max_llm_calls", "unknown", "backend_error"])
    assert keep == [True, False, True, False, True]  # SandMLE: mask_timeout, mask_unknown
    masks = apply_compact_filter([[1, 0, 1], [1, 1], [0, 1], [1], [1]], keep)
    assert masks == [[1, 0, 1], [0, 0], [0, 1], [0], [1]]
    assert compact_filter(["backend_error"], masked=["backend_error"]) == [False]


# ------------------------------------------------------------------ recipe section
TRAIN = """
name: t
tasks: {name: small, generator: procedural, n: 2}
train:
  trainer: {name: grpo, args: {batch_tasks: 2, n: 2, micro_batch: 2}}
  tasks: small
  max_steps: 3
"""


def test_train_section_validates_trainer_args_and_defaults():
    recipe = resolve(parse_recipe(__import__("yaml").safe_load(TRAIN)), get_registry())
    assert recipe.stages() == ["generate", "train"]
    cfg = recipe.train.trainer.config
    assert (cfg.batch_tasks, cfg.n, cfg.learning_rate, cfg.epsilon_high, cfg.beta, cfg.loss_type, cfg.temperature) == \
        (2, 2, 1e-6, 0.28, 0.0, "grpo", 1.0)
    assert recipe.train.policy.name == "transformers" and recipe.train_scaffold().name == "react"
    assert recipe.train.compact_filtering == ["timeout", "unknown", "error", "backend_error"]
    assert str(recipe.train_dir) == "runs/t/train"
    paths = [p for p, _, _ in recipe.components()]
    assert "train.trainer" in paths and "train.policy" in paths


@pytest.mark.parametrize("change,expected", [
    ("max_steps: 3", "max_steps: 3\n  sead: 1"),
    ("tasks: small", "tasks: nope"),
    ("micro_batch: 2", "micro_batch: 3"),
    ("batch_tasks: 2", "batch_tasks: 2, lr_typo: 1"),
])
def test_train_section_errors_name_their_yaml_path(change, expected):
    text = TRAIN.replace(change, expected)
    with pytest.raises(RecipeError) as info:
        resolve(parse_recipe(__import__("yaml").safe_load(textwrap.dedent(text))), get_registry())
    paths = [p for p, _ in info.value.problems]
    assert any(p.startswith("train") or p == "" for p in paths), info.value.problems


def test_top_level_trainer_is_short_for_a_train_section():
    # main's docs and the best-of-n example plugin write `trainer: NAME` at the top level
    recipe = parse_recipe({"name": "t", "trainer": {"name": "sft", "args": {"lr": 1e-5}}})
    assert recipe.train is not None and recipe.trainer.name == "sft" and recipe.stages() == ["train"]
    assert recipe.train.max_steps == 10 and recipe.train.trainer.args == {"lr": 1e-5}
    with pytest.raises(RecipeError) as info:
        parse_recipe({"name": "t", "trainer": "sft", "train": {"trainer": "grpo"}})
    assert "not both" in str(info.value)


@pytest.mark.parametrize("argv,expected", [
    (["train", "TRAIN", "--max-steps", "0"], "0 is not in the range x>=1"),
    (["train", "TRAIN", "--out", "/proc/sandmle-x"], "--out: /proc/sandmle-x lies under /proc"),
    (["train", "quickstart"], "has no train: section"),
    (["trajectories", "export", ".", "--out", "x.jsonl", "--heldout", "1"], "1.0 is not in the range"),
])
def test_train_and_export_refuse_bad_options_before_any_work(cli, tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)  # the recipe's output folder would be runs/t here
    recipe = tmp_path / "t.yaml"
    recipe.write_text(TRAIN)
    code, _, err = cli(*[str(recipe) if a == "TRAIN" else a for a in argv])
    assert code != 0 and expected in err, err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ checkpoints
def test_only_marked_checkpoints_count_and_resolve(tmp_path):
    for step in (1, 2, 3):
        (tmp_path / f"checkpoint-{step}").mkdir()
    ck.mark_complete(tmp_path / "checkpoint-1", 1)
    ck.mark_complete(tmp_path / "checkpoint-2", 2)  # checkpoint-3: killed while saving
    assert ck.latest_checkpoint(tmp_path).name == "checkpoint-2"
    assert ck.resolve_model_dir(tmp_path).name == "checkpoint-2"
    assert [p.name for p in ck.remove_incomplete(tmp_path)] == ["checkpoint-3"]
    ck.prune(tmp_path, keep=1)
    assert [p.name for _, p in ck.complete_checkpoints(tmp_path)] == ["checkpoint-2"]
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "config.json").write_text("{}")
    assert ck.resolve_model_dir(tmp_path).name == "final"
    assert ck.resolve_model_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"
