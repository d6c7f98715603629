#!/usr/bin/env bash
# One-GPU smoke test of the verl trainer: 2 veRL GRPO steps (v1 trainer, vLLM rollouts, FSDP
# update) with SmolLM2-135M on 4 generated tasks, n=2, then checks: finite actor/pg_loss, non-zero
# actor/grad_norm, 8 episodes with sampled tokens per step, critic/score/mean equal to the
# episodes' mean reward, the rollout-vs-trainer logprob gap, and an exported HF folder that loads.
#
#   scripts/gpu-smoke.sh --prepare [DIR]    on CPU, with the package index: model, tasks, recipe,
#                                           requirements-gpu.txt (and DIR/wheelhouse with --wheelhouse)
#   scripts/gpu-smoke.sh --dry-run [DIR]    on CPU: compose the recipe's veRL config, check it
#   scripts/gpu-smoke.sh [DIR]              on the GPU machine (no internet): install from
#                                           DIR/wheelhouse if present, train, check (timeout 8 min)
#
# DIR defaults to .gpu-smoke (ignored by git). It must sit at the same absolute path on the GPU
# machine (the recipe names its paths), or run --prepare --no-convert there to rewrite the recipe.
# See docs/guides/verl.md ("A one-GPU smoke test") for carrying DIR over.
set -euo pipefail

mode=run wheelhouse=0 convert=1
args=()
for a in "$@"; do
  case "$a" in
    --prepare) mode=prepare ;;
    --dry-run) mode=dry-run ;;
    --wheelhouse) wheelhouse=1 ;;
    --no-convert) convert=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
DIR=$(realpath -m "${args[0]:-.gpu-smoke}")
PY=${PYTHON:-python}
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

case "$mode" in
  prepare)
    if [ "$convert" = 1 ]; then
      "$PY" -m sandmle.plugins.verl.smoke prepare "$DIR"
    else
      "$PY" -c "import sys; from sandmle.plugins.verl.smoke import prepare; prepare(sys.argv[1], convert=False)" "$DIR"
    fi
    if [ "$wheelhouse" = 1 ]; then
      # Linux x86_64, CPython 3.11 wheels for the GPU machine (several GB: vLLM, torch + CUDA libs).
      # Run from the repository root: sandmle's own dependencies and the verl-gpu extra.
      "$PY" -m pip download -d "$DIR/wheelhouse" --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --python-version 3.11 ".[verl-gpu]"
    else
      echo "wheelhouse plan (--wheelhouse downloads it, several GB): pip download -d $DIR/wheelhouse" \
           "--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 '.[verl-gpu]'"
    fi
    ;;
  dry-run)
    "$PY" -m sandmle.plugins.verl.smoke dry-run "$DIR"
    ;;
  run)
    command -v nvidia-smi >/dev/null && nvidia-smi -L || { echo "error: no GPU (nvidia-smi)"; exit 2; }
    if [ -d "$DIR/wheelhouse" ]; then
      "$PY" -m pip install --no-index --find-links "$DIR/wheelhouse" -e ".[verl-gpu]"  # from the repository root
    fi
    "$PY" -m sandmle.plugins.verl.smoke dry-run "$DIR" >/dev/null
    start=$(date +%s)
    timeout 480 sandmle train "$DIR/recipe.yaml" --fresh --export-hf
    echo "train + export: $(( $(date +%s) - start )) s"
    "$PY" -m sandmle.plugins.verl.smoke check "$DIR"
    ;;
esac
