"""The ``ctranslate2`` backend against the ``transformers`` backend it must stand in for: same
prompt ids on a real multi-turn ReAct episode, the same log-probabilities of the sampled ids
(float32: to float noise; int8: within a stated tolerance), temperature handling, batching of
concurrent requests, cancellation, the conversion cache, and ``sandmle eval --backend ctranslate2``.

SmolLM2-135M (the real model) in both backends, loaded once per session (conftest's ``smollm2``
and ``smollm2_ct2``); replies are capped at 24 tokens.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time

import pytest
from engine_support import reference_logprobs
from scaffolds_support import generate_tasks, run_episode

from sandmle.core.cli import main
from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling

MSGS = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_tasks")
    return out, generate_tasks(out, ["iris-multiclass"])[0]


@pytest.fixture
def tasks_dir(generated):
    return generated[0]


@pytest.fixture(scope="module")
def sandbox():
    sb = get_registry().create("sandboxes", "local")
    yield sb
    asyncio.run(sb.shutdown())


def test_react_episode_has_the_transformers_prompt_ids_and_logprobs(smollm2_ct2, smollm2, generated, sandbox):
    """A real two-call ReAct episode on the engine: every turn's prompt ids are what the
    ``transformers`` backend builds for the same messages (after it is told the same earlier
    samples), later prompts extend earlier ones with the sampled ids, and every logprob equals
    transformers' float32 forward pass to 2e-3 (the engine runs float32 here)."""
    task = generated[1]
    scaffold = get_registry().create("scaffolds", "react", {"limits": {"max_llm_calls": 2, "exec_timeout_s": 20}})
    traj, _ = run_episode(scaffold, smollm2_ct2, sandbox, task)
    assert traj.backend == "ctranslate2" and len(traj.turns) == 2, traj.stop_reason
    first, second = traj.turns
    assert second.prompt_token_ids[:len(first.prompt_token_ids) + len(first.token_ids)] == \
        first.prompt_token_ids + first.token_ids  # the sampled ids, not a re-tokenisation
    for turn in traj.turns:
        messages = traj.messages[:turn.messages_in]
        assert smollm2.prompt_ids(messages) == turn.prompt_token_ids
        smollm2.remember(messages, turn.prompt_token_ids, turn)  # as if it had sampled this reply
        assert turn.token_ids and len(turn.logprobs) == len(turn.token_ids) <= 24
        ref = reference_logprobs(smollm2.model, turn.prompt_token_ids, turn.token_ids)
        assert turn.logprobs == pytest.approx(ref, abs=2e-3)


def test_int8_logprobs_are_close_to_float32(smollm2):
    """int8 weights (the default, ~2.5x faster) shift the logprobs: measured here ~0.1-0.2 nats
    mean absolute difference per token; the stated tolerance is a mean below 0.5 nats."""
    int8 = get_registry().create("backends", "ctranslate2", {"compute_type": "int8", "max_new_tokens": 24})
    c = asyncio.run(int8.complete(MSGS, sampling=Sampling(seed=2, max_tokens=24)))
    ref = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids)
    diff = [abs(a - b) for a, b in zip(c.logprobs, ref)]
    assert len(diff) == len(c.token_ids) > 0 and sum(diff) / len(diff) < 0.5
    asyncio.run(int8.aclose())


def test_sampling_returns_ids_text_and_usage(smollm2_ct2):
    a = asyncio.run(smollm2_ct2.complete(MSGS, sampling=Sampling(max_tokens=12)))
    assert 0 < len(a.token_ids) <= 12 and all(lp <= 0 and math.isfinite(lp) for lp in a.logprobs)
    assert smollm2_ct2.tokenizer.decode(a.token_ids, skip_special_tokens=True) == a.text
    assert a.usage.completion_tokens == len(a.token_ids) and a.usage.prompt_tokens == len(a.prompt_token_ids)
    assert (a.finish_reason == "stop") == (a.token_ids[-1] in smollm2_ct2.stop_ids)


def test_greedy_is_deterministic_and_matches_transformers_greedy(smollm2_ct2, smollm2):
    """Temperature 0: the engine's argmax ids are transformers' argmax ids (float32)."""
    a = asyncio.run(smollm2_ct2.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=10)))
    b = asyncio.run(smollm2.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=10)))
    assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=2e-3)


def test_logprobs_at_another_temperature_are_withheld_not_wrong(smollm2_ct2):
    """ctranslate2 reports log_softmax of the raw logits whatever the sampling temperature (seen
    in this test's first assertion, measured: ~0.12 nats off at 0.7); the backend returns no
    logprobs then, rather than numbers a trainer would take for sampling logprobs."""
    c = asyncio.run(smollm2_ct2.complete(MSGS, sampling=Sampling(seed=5, temperature=0.7, max_tokens=8)))
    assert c.token_ids and c.logprobs is None


def test_a_model_converted_at_a_temperature_reports_its_sampling_logprobs(smollm2, tmp_path):
    """What the grpo trainer does at temperature != 1: the temperature baked into the output layer."""
    from sandmle.plugins.engine.backend import CTranslate2Backend, CTranslate2Config
    from sandmle.plugins.engine.convert import convert_live_model

    path = convert_live_model(smollm2.model, smollm2.tokenizer, tmp_path / "t07", temperature=0.7)
    engine = CTranslate2Backend(CTranslate2Config(compute_type="float32"), path=path)
    c = asyncio.run(engine.complete(MSGS, sampling=Sampling(seed=5, temperature=0.7, max_tokens=10)))
    ref = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids, temperature=0.7)
    assert c.logprobs == pytest.approx(ref, abs=2e-3)
    asyncio.run(engine.aclose())


def test_concurrent_requests_share_batches(smollm2_ct2):
    before = smollm2_ct2.stats.as_dict()

    async def eight():
        return await asyncio.gather(*[smollm2_ct2.complete(
            [*MSGS[:1], {"role": "user", "content": f"Name {i} fruits."}], sampling=Sampling(seed=i, max_tokens=8))
            for i in range(8)])

    results = asyncio.run(eight())
    after = smollm2_ct2.stats.as_dict()
    assert all(r.token_ids and len(r.logprobs) == len(r.token_ids) for r in results)
    assert after["calls"] - before["calls"] == 8 and after["batches"] - before["batches"] < 8
    assert smollm2_ct2.stats.largest_batch > 1


def test_a_shared_prompt_prefix_is_encoded_once_with_the_same_logprobs(smollm2_ct2, smollm2):
    """Rows of one batch that start alike (a GRPO group's rollouts; a scaffold's system prompt)
    have their common prefix encoded once (ctranslate2's ``static_prompt``) and every row's
    logprobs still equal transformers' float32 forward pass over its own whole prompt."""
    system = {"role": "system", "content": "You are a careful data scientist. " * 8}
    before = smollm2_ct2.stats.as_dict()

    async def three():
        return await asyncio.gather(*[smollm2_ct2.complete(
            [system, {"role": "user", "content": f"Name {i} fruits."}], sampling=Sampling(max_tokens=12))
            for i in (3, 4, 5)])

    results = asyncio.run(three())
    after = smollm2_ct2.stats.as_dict()
    assert after["batches"] - before["batches"] == 1
    assert after["shared_prompt_tokens"] - before["shared_prompt_tokens"] >= 2 * 60
    for c in results:
        ref = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids)
        assert c.token_ids and c.logprobs == pytest.approx(ref, abs=2e-3)


class Recorded:
    """A proxy around a real generator that records when each of its batches ran."""

    def __init__(self, name, generator, spans):
        self.name, self.generator, self.spans = name, generator, spans

    def generate_batch(self, prompts, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.generator.generate_batch(prompts, *args, **kwargs)
        finally:
            self.spans.append((self.name, t0, time.perf_counter(), len(prompts)))


def _most_at_once(spans, weight):
    """The largest sum of ``weight(name)`` over batches running at the same instant."""
    events = sorted([(t0, 1, n) for n, t0, _, _ in spans] + [(t1, -1, n) for n, _, t1, _ in spans])
    now = most = 0
    for _, sign, name in events:  # an end sorts before a start at the same instant
        now += sign * weight(name)
        most = max(most, now)
    return most


def _ask_all(jobs):
    """Run ``(backend, i)`` requests from one thread each (episodes of separate event loops)."""
    def ask(backend, i):
        asyncio.run(backend.complete([*MSGS[:1], {"role": "user", "content": f"Name {i} fruits."}],
                                     sampling=Sampling(seed=i, max_tokens=16)))

    threads = [threading.Thread(target=ask, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_cpu_engines_never_hold_more_threads_than_cores(smollm2_ct2):
    """Two CPU engines of one process (an evaluation's base and SFT policies): their batches
    together never run more threads than the machine has cores. Each worker runs an OpenMP pool,
    and oversubscribed cores make OpenMP's barriers collapse. The real engines; a proxy around
    each generator only records when its batches ran."""
    from sandmle.plugins.engine.backend import CTranslate2Backend, CTranslate2Config
    from sandmle.plugins.engine.cores import cpu_count

    other = CTranslate2Backend(CTranslate2Config(max_new_tokens=16), path=smollm2_ct2.path)  # default workers
    spans: list = []
    saved = smollm2_ct2.generator
    smollm2_ct2.generator, other.generator = Recorded("a", saved, spans), Recorded("b", other.generator, spans)
    try:
        _ask_all([(b, i) for i in range(3) for b in (smollm2_ct2, other)])
    finally:
        smollm2_ct2.generator = saved
        other.generator = other.generator.generator
        other.unload()
    assert {name for name, *_ in spans} == {"a", "b"}
    threads = {"a": smollm2_ct2.threads, "b": other.threads}
    assert smollm2_ct2.threads == cpu_count()  # one worker: all the cores
    assert _most_at_once(spans, threads.get) <= cpu_count(), spans


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two cores")
def test_two_workers_generate_two_batches_at_once(smollm2_ct2):
    """The CPU default: two workers of one thread each, and the requests waiting when both are
    free split between them (8 requests: two batches of 4). Both batches run at the same time
    (their spans overlap), the rows still get their own ids and logprobs, and ``generate_s`` is
    the engine's busy time, not the sum of overlapping batches."""
    from sandmle.plugins.engine.backend import CTranslate2Backend, CTranslate2Config
    from sandmle.plugins.engine.cores import cpu_count

    engine = CTranslate2Backend(CTranslate2Config(max_new_tokens=16, batch_wait_s=0.2), path=smollm2_ct2.path)
    assert (engine.workers, engine.parallel_batches, engine.threads) == (2, 2, cpu_count() // 2)
    spans: list = []
    engine.generator = Recorded("e", engine.generator, spans)

    async def eight():
        return await asyncio.gather(*[engine.complete(
            [*MSGS[:1], {"role": "user", "content": f"Name {i} fruits."}], sampling=Sampling(max_tokens=16))
            for i in range(8)])

    t0 = time.perf_counter()
    try:
        results = asyncio.run(eight())
    finally:
        wall = time.perf_counter() - t0
        engine.generator = engine.generator.generator
        engine.unload()
    assert all(r.token_ids and len(r.logprobs) == len(r.token_ids) for r in results)
    assert sorted(rows for *_, rows in spans) == [4, 4], spans
    assert _most_at_once(spans, lambda _: 1) == 2, spans  # the two batches overlapped
    assert engine.stats.generate_s <= wall and engine.stats.generate_s < sum(t1 - t0 for _, t0, t1, _ in spans)


# cancellation: tests/test_backends_transformers.py::test_a_cancelled_request_stops_generating (both backends)


def _engine_eval(tmp_path, tasks_dir, seeds: list[int], backend_args: dict) -> list[dict]:
    """``sandmle eval RECIPE --backend ctranslate2`` of ReAct on one generated task; its result rows."""
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"""
name: engine-eval
output_dir: {tmp_path}/eval
tasks: {{name: gen, source: {{name: directory, args: {{path: {tasks_dir}}}}}, limit: 1}}
scaffolds: [{{name: react, args: {{limits: {{max_llm_calls: 2, exec_timeout_s: 20}}}}}}]
evaluation: {{seeds: {seeds}, concurrency: {len(seeds)}}}
""", encoding="utf-8")
    main(["eval", str(recipe), "--backend", "ctranslate2", "--backend-args", json.dumps(backend_args)])
    return [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]


def test_eval_cli_with_the_engine_backend(smollm2_ct2, tmp_path, tasks_dir):
    """The path a user takes: ``sandmle eval RECIPE --backend ctranslate2``."""
    results = _engine_eval(tmp_path, tasks_dir, [0, 1], {"compute_type": "int8", "max_new_tokens": 16})
    assert len(results) == 2 and all(r["status"] == "ok" and r["llm_calls"] >= 1 for r in results), results
    assert all(r["policy"].startswith("ctranslate2") for r in results)
    # what the engine generated is printed and kept with the results
    [run] = [json.loads(line) for line in (tmp_path / "eval" / "generation.jsonl").read_text().splitlines()]
    [engine] = run["policies"].values()
    assert run["episodes"] == 2 and engine["calls"] == sum(r["llm_calls"] for r in results)
    assert 0 < engine["generated_tokens"] <= 16 * engine["calls"] and engine["generate_s"] > 0


def test_a_prompt_that_fills_the_context_window_is_refused_and_a_reply_cut_at_its_end(smollm2_ct2, smollm2):
    """Both local backends know SmolLM2's window (config.json ``max_position_embeddings``: 8192;
    ctranslate2 keeps no such field, so the conversion records it). A prompt that fills it is
    refused before it is queued: on the engine a 17,323-token ReAct prompt once held ~11 GB of
    attention scores for minutes. A prompt near the end gets a reply cut where the window ends."""
    from sandmle.core.errors import ContextLengthError

    assert smollm2_ct2.context_window == 8192 and smollm2.context_window == 8192
    for backend in (smollm2_ct2, smollm2):
        with pytest.raises(ContextLengthError, match="8192 tokens"):
            asyncio.run(backend.generate([1] * 8192, Sampling(max_tokens=4)))
    prompt = smollm2_ct2.prompt_ids(MSGS)
    saved, smollm2_ct2.context_window = smollm2_ct2.context_window, len(prompt) + 3
    try:
        out = asyncio.run(smollm2_ct2.generate(prompt, Sampling(temperature=1.0, max_tokens=20)))
    finally:
        smollm2_ct2.context_window = saved
    assert 1 <= len(out.token_ids) <= 3 and out.usage.completion_tokens == len(out.token_ids)


def test_an_episode_whose_prompt_outgrows_the_model_ends_max_length(smollm2_ct2, tmp_path, tasks_dir):
    """Through ``sandmle eval``: a ReAct prompt longer than the window (set to 64 tokens here)
    ends the episode ``max_length`` with the reason kept, instead of crashing or hanging it."""
    [row] = _engine_eval(tmp_path, tasks_dir, [0], {"compute_type": "int8", "max_new_tokens": 8, "context_window": 64})
    assert row["status"] == "ok" and row["stop_reason"] == "max_length" and row["llm_calls"] == 0, row
    record = json.loads((tmp_path / "eval" / row["trajectory"]).read_text().splitlines()[0])
    assert record["trajectory"]["extra"]["backend_error"].startswith("ContextLengthError: prompt of ")
