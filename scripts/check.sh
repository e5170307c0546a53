#!/usr/bin/env bash
# Static checks that CI runs before the tests (the README's test command runs this first):
# the import direction (pyproject.toml [tool.importlinter]), the generated method docs, and ruff (lint and
# format, line length 119, settings in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/lint-imports" --no-cache
"$BIN/python" -m samora.run.method_docs --check
"$BIN/ruff" check src tests benchmarks
"$BIN/ruff" format --check src tests benchmarks
