"""The ``verl`` trainer's agent loop inside veRL 0.9.1's own machinery, on CPU.

Real: veRL (its hydra config, ``RLHFDataset``, ``AgentLoopWorker`` with its hydra instantiation of
our loop from the agent-loop YAML, its padding/postprocessing into a ``DataProto``, and
``core_algos.compute_grpo_outcome_advantage``), SmolLM2-135M sampling every token, generated
tasks, the ``local`` sandbox, the ``default`` grader, rewards loaded as plugins. The one fake is
``SmolLM2TokenServer`` (tests/verl_support.py), standing in for veRL's vLLM/SGLang rollout server,
which cannot run without a GPU; it keeps that server's ``generate`` contract and admission rule.
The real GPU GRPO step (vLLM + FSDP update) is not run here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sandmle.core.task import load_task
from sandmle.plugins.verl.config import AGENT_LOOP_TARGET, AGENT_NAME, VerlTrainerConfig, hydra_overrides
from sandmle.plugins.verl.export import task_from_extra_info
from sandmle.plugins.verl.launch import prepare
from sandmle.training import apply_compact_filter, compact_filter, group_advantages

from verl_support import SmolLM2TokenServer, compose_verl_config, load_recipe, recipe_data  # tests/ is on sys.path

pytestmark = pytest.mark.slow

N = 2  # rollouts per task (the GRPO group)
PROMPT_LEN, RESPONSE_LEN, TURN_TOKENS = 2048, 16, 6  # a budget a few SmolLM2 turns exhaust


TRAINER_ARGS = {"n": N, "batch_tasks": 3, "n_gpus_per_node": 1, "agent_workers": 1, "val_tasks": 0,
                "max_prompt_tokens": PROMPT_LEN, "max_episode_tokens": RESPONSE_LEN, "max_new_tokens": TURN_TOKENS}


@pytest.fixture(scope="module")
def batch_run(smollm2, verl_model_dir, verl_tasks, tmp_path_factory):
    """Our trainer's prepare() writes data + YAML + overrides; veRL's worker runs 3 tasks x 2."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, _agent_loop_registry
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    out = tmp_path_factory.mktemp("verl_batch")
    recipe = load_recipe(recipe_data(out, verl_tasks, reward="reply-length",
                                     scaffold={"name": "react", "args": {"limits": {"max_llm_calls": 4}}},
                                     trainer_args={**TRAINER_ARGS, "model": str(verl_model_dir)}))
    tasks = [load_task(p) for p in sorted(verl_tasks.iterdir())]
    # A task whose folder is gone (as on a node without the shared filesystem): its episodes fail.
    broken = tasks[0].model_copy(update={"id": "missing", "root": out / "gone", "public_dir": out / "gone" / "p"})
    plan = prepare(recipe, [*tasks, broken], VerlTrainerConfig(**recipe.train.trainer.args), recipe.train_dir)
    # The legacy AgentLoopWorker (trainer.use_v1=false); tests/test_verl_v1.py drives the v1 worker.
    config = compose_verl_config(hydra_overrides({**plan.overrides, "trainer.use_v1": False}))
    server = SmolLM2TokenServer(smollm2.model, smollm2.tokenizer, max_model_len=PROMPT_LEN + RESPONSE_LEN,
                                response_length=RESPONSE_LEN, prompt_length=PROMPT_LEN)
    worker = AgentLoopWorker(config, server)  # the class veRL wraps in ray.remote, built directly
    registered = dict(_agent_loop_registry[AGENT_NAME])
    dataset = RLHFDataset([config.data.train_files], worker.tokenizer, config.data)
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    # As veRL's trainer does (ray_trainer.py: a uid per prompt, then repeat(n, interleave=True)).
    batch.non_tensor_batch["uid"] = np.array([f"task{i}" for i in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=N, interleave=True)
    batch.meta_info = {"global_steps": 1, "validate": False}
    result = asyncio.run(worker.generate_sequences(batch))
    episodes = [json.loads(line) for f in sorted((plan.out_dir / "episodes").glob("*.jsonl"))
                for line in f.read_text().splitlines()]
    return {"plan": plan, "config": config, "server": server, "result": result, "episodes": episodes,
            "tokenizer": worker.tokenizer, "registered": registered, "dataset": dataset, "tasks": tasks}


def unpadded(result, i: int) -> tuple[list[int], list[int], list[int]]:
    """Row ``i``'s prompt and response ids without padding, and its response mask."""
    batch = result.batch
    plen = batch["prompts"].shape[1]
    attn = batch["attention_mask"][i]
    prompt = batch["prompts"][i][attn[:plen].bool()].tolist()
    n_resp = int(attn[plen:].sum())
    return prompt, batch["responses"][i][:n_resp].tolist(), batch["response_mask"][i][:n_resp].tolist()


def real_rows(run) -> list[int]:
    return [i for i, s in enumerate(run["result"].non_tensor_batch["task_id"]) if s is not None]


def test_exported_parquet_loads_through_verls_dataset(batch_run):
    ds, tasks = batch_run["dataset"], batch_run["tasks"]
    assert len(ds) == 3
    for i, task in enumerate(tasks):
        row = ds[i]
        assert row["agent_name"] == AGENT_NAME and row["index"] == i == row["extra_info"]["index"]
        assert row["raw_prompt"] == [{"role": "user", "content": task.description}]
        assert task_from_extra_info(row["extra_info"]).model_dump() == task.model_dump()
        answers = task.answers_path.read_text()
        assert answers not in json.dumps(row["raw_prompt"])  # hidden answers stay in the task folder


def test_worker_instantiates_our_loop_from_the_agent_loop_yaml(batch_run):
    entry = batch_run["registered"]
    assert entry["_target_"] == AGENT_LOOP_TARGET and entry["name"] == AGENT_NAME
    written = yaml.safe_load((batch_run["plan"].out_dir / "agent_loop.yaml").read_text())[0]
    assert entry["scaffold"] == written["scaffold"] == {"name": "react", "args": {"limits": {"max_llm_calls": 4}}}
    # Every real row ran our loop (its extra_fields), not veRL's default single-turn loop.
    assert len(batch_run["episodes"]) == 6 and len(real_rows(batch_run)) == 4


def sampled_spans(full: list[int], prompt_len: int, requests: list) -> list[int] | None:
    """Mask expected for a row from one episode's requests, or None if they are not this row's."""
    expected = [0] * (len(full) - prompt_len)
    for req in requests:
        p, t = req.prompt_ids, req.token_ids
        if full[:len(p)] != p or full[len(p):len(p) + len(t)] != t or len(p) < prompt_len:
            return None
        expected[len(p) - prompt_len:len(p) - prompt_len + len(t)] = [1] * len(t)
    return expected


def test_mask_is_one_exactly_on_the_tokens_the_server_sampled(batch_run):
    result, server, tok = batch_run["result"], batch_run["server"], batch_run["tokenizer"]
    episodes: dict[str, list] = {}
    for req in server.requests:  # one sticky request id per episode
        episodes.setdefault(req.request_id, []).append(req)
    unclaimed = set(episodes)
    for i in real_rows(batch_run):
        prompt, response, mask = unpadded(result, i)
        matches = {rid: sampled_spans(prompt + response, len(prompt), episodes[rid]) for rid in unclaimed}
        rid, expected = next((r, e) for r, e in sorted(matches.items()) if e is not None)
        unclaimed.discard(rid)
        assert mask == expected, i
        assert sum(mask) > 0 and 0 in mask  # sampled turns, and context between them
        # What is not sampled is the chat template's own text (turn headers, observations).
        context = tok.decode([t for t, m in zip(response, mask) if m == 0])
        assert "<|im_start|>" in context
    assert not unclaimed  # every episode's sampled tokens landed in exactly one row


def test_reward_is_the_episode_reward_on_the_last_response_token(batch_run):
    from verl_reward_plugin import ReplyLengthReward
    from sandmle.core.records import Grade, Trajectory

    result, episodes = batch_run["result"], batch_run["episodes"]
    scores = result.batch["rm_scores"]
    totals = result.non_tensor_batch["reward_total"]
    recomputed = sorted(ReplyLengthReward().score(Trajectory.model_validate(e["trajectory"]),
                                                  Grade.model_validate(e["grade"])).total
                        for e in episodes if e["trajectory"])
    assert sorted(totals[i] for i in real_rows(batch_run)) == pytest.approx(recomputed)
    plen = result.batch["prompts"].shape[1]
    for i in range(len(result)):
        last = int(result.batch["attention_mask"][i][plen:].sum()) - 1
        assert scores[i][last] == pytest.approx(totals[i])
        assert int((scores[i] != 0).sum()) <= 1
    # The breakdown: the same keys on every row, failed episodes included.
    for key in ("reward_total", "reward_reply_chars", "masked", "failed", "budget_stop"):
        assert len(result.non_tensor_batch[key]) == len(result)
    assert result.meta_info["reward_extra_keys"][:2] == ["reward_total", "reward_reply_chars"]


def test_budget_stops_the_episode_before_the_server_would_refuse(batch_run):
    result, server = batch_run["result"], batch_run["server"]
    nt = result.non_tensor_batch
    reasons = [nt["stop_reason"][i] for i in real_rows(batch_run)]
    assert set(reasons) <= {"max_length", "max_llm_calls"} and "max_length" in reasons  # the grpo trainer's name
    assert {nt["budget_stop"][i] for i in real_rows(batch_run) if nt["stop_reason"][i] == "max_length"} \
        == {"max_response_length"}
    for req in server.requests:  # what the loop asked for always fit
        assert len(req.prompt_ids) + req.max_tokens <= PROMPT_LEN + RESPONSE_LEN
        assert req.max_tokens <= TURN_TOKENS
    for i in real_rows(batch_run):
        _, response, _ = unpadded(result, i)
        assert len(response) <= RESPONSE_LEN


def test_a_failed_episode_is_masked_and_its_group_trains_on(batch_run):
    result = batch_run["result"]
    nt = result.non_tensor_batch
    failed = [i for i in range(len(result)) if nt["failed"][i]]
    assert [nt["uid"][i] for i in failed] == ["task2", "task2"]
    for i in failed:
        assert nt["stop_reason"][i] == "error" and nt["masked"][i] == 1 and nt["reward_total"][i] == 0
        assert int(result.batch["response_mask"][i].sum()) == 0
    assert all(int(result.batch["response_mask"][i].sum()) > 0 for i in real_rows(batch_run))
    errors = [e["error"] for e in batch_run["episodes"] if e["error"]]
    assert len(errors) == 2 and all("not readable on this node" in e for e in errors)


def test_grpo_advantages_equal_verls_core_algos(batch_run):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    result = batch_run["result"]
    nt, mask = result.non_tensor_batch, result.batch["response_mask"]
    verl_adv, _ = compute_grpo_outcome_advantage(result.batch["rm_scores"], mask, index=nt["uid"], epsilon=1e-6)
    rewards = [float(r) for r in nt["reward_total"]]  # rows come grouped: uid order, n per task
    assert any(len(set(rewards[g:g + N])) > 1 for g in range(0, len(rewards), N)), "no signal to compare"
    ours = group_advantages(rewards, N, eps=1e-6)
    keep = compact_filter(nt["stop_reason"], ["timeout", "unknown", "error", "backend_error"])  # the recipe's
    masks = apply_compact_filter(mask.tolist(), keep)
    expected = torch.tensor([[a * m for m in row] for a, row in zip(ours, masks)])
    assert torch.allclose(verl_adv, expected, atol=1e-5)


def instantiate_loop(run, server, config=None, **settings):
    """Our loop built exactly as veRL's worker builds it (agent_loop.py:680-690), YAML entry edited."""
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = config or run["config"]
    return hydra.utils.instantiate(
        config=OmegaConf.create({**run["registered"], **settings}), trainer_config=DictConfigWrap(config),
        server_manager=server, tokenizer=run["tokenizer"], processor=None, hf_model_type="llama",
        dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data), tools=ToolListWrap([]))


SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def run_episode(run, server, *, config=None, task_index: int = 0, **settings):
    """Build the loop inside the running event loop (AgentLoopBase keeps it) and run one row."""
    row = run["dataset"][task_index]

    async def main():
        loop = instantiate_loop(run, server, config, **settings)
        return await loop.run(dict(SAMPLING), **{**row, "uid": "u", "session_id": 0})

    return asyncio.run(main())


def test_the_legacy_trainer_stops_a_scaffold_that_restarts_its_prompt(batch_run):
    """MLE-Dojo asks for a JSON repair in a fresh prompt: a second token stream. veRL's v1 trainer
    takes one output per stream (tests/test_verl_v1.py runs that through AgentLoopWorkerTQ); the
    legacy trainer takes one stream per episode, so the episode stops at the rewrite instead."""
    from sandmle.core.records import Grade, Trajectory
    from sandmle.graders.rewards import KEYS, MilestoneReward

    server = batch_run["server"]
    before = len(server.requests)
    dojo = {"name": "mledojo", "args": {"max_steps": 1, "parse_attempts": 2}}
    single = run_episode(batch_run, server, reward={"name": "milestone"}, scaffold=dojo)
    assert not isinstance(single, list) and single.extra_fields["stop_reason"] == "history_rewritten"
    assert len(server.requests) == before + 1
    sampled = server.requests[-1].token_ids
    assert single.response_ids[:len(sampled)] == sampled and single.response_mask[:len(sampled)] == [1] * len(sampled)
    record = json.loads(sorted((batch_run["plan"].out_dir / "episodes").glob("*.jsonl"))[-1]
                        .read_text().splitlines()[-1])
    expected = MilestoneReward().score(Trajectory.model_validate(record["trajectory"]),
                                       Grade.model_validate(record["grade"]))
    info = single.extra_fields["reward_extra_info"]
    assert single.reward_score == expected.total
    assert {k[len("reward_"):] for k in info if k.startswith("reward_") and k != "reward_total"} == set(KEYS)


def test_timeouts_and_server_failures_mask_one_episode_and_return_normally(batch_run, smollm2):
    """Under the legacy trainer (batch_run's config) every row needs an output: a harness failure
    is masked with reward 0. Under v1 it is dropped from its group instead (tests/test_verl_v1.py)."""
    server = batch_run["server"]
    # The hard episode timeout fires while the model is generating.
    out = run_episode(batch_run, server, episode_timeout_s=0.5)
    assert out.extra_fields["stop_reason"] == "timeout" and out.reward_score == 0.0
    assert set(out.response_mask) == {0} and out.extra_fields["reward_extra_info"]["masked"] == 1
    # A sandbox that does not open in time is a harness failure: masked, and no model call made.
    before = len(server.requests)
    out = run_episode(batch_run, server, task_index=1, sandbox_open_timeout_s=1e-9)
    assert out.extra_fields["stop_reason"] == "unknown" and set(out.response_mask) == {0}
    assert out.extra_fields["reward_extra_info"]["failed"] == 1 and len(server.requests) == before
    # A rollout server that refuses the request (here: a model shorter than the configured budget).
    short = SmolLM2TokenServer(smollm2.model, smollm2.tokenizer, max_model_len=64, response_length=RESPONSE_LEN,
                               prompt_length=PROMPT_LEN)
    out = run_episode(batch_run, short)
    assert out.extra_fields["stop_reason"] == "backend_error" and set(out.response_mask) == {0}
    assert out.extra_fields["reward_extra_info"]["failed"] == 1 and not short.requests
    v1 = batch_run["config"].copy()
    v1.trainer.use_v1 = True
    assert run_episode(batch_run, short, config=v1) == []  # v1: dropped, nothing goes to TransferQueue
