"""Our agent loop through veRL 0.9.1's v1 trainer path (``trainer.use_v1``, the default the recipe
runs), with real TransferQueue storage, on CPU.

Real: veRL's config composed from our trainer's overrides, ``RLHFDataset``, ``AgentLoopWorkerTQ``
(``trainer/ppo/v1/agent_loop_tq.py``; its Ray actor's class built in this process, as the legacy
test builds ``AgentLoopWorker``) with its postprocessing into TransferQueue, the ``ReplayBuffer``
that samples finished groups back out, ``compute_advantage_for_multi_trajectories``
(``trainer/ppo/v1/utils.py``) over what the trainer reads back (``trainer_base.py:1743-1780``),
TransferQueue 0.1.11 (controller and SimpleStorage units as Ray actors on a local Ray), SmolLM2-135M
sampling every token, generated tasks, the ``local`` sandbox and ``default`` grader. The one fake is
``SmolLM2TokenServer`` (vLLM cannot run here); one test wraps it to refuse one episode's requests,
which is how a rollout server fails.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from sandmle.core.task import load_task
from sandmle.plugins.verl.config import AGENT_NAME, VerlTrainerConfig, hydra_overrides
from sandmle.plugins.verl.launch import prepare

from verl_support import SmolLM2TokenServer, compose_verl_config, load_recipe, recipe_data

pytestmark = pytest.mark.slow

PROMPT_LEN, RESPONSE_LEN, TURN_TOKENS = 2048, 16, 6


class RefusingServer:
    """SmolLM2TokenServer that refuses every request of the ``refuse``-th episode it sees (by its
    sticky request id), as a rollout server that drops a connection does."""

    def __init__(self, inner: SmolLM2TokenServer, refuse: int = 2):
        self.inner, self.refuse, self.seen, self.refused = inner, refuse, [], set()

    async def generate(self, request_id: str, **kwargs):
        if request_id not in self.seen:
            self.seen.append(request_id)
        if self.seen.index(request_id) == self.refuse - 1:
            self.refused.add(request_id)
            raise ConnectionError("rollout server closed the connection")
        return await self.inner.generate(request_id, **kwargs)


@pytest.fixture(scope="module")
def tq_storage():
    """A local Ray with TransferQueue's controller and storage, as main_ppo.py:137-149 starts it."""
    import ray
    import transfer_queue as tq

    from omegaconf import OmegaConf

    # Logical CPUs: TransferQueue's controller and each storage unit reserve one (controller.py:943).
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield tq
    tq.close()
    ray.shutdown()


def run_v1_batch(tq, smollm2, model_dir, tasks_dir, out, *, scaffold: dict, reward: str, n: int,
                 task_indices: list[int], uid_prefix: str, refuse: int | None = None) -> dict:
    """One step's rollout as the v1 sync trainer does it: prompts registered in TransferQueue
    (trainer_base.py:1496-1512), AgentLoopWorkerTQ.generate_sequences, then the ReplayBuffer samples
    the finished groups and the advantage is computed from what TransferQueue holds."""
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
    from verl.protocol import DataProto
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    args = {"n": n, "batch_tasks": len(task_indices), "n_gpus_per_node": 1, "agent_workers": 1, "val_tasks": 0,
            "max_prompt_tokens": PROMPT_LEN, "max_episode_tokens": RESPONSE_LEN, "max_new_tokens": TURN_TOKENS,
            "model": str(model_dir)}
    recipe = load_recipe(recipe_data(out, tasks_dir, scaffold=scaffold, reward={"name": reward}, trainer_args=args))
    tasks = [load_task(p) for p in sorted(tasks_dir.iterdir())]
    plan = prepare(recipe, [tasks[i] for i in task_indices], VerlTrainerConfig(**args), recipe.train_dir)
    config = compose_verl_config(hydra_overrides(plan.overrides))
    assert config.trainer.use_v1 and config.trainer.v1.trainer_mode == "sync"  # what the recipe runs
    server = SmolLM2TokenServer(smollm2.model, smollm2.tokenizer, max_model_len=PROMPT_LEN + RESPONSE_LEN,
                                response_length=RESPONSE_LEN, prompt_length=PROMPT_LEN)
    client = RefusingServer(server, refuse) if refuse else server
    worker = AgentLoopWorkerTQ.__ray_metadata__.modified_class(config, client)
    dataset = RLHFDataset([config.data.train_files], worker.tokenizer, config.data)
    # As _fetch_one_gen_batch/_next_train_batch do (trainer_base.py:1466-1492); no "_" in a uid.
    batch_dict = collate_fn([dataset[i] for i in range(len(dataset))])
    uids = [f"{uid_prefix}{i}" for i in range(len(dataset))]
    batch_dict["uid"] = np.array(uids, dtype=object)
    batch = tu.get_tensordict(batch_dict)
    tu.assign_non_tensor_data(batch, "global_steps", 1)
    tq.kv_batch_put(keys=uids, partition_id="train",
                    tags=[{"is_prompt": True, "status": "pending", "global_steps": 1} for _ in uids])

    async def rollout():
        await worker.generate_sequences(batch)
        while worker.background_tasks:  # fire-and-forget tasks (agent_loop_tq.py:98-103)
            await asyncio.gather(*list(worker.background_tasks))

    asyncio.run(rollout())
    sampler = config.trainer.v1.sampler  # as trainer_base.py:139-185 builds the sync buffer
    buffer = ReplayBuffer(trainer_mode="sync", trainer_config=config.trainer.v1.get("sync", {}),
                          max_off_policy_threshold=sampler.max_off_policy_threshold,
                          max_off_policy_strategy=sampler.max_off_policy_strategy,
                          sampler_kwargs=sampler.sampler_kwargs, poll_interval=0.1,
                          train_batch_size=len(uids), gen_batch_size=len(uids))
    meta, _ = buffer.sample(global_steps=1, partition_id="train", batch_size=len(uids))
    stored = tq.kv_batch_get(keys=meta.keys, partition_id="train",
                             select_fields=["uid", "response_mask", "rm_scores", "extra_fields", "prompts",
                                            "responses"])
    data = DataProto(batch=stored.select("uid", "response_mask", "rm_scores").to_padded_tensor())
    data.batch["token_level_rewards"] = data.batch["rm_scores"]
    data.non_tensor_batch["uid"] = np.array(data.batch.pop("uid").tolist(), dtype=object)
    data = compute_advantage_for_multi_trajectories(
        data, batch_keys=meta.keys, adv_estimator=AdvantageEstimator.GRPO, num_repeat=n,
        norm_adv_by_std_in_grpo=config.algorithm.norm_adv_by_std_in_grpo, config=config.algorithm)
    episodes = [json.loads(line) for f in sorted((plan.out_dir / "episodes").glob("*.jsonl"))
                for line in f.read_text().splitlines()]
    extra = [e.data if hasattr(e, "data") else e for e in stored["extra_fields"]]
    tq.kv_clear(keys=meta.keys, partition_id="train")
    return {"keys": list(meta.keys), "data": data, "extra": extra, "stored": stored, "episodes": episodes,
            "server": server, "client": client, "config": config}


@pytest.fixture(scope="module")
def dropped_run(tq_storage, smollm2, verl_model_dir, verl_tasks, tmp_path_factory):
    """One task x 4 with reward 0.3 for every episode that runs; the second episode's server refuses."""
    return run_v1_batch(tq_storage, smollm2, verl_model_dir, verl_tasks, tmp_path_factory.mktemp("v1_drop"),
                        scaffold={"name": "react", "args": {"limits": {"max_llm_calls": 3}}},
                        reward="constant-0.3", n=4, task_indices=[0], uid_prefix="drop", refuse=2)


@pytest.fixture(scope="module")
def segments_run(tq_storage, smollm2, verl_model_dir, verl_tasks, tmp_path_factory):
    """One task x 2 with MLE-Dojo asking for a JSON repair in a fresh prompt: two segments each."""
    return run_v1_batch(tq_storage, smollm2, verl_model_dir, verl_tasks, tmp_path_factory.mktemp("v1_seg"),
                        scaffold={"name": "mledojo", "args": {"max_steps": 1, "parse_attempts": 2}},
                        reward="reply-length", n=2, task_indices=[1], uid_prefix="seg")


def test_a_failed_episode_is_dropped_from_its_group_and_the_others_get_advantage_zero(dropped_run):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    run = dropped_run
    reasons = sorted(e["stop_reason"] for e in run["episodes"])
    assert len(reasons) == 4 and reasons.count("backend_error") == 1 and len(run["client"].refused) == 1
    # Three sessions reached TransferQueue (one output each); the failed one left nothing.
    sessions = {k.rsplit("_", 1)[0] for k in run["keys"]}
    assert len(run["keys"]) == 3 and len(sessions) == 3 and all(k.startswith("drop0_") for k in run["keys"])
    data = run["data"]
    scores = data.batch["rm_scores"].sum(-1)
    assert scores.tolist() == pytest.approx([0.3] * 3)
    assert torch.all(data.batch["advantages"] == 0)  # [0.3, 0.3, 0.3] -> 0 each
    assert all(int(m.sum()) > 0 for m in data.batch["response_mask"])  # they still train (on 0)
    # What veRL's GRPO would have given them had the failure stayed in the group with reward 0.
    kept = torch.tensor([[0.3], [0.3], [0.3], [0.0]])
    adv, _ = compute_grpo_outcome_advantage(kept, torch.ones(4, 1), index=np.array(["g"] * 4, dtype=object))
    assert adv[:3, 0].tolist() == pytest.approx([0.5] * 3, abs=1e-4)


def test_a_multi_segment_episode_gets_its_advantage_on_every_segment(segments_run):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    run, tok = segments_run, segments_run["server"].tokenizer
    keys, data = run["keys"], run["data"]
    # key {uid}_{session}_{index} (agent_loop_tq.py:177-181): two sessions, two segments each.
    assert sorted(keys) == ["seg0_0_0", "seg0_0_1", "seg0_1_0", "seg0_1_1"]
    requests = run["server"].requests
    assert len(requests) == 4
    stored = run["stored"]
    for i, key in enumerate(keys):
        prompt, response = stored["prompts"][i].tolist(), stored["responses"][i].tolist()
        # Each segment is exactly one request: its prompt and its sampled tokens, all masked 1.
        assert any(r.prompt_ids == prompt and r.token_ids == response for r in requests), key
        assert stored["response_mask"][i].tolist() == [1] * len(response)
        if key.endswith("_1"):
            assert "Your reply was not valid" in tok.decode(prompt)
    # The episode's reward is on both segments (agent_loop_tq.py:172-175), the final one's.
    totals = {k: float(s) for k, s in zip(keys, data.batch["rm_scores"].sum(-1))}
    for s in ("0", "1"):
        assert totals[f"seg0_{s}_0"] == pytest.approx(totals[f"seg0_{s}_1"])
    finals = torch.tensor([[totals["seg0_0_1"]], [totals["seg0_1_1"]]])
    expected, _ = compute_grpo_outcome_advantage(finals, torch.ones(2, 1), index=np.array(["g", "g"], dtype=object),
                                                 norm_adv_by_std_in_grpo=True)
    adv = data.batch["advantages"]
    for i, key in enumerate(keys):
        session = int(key.split("_")[1])
        mask = data.batch["response_mask"][i].bool()
        assert torch.allclose(adv[i][mask], torch.full((int(mask.sum()),), float(expected[session, 0])), atol=1e-5)
        assert torch.all(adv[i][~mask] == 0)
    info = [e["reward_extra_info"] for e in run["extra"]]
    assert {i["segments"] for i in info} == {2.0}
