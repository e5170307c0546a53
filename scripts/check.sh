#!/usr/bin/env bash
# Static checks that CI runs before the tests (the README's test command runs this first):
# the import direction (pyproject.toml [tool.importlinter]) and the generated method docs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/lint-imports" --no-cache
"$BIN/python" -m samora.method_docs --check
