"""The ``openvino`` backend against the ``transformers`` backend it must stand in for: the same
prompt ids on a real multi-turn ReAct episode, the same log-probabilities of the sampled ids
(float32: within 1e-2 nats; the bfloat16 default: a mean within 0.1), the baked temperature,
seeds, continuous batching (a request joins a batch that is already generating), cancellation,
the context window, the export cache, and ``sandmle eval --backend openvino``.

SmolLM2-135M (the real model) in both backends, loaded once per session (conftest's ``smollm2``
and ``smollm2_openvino``); replies are capped at 24 tokens unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil

import pytest
from engine_support import reference_logprobs
from scaffolds_support import generate_tasks, run_episode

from sandmle.core.cli import main
from sandmle.core.plugins import get_registry
from sandmle.core.records import Sampling

MSGS = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("openvino_tasks")
    return out, generate_tasks(out, ["iris-multiclass"])[0]


@pytest.fixture(scope="module")
def sandbox():
    sb = get_registry().create("sandboxes", "local")
    yield sb
    asyncio.run(sb.shutdown())


def test_react_episode_has_the_transformers_prompt_ids_and_logprobs(smollm2_openvino, smollm2, generated, sandbox):
    """A real two-call ReAct episode on OpenVINO (float32): every turn's prompt ids are what the
    ``transformers`` backend builds for the same messages, the second prompt extends the first
    with the sampled ids (what the engine's prefix cache reuses), and every logprob is within
    1e-2 nats of transformers' float32 forward pass (measured: ~3e-4 mean, 4e-3 max)."""
    task = generated[1]
    scaffold = get_registry().create("scaffolds", "react", {"limits": {"max_llm_calls": 2, "exec_timeout_s": 20}})
    traj, _ = run_episode(scaffold, smollm2_openvino, sandbox, task)
    assert traj.backend == "openvino" and len(traj.turns) == 2, traj.stop_reason
    first, second = traj.turns
    assert second.prompt_token_ids[:len(first.prompt_token_ids) + len(first.token_ids)] == \
        first.prompt_token_ids + first.token_ids
    for turn in traj.turns:
        messages = traj.messages[:turn.messages_in]
        assert smollm2.prompt_ids(messages) == turn.prompt_token_ids
        smollm2.remember(messages, turn.prompt_token_ids, turn)
        assert turn.token_ids and len(turn.logprobs) == len(turn.token_ids) <= 24
        ref = reference_logprobs(smollm2.model, turn.prompt_token_ids, turn.token_ids)
        assert turn.logprobs == pytest.approx(ref, abs=1e-2)


def test_the_bfloat16_default_is_close_to_float32(smollm2):
    """``precision: auto`` runs bfloat16 on this CPU (AMX); measured ~0.01-0.015 nats mean absolute
    difference per token from transformers' float32; the stated tolerance is a mean below 0.1."""
    fast = get_registry().create("backends", "openvino", {"max_new_tokens": 24})
    try:
        c = asyncio.run(fast.complete(MSGS, sampling=Sampling(seed=2, max_tokens=24)))
    finally:
        asyncio.run(fast.aclose())
    ref = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids)
    diff = [abs(a - b) for a, b in zip(c.logprobs, ref)]
    assert len(diff) == len(c.token_ids) > 0 and sum(diff) / len(diff) < 0.1


def test_sampling_returns_ids_text_and_usage(smollm2_openvino):
    a = asyncio.run(smollm2_openvino.complete(MSGS, sampling=Sampling(max_tokens=12)))
    assert 0 < len(a.token_ids) <= 12 and all(lp <= 0 and math.isfinite(lp) for lp in a.logprobs)
    assert smollm2_openvino.tokenizer.decode(a.token_ids, skip_special_tokens=True) == a.text
    assert a.usage.completion_tokens == len(a.token_ids) and a.usage.prompt_tokens == len(a.prompt_token_ids)
    assert (a.finish_reason == "stop") == (a.token_ids[-1] in smollm2_openvino.stop_ids)


def test_greedy_matches_transformers_greedy(smollm2_openvino, smollm2):
    a = asyncio.run(smollm2_openvino.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=10)))
    b = asyncio.run(smollm2.complete(MSGS, sampling=Sampling(temperature=0, max_tokens=10)))
    assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=1e-2)


def test_seeds_are_honoured_and_unseeded_rollouts_differ(smollm2_openvino):
    """OpenVINO seeds every request alike unless told otherwise, which would make the rollouts of
    one GRPO group identical; the backend passes ``Sampling.seed`` and draws a fresh one without."""
    async def eight(seed):
        return await asyncio.gather(*[smollm2_openvino.complete(MSGS, sampling=Sampling(seed=seed, max_tokens=16))
                                      for _ in range(8)])

    unseeded = asyncio.run(eight(None))
    assert len({tuple(c.token_ids) for c in unseeded}) >= 4
    # A seed reproduces a reply generated alone (in a batch, other rows change the kernels' shapes
    # and so the last bits of the logits, which can flip a sample: measured, 2 distinct of 8).
    alone = [asyncio.run(smollm2_openvino.complete(MSGS, sampling=Sampling(seed=11, max_tokens=16)))
             for _ in range(2)]
    assert alone[0].token_ids == alone[1].token_ids


def test_logprobs_at_another_temperature_are_withheld_not_wrong(smollm2_openvino):
    """OpenVINO GenAI reports log_softmax of the raw logits whatever the sampling temperature
    (measured: ~0.43 nats off at 0.7); a request at a temperature not baked in gets no logprobs."""
    c = asyncio.run(smollm2_openvino.complete(MSGS, sampling=Sampling(seed=5, temperature=0.7, max_tokens=8)))
    assert c.token_ids and c.logprobs is None


@pytest.mark.slow
def test_a_model_exported_at_a_temperature_reports_its_sampling_logprobs(smollm2):
    """Exported with ``temperature: 0.7`` baked into the output layer (SmolLM2 ties it to the
    embeddings; the scaled copy must not be re-tied), a request at 0.7 gets
    ``log_softmax(logits / 0.7)``, the distribution it was sampled from."""
    warm = get_registry().create("backends", "openvino", {"precision": "f32", "temperature": 0.7})
    try:
        c = asyncio.run(warm.complete(MSGS, sampling=Sampling(seed=3, temperature=0.7, max_tokens=16)))
    finally:
        asyncio.run(warm.aclose())
    ref = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids, temperature=0.7)
    assert c.token_ids and c.logprobs == pytest.approx(ref, abs=1e-2)
    raw = reference_logprobs(smollm2.model, c.prompt_token_ids, c.token_ids)
    assert max(abs(a - b) for a, b in zip(c.logprobs, raw)) > 0.05  # not the unscaled model's


def test_a_request_joins_a_batch_that_is_already_generating(smollm2_openvino, monkeypatch):
    """Continuous batching: a short request sent while a long one generates is answered before
    the long one ends (a static batch would make it wait for the whole long reply), and both
    were in the engine at the same step."""
    backend = smollm2_openvino
    monkeypatch.setattr(backend, "config", backend.config.model_copy(update={"max_new_tokens": 200}))
    monkeypatch.setattr(backend, "stop_ids", {49151})  # never sampled: each reply runs to its limit
    largest_before = backend.stats.largest_batch
    backend.stats.largest_batch = 0

    async def long_then_short():
        started = backend.stats.sampled_tokens
        long = asyncio.ensure_future(backend.complete(MSGS, sampling=Sampling(seed=1, max_tokens=200)))
        while backend.stats.sampled_tokens - started < 10:
            await asyncio.sleep(0.01)
        short = await backend.complete(MSGS, sampling=Sampling(seed=2, max_tokens=4))
        short_done_while_long_ran = not long.done()
        return short, await long, short_done_while_long_ran

    short, long, overlapped = asyncio.run(long_then_short())
    assert len(short.token_ids) == 4 and len(long.token_ids) == 200
    assert overlapped and backend.stats.largest_batch >= 2
    backend.stats.largest_batch = max(largest_before, backend.stats.largest_batch)


def test_a_cancelled_request_stops_generating(smollm2_openvino, monkeypatch):
    """An abandoned request (its episode timed out) is dropped at the engine's next step: at most
    one more token is sampled for it, and the engine is left with nothing in flight."""
    backend = smollm2_openvino
    monkeypatch.setattr(backend, "config", backend.config.model_copy(update={"max_new_tokens": 2000}))
    monkeypatch.setattr(backend, "stop_ids", {49151})
    started = backend.stats.sampled_tokens

    async def cancel_mid_generation() -> int:
        pending = asyncio.ensure_future(backend.complete(MSGS, sampling=Sampling(seed=1, max_tokens=2000)))
        while backend.stats.sampled_tokens - started < 8:
            await asyncio.sleep(0.01)
        pending.cancel()
        at_cancel = backend.stats.sampled_tokens
        with pytest.raises(asyncio.CancelledError):
            await pending
        for _ in range(500):  # the serving thread drops it at its next step
            if backend.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        return at_cancel

    at_cancel = asyncio.run(cancel_mid_generation())
    assert at_cancel - started >= 8 and backend.in_flight == 0
    assert backend.stats.sampled_tokens - at_cancel <= 1, "the engine generated on after the cancel"


def test_a_prompt_that_fills_the_context_window_is_refused(smollm2_openvino):
    """The export records SmolLM2's 8,192 positions; a prompt that fills them is refused before
    it reaches the engine, and a prompt near the end gets a reply cut where the window ends."""
    from sandmle.core.errors import ContextLengthError

    backend = smollm2_openvino
    assert backend.context_window == 8192
    with pytest.raises(ContextLengthError, match="8192 tokens"):
        asyncio.run(backend.generate([1] * 8192, Sampling(max_tokens=4)))
    prompt = backend.prompt_ids(MSGS)
    saved, backend.context_window = backend.context_window, len(prompt) + 3
    try:
        out = asyncio.run(backend.generate(prompt, Sampling(temperature=1.0, max_tokens=20)))
    finally:
        backend.context_window = saved
    assert 1 <= len(out.token_ids) <= 3


def test_export_cache_hit_skips_the_export_and_new_weights_export_again(tmp_path, monkeypatch):
    """Keyed by the model's content (tests/test_engine_convert.py's tiny Llama, exported in a
    second): the same weights at another path hit the cache; new weights export again (so does
    another baked temperature: it is part of the key, see the temperature test)."""
    from test_engine_convert import _tiny_model

    from sandmle.plugins.engine import openvino_convert

    monkeypatch.setenv("SANDMLE_CACHE", str(tmp_path / "cache"))
    model = _tiny_model(tmp_path / "tiny")
    calls = []
    real = openvino_convert.write_openvino
    monkeypatch.setattr(openvino_convert, "write_openvino", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = openvino_convert.converted_openvino(str(model))
    assert first.converted and (first.path / openvino_convert.DONE).is_file()
    assert (first.path / "openvino_model.xml").is_file() and first.path.parent == tmp_path / "cache" / "openvino"
    copy = shutil.copytree(model, tmp_path / "copy")
    again = openvino_convert.converted_openvino(str(copy))
    assert not again.converted and again.path == first.path and len(calls) == 1
    _tiny_model(copy, seed=1)
    changed = openvino_convert.converted_openvino(str(copy))
    assert changed.converted and changed.path != first.path and len(calls) == 2


def test_eval_cli_with_the_openvino_backend(smollm2_openvino, tmp_path, generated):
    """The path a user takes: ``sandmle eval RECIPE --backend openvino`` (two episodes at once)."""
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"""
name: openvino-eval
output_dir: {tmp_path}/eval
tasks: {{name: gen, source: {{name: directory, args: {{path: {generated[0]}}}}}, limit: 1}}
scaffolds: [{{name: react, args: {{limits: {{max_llm_calls: 2, exec_timeout_s: 20}}}}}}]
evaluation: {{seeds: [0, 1], concurrency: 2}}
""", encoding="utf-8")
    main(["eval", str(recipe), "--backend", "openvino", "--backend-args", json.dumps({"max_new_tokens": 16})])
    results = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 and all(r["status"] == "ok" and r["llm_calls"] >= 1 for r in results), results
    assert all(r["policy"].startswith("openvino") for r in results)
    [run] = [json.loads(line) for line in (tmp_path / "eval" / "generation.jsonl").read_text().splitlines()]
    [engine] = run["policies"].values()
    assert engine["calls"] == sum(r["llm_calls"] for r in results)
    assert 0 < engine["generated_tokens"] <= 16 * engine["calls"] and engine["generate_s"] > 0


def test_without_optimum_intel_the_export_says_how_to_install_it(tmp_path, monkeypatch):
    """optimum-intel cannot be a normal requirement (it declares transformers<5.6), so a user who
    installed only ``sandmle[engine]`` is told the exact --no-deps command."""
    import sys

    from sandmle.core.errors import SandmleError
    from sandmle.plugins.engine import openvino_convert

    monkeypatch.setitem(sys.modules, "optimum.exporters.openvino", None)  # as if not installed
    with pytest.raises(SandmleError, match=r"pip install --no-deps optimum-intel==2\.2\.0 optimum==2\.3\.0"):
        openvino_convert.write_openvino(None, None, None, tmp_path / "out")


def test_a_live_refresh_writes_new_weights_into_the_first_export(tmp_path, monkeypatch):
    """GRPO refreshes: the first export traces the model (optimum), later ones write the updated
    weights into that graph. What they serve must equal a full export of the same weights (same
    ids and logprobs, seeded, float32), and a change the fast path cannot carry (a norm scale,
    which the graph does not hold as a named constant) falls back to a full export.
    tests/test_engine_convert.py's tiny Llama with a LoRA adapter, so each export takes a second."""
    import copy

    import peft
    import torch
    import transformers
    from test_engine_convert import _tiny_model

    from sandmle.plugins.engine.openvino_backend import OpenVinoBackend, OpenVinoConfig
    from sandmle.plugins.engine.openvino_convert import LiveExporter, write_openvino

    monkeypatch.setenv("SANDMLE_CACHE", str(tmp_path / "cache"))
    folder = _tiny_model(tmp_path / "tiny")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    policy = peft.get_peft_model(transformers.AutoModelForCausalLM.from_pretrained(str(folder)),
                                 peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    exporter = LiveExporter(temperature=0.7)

    def serve(path):
        backend = OpenVinoBackend(OpenVinoConfig(precision="f32", max_new_tokens=8), path=path)
        try:
            return asyncio.run(backend.generate(backend.prompt_ids(MSGS), Sampling(seed=3, temperature=0.7, max_tokens=8)))
        finally:
            asyncio.run(backend.aclose())

    before = serve(exporter(policy, tokenizer, tmp_path / "slot1"))
    with torch.no_grad():  # an update: the adapter moves
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p))
    fast = exporter(policy, tokenizer, tmp_path / "slot0")
    assert exporter.full_exports == 1
    full = write_openvino(copy.deepcopy(policy).merge_and_unload(), tokenizer, None, tmp_path / "full", temperature=0.7)
    a, b = serve(fast), serve(full)
    assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    assert a.logprobs != pytest.approx(before.logprobs, abs=1e-3)  # the new weights are served
    # The refresh after next rewrites the first export's own folder (slots alternate).
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p))
    third = serve(exporter(policy, tokenizer, tmp_path / "slot1"))
    assert exporter.full_exports == 1 and third.logprobs != pytest.approx(a.logprobs, abs=1e-3)
    with torch.no_grad():
        policy.base_model.model.model.norm.weight.mul_(2.0)
    exporter(policy, tokenizer, tmp_path / "slot0")
    assert exporter.full_exports == 2
