"""A veRL checkpoint as a Hugging Face model folder (``sandmle train ... --export-hf``).

veRL 0.9.1's FSDP checkpoint manager writes, per step, ``global_step_N/actor/``
(``verl/utils/checkpoint/fsdp_checkpoint_manager.py:272-480``):

- ``model_world_size_W_rank_R.pt``: one sharded state dict per rank (``save_contents: model``);
- ``fsdp_config.json`` (``world_size``) and ``huggingface/`` with the config and tokenizer;
- with ``hf_model`` in ``save_contents`` (our default, see ``VerlTrainerConfig.save_hf_model``)
  also the full weights in ``huggingface/`` (rank 0 gathers them).

:func:`export_hf` turns the step's actor folder into a folder that ``sandmle eval --backend
transformers --backend-args '{"model": DIR}'`` loads: it copies ``huggingface/`` when it holds
weights, and otherwise merges the shards with veRL's own model merger (``verl.model_merger``,
``FSDPModelMerger``, the tool veRL documents for this: ``python -m verl.model_merger merge``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sandmle.core.errors import SandmleError

#: Files that make ``huggingface/`` a loadable model rather than only its config and tokenizer.
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")


def actor_dir(checkpoint_dir: Path, step: int | None = None) -> Path:
    """``global_step_N/actor`` for ``step`` (default: the last one veRL recorded as complete)."""
    checkpoint_dir = Path(checkpoint_dir)
    if step is None:
        tracker = checkpoint_dir / "latest_checkpointed_iteration.txt"
        try:
            step = int(tracker.read_text().strip())
        except (OSError, ValueError):
            steps = sorted(int(p.name.split("_")[-1]) for p in checkpoint_dir.glob("global_step_*")
                           if p.name.split("_")[-1].isdigit())
            if not steps:
                raise SandmleError(f"no veRL checkpoint in {checkpoint_dir} (no global_step_N folder)") from None
            step = steps[-1]
    actor = checkpoint_dir / f"global_step_{step}" / "actor"
    if not actor.is_dir():
        raise SandmleError(f"veRL checkpoint step {step} has no actor folder: {actor}")
    return actor


def has_hf_weights(folder: Path) -> bool:
    return any(any(folder.glob(g)) for g in _WEIGHT_GLOBS)


def export_hf(checkpoint_dir: Path, target: Path, *, step: int | None = None) -> Path:
    """Write the actor of ``step`` (default: the last) as a Hugging Face folder at ``target``."""
    actor = actor_dir(checkpoint_dir, step)
    hf = actor / "huggingface"
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise SandmleError(f"--export-hf: {target} exists and is not empty")
    if has_hf_weights(hf):  # save_contents had hf_model: rank 0 already wrote the full weights
        shutil.copytree(hf, target, dirs_exist_ok=True)
        return target
    if not any(actor.glob("model_world_size_*_rank_*.pt")):
        raise SandmleError(f"{actor} has neither Hugging Face weights nor FSDP model shards "
                           "(was 'model' left out of the checkpoint's save_contents?)")
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    target.mkdir(parents=True, exist_ok=True)
    config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=str(actor), target_dir=str(target),
                               hf_model_config_path=str(hf))
    merger = FSDPModelMerger(config)
    merger.merge_and_save()
    merger.cleanup()
    return target
