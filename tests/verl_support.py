"""What the veRL tests share: SmolLM2 behind veRL's ``server_manager.generate`` contract, and
veRL's own config composed from the overrides our trainer writes.

``SmolLM2TokenServer`` is the only fake in the veRL tests, and it is one because a real vLLM/SGLang
server cannot run on this CPU-only machine. It keeps the contract of veRL 0.9.1's
``LLMServerClient.generate`` (``verl/workers/rollout/llm_server.py:99-163``): token ids in, a
``TokenOutput`` out; and the admission rule of ``vLLMHttpServer.generate``
(``verl/workers/rollout/vllm_rollout/vllm_async_server.py:593-617``): a prompt that leaves no room
within ``max_model_len`` raises ``ValueError``, ``max_tokens`` is clamped to the room left. Every
request is recorded so tests can check which tokens were sampled.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Request:
    request_id: str
    prompt_ids: list[int]
    token_ids: list[int]
    log_probs: list[float] | None
    max_tokens: int


class SmolLM2TokenServer:
    """A real model (SmolLM2-135M, HF generate) answering veRL's token-level generate calls."""

    def __init__(self, model: Any, tokenizer: Any, *, max_model_len: int, response_length: int,
                 prompt_length: int, seed: int = 0):
        import torch

        self.torch, self.model, self.tokenizer = torch, model, tokenizer
        self.max_model_len, self.response_length, self.prompt_length = max_model_len, response_length, prompt_length
        self.seed = seed
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._calls = 0
        eos = {tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.stop_ids = sorted(i for i in eos | {im_end} if isinstance(i, int) and i >= 0)

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: Any = None, video_data: Any = None, audio_data: Any = None,
                       mm_processor_kwargs: Any = None, **kwargs: Any) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        prompt_ids = list(prompt_ids)
        params = dict(sampling_params)
        room = self.max_model_len - len(prompt_ids)
        if room < 1:  # vLLM's rule, not ours: the agent loop must never get here
            raise ValueError(f"Prompt length ({len(prompt_ids)}) leaves no room to generate within the "
                             f"model's maximum context length ({self.max_model_len})")
        max_tokens = params.pop("max_tokens", None)
        if max_tokens is None:
            max_tokens = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        max_tokens = max(1, min(int(max_tokens), room))
        ids, logprobs = await asyncio.to_thread(self._sample, prompt_ids, params, max_tokens)
        self.requests.append(Request(request_id, prompt_ids, ids, logprobs, max_tokens))
        return TokenOutput(token_ids=ids, log_probs=logprobs, stop_reason="completed", num_preempted=0,
                           extra_fields={"global_steps": 0, "min_global_steps": 0, "max_global_steps": 0})

    def _sample(self, prompt_ids: list[int], params: dict[str, Any], max_tokens: int) -> tuple[list[int], Any]:
        torch = self.torch
        temperature = float(params.get("temperature", 1.0))
        greedy = temperature <= 0
        top_k = int(params.get("top_k", -1) or -1)
        stops = sorted(set(self.stop_ids) | set(params.get("stop_token_ids") or []))
        with self._lock, torch.no_grad():
            self._calls += 1  # under the lock: concurrent episodes must not share a seed
            torch.manual_seed(self.seed + self._calls)
            inputs = torch.tensor([prompt_ids])
            out = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_tokens, do_sample=not greedy,
                temperature=None if greedy else temperature, top_p=None if greedy else float(params.get("top_p", 1.0)),
                top_k=(top_k if top_k > 0 else 0) if not greedy else None, eos_token_id=stops,
                pad_token_id=stops[0], output_logits=True, return_dict_in_generate=True)
        ids = out.sequences[0, len(prompt_ids):].tolist()
        if not params.get("logprobs"):
            return ids, None
        scale = 1.0 if greedy else temperature
        return ids, [float(torch.log_softmax(step[0].float() / scale, -1)[tok]) for step, tok in zip(out.logits, ids)]


def save_hf_dir(model: Any, tokenizer: Any, path: Path) -> Path:
    """Config + tokenizer (no weights) in the HF layout veRL's ``HFModelConfig`` loads."""
    path.mkdir(parents=True, exist_ok=True)
    config = model.config
    if not getattr(config, "architectures", None):
        config.architectures = [type(model).__name__]
    config.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def compose_verl_config(overrides: list[str]) -> Any:
    """veRL's ``ppo_trainer`` config with ``overrides``, composed by hydra as ``main_ppo`` does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import verl.trainer.main_ppo as main_ppo

    config_dir = os.path.join(os.path.dirname(main_ppo.__file__), "config")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


# ---------------------------------------------------------------------------- shared fixtures
# Imported by tests/conftest.py so that every veRL test module shares them at session scope.
import pytest  # noqa: E402

HERE = Path(__file__).parent
REWARD_PLUGIN = HERE / "verl_reward_plugin.py"


@pytest.fixture(scope="session")
def verl_model_dir(smollm2, tmp_path_factory) -> Path:
    """SmolLM2's config and tokenizer in the HF layout veRL's HFModelConfig reads (no weights)."""
    return save_hf_dir(smollm2.model, smollm2.tokenizer, tmp_path_factory.mktemp("smollm2_hf"))


@pytest.fixture(scope="session")
def verl_tasks(tmp_path_factory) -> Path:
    """Two generated tasks (one classification, one regression)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("verl_tasks") / "tasks"
    subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", "2", "--seeds",
                    "breast-cancer-binary,diabetes-regression", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    return out


def load_recipe(data: dict):
    from sandmle.core.plugins import get_manager
    from sandmle.core.recipe import parse_recipe, resolve

    manager = get_manager()
    manager.fill_registry()
    for spec in data.get("plugins", []):
        manager.load_module(spec)
    return resolve(parse_recipe(data), manager.registry)


def recipe_data(out: Path, tasks: Path, *, scaffold: dict, reward: object, trainer_args: dict) -> dict:
    return {"name": "verl-test", "output_dir": str(out), "plugins": [str(REWARD_PLUGIN)],
            "tasks": {"name": "gen", "source": {"name": "directory", "args": {"path": str(tasks)}}},
            "sandbox": "local", "grader": "default", "reward": "milestone", "scaffolds": [scaffold],
            "train": {"trainer": {"name": "verl", "args": trainer_args}, "reward": reward}}
