"""``sandmle train ... --export-hf``: a veRL checkpoint becomes a Hugging Face folder.

Real: veRL 0.9.1's ``FSDPCheckpointManager`` writes the checkpoint of a tiny random Llama (FSDP on
CPU, a one-process gloo group; tests/verl_tiny_checkpoint.py), veRL's ``FSDPModelMerger`` merges
its shards, and our ``transformers`` backend (what ``sandmle eval --backend transformers`` builds)
loads the result and generates. The tokenizer is SmolLM2's.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_support import cli  # noqa: F401  (fixture)

from sandmle.core.errors import SandmleError
from sandmle.core.records import Sampling
from sandmle.plugins.verl.hf_export import export_hf, has_hf_weights

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def write_checkpoint(tokenizer_dir: Path, out: Path, step: int, contents: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(HERE / "verl_tiny_checkpoint.py"), str(tokenizer_dir), str(out),
                           str(step), ",".join(contents)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def shards_only(verl_model_dir, tmp_path_factory) -> Path:
    """veRL's default save_contents (SandMLE's run): FSDP shards, config and tokenizer only."""
    return write_checkpoint(verl_model_dir, tmp_path_factory.mktemp("ckpt_shards"), 2, ["model", "optimizer", "extra"])


def load_and_generate(folder: Path):
    from sandmle.core.plugins import get_registry

    backend = get_registry().create("backends", "transformers", {"model": str(folder), "max_new_tokens": 4})
    try:
        out = asyncio.run(backend.complete([{"role": "user", "content": "hi"}],
                                           sampling=Sampling(seed=0, temperature=1.0, max_tokens=4)))
        text = backend.tokenizer.decode(out.token_ids, skip_special_tokens=True)
        weights = {k: v.detach().clone() for k, v in backend.model.state_dict().items()}
    finally:
        asyncio.run(backend.aclose())
    return out, text, weights


def test_fsdp_shards_merge_into_a_folder_the_transformers_backend_loads(shards_only, tmp_path):
    actor = shards_only / "global_step_2" / "actor"
    assert (actor / "model_world_size_1_rank_0.pt").is_file() and not has_hf_weights(actor / "huggingface")
    hf = export_hf(shards_only, tmp_path / "hf")
    assert has_hf_weights(hf) and (hf / "tokenizer.json").is_file()
    out, text, loaded = load_and_generate(hf)
    assert 0 < len(out.token_ids) <= 4 and out.text == text
    # The merged weights are the trained ones (veRL's merger writes bfloat16).
    original = torch.load(shards_only / "original.pt")
    for name, tensor in original.items():
        assert torch.allclose(loaded[name].float(), tensor.to(torch.bfloat16).float()), name


def test_a_checkpoint_with_hf_model_is_copied_and_a_missing_one_is_a_clear_error(verl_model_dir, tmp_path):
    ckpt = write_checkpoint(verl_model_dir, tmp_path / "ckpt", 3, ["model", "optimizer", "extra", "hf_model"])
    assert has_hf_weights(ckpt / "global_step_3" / "actor" / "huggingface")
    hf = export_hf(ckpt, tmp_path / "hf")
    assert sorted(p.name for p in hf.iterdir()) == \
        sorted(p.name for p in (ckpt / "global_step_3" / "actor" / "huggingface").iterdir())
    out, _, _ = load_and_generate(hf)
    assert out.token_ids
    with pytest.raises(SandmleError, match="exists and is not empty"):
        export_hf(ckpt, hf)
    with pytest.raises(SandmleError, match="no veRL checkpoint"):
        export_hf(tmp_path / "empty", tmp_path / "hf2")


def test_train_export_hf_is_refused_for_a_trainer_without_export(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\noutput_dir: {tmp_path / 'out'}\ntasks: []\ntrain:\n"
                      "  trainer: {name: sft, args: {data: d.jsonl}}\n")
    code, out, err = cli("train", str(recipe), "--export-hf")
    assert code != 0 and "--export-hf: the sft trainer has no export" in out + err
