#!/usr/bin/env bash
# Lint gates: yamllint, ruff, ansible-lint (production profile), and ansible-doc rendering of every
# module and filter. Run from the checkout with the venv on PATH (the Makefile sets it up).
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$PWD/build/collections}"
VENV_BIN="$PWD/.venv/bin"
export PATH="$VENV_BIN:$PATH"

echo "== yamllint"
"$VENV_BIN/yamllint" -s .
echo "== ruff"
"$VENV_BIN/ruff" check --quiet .
echo "== antsibull-changelog lint"
"$VENV_BIN/antsibull-changelog" lint
echo "== ansible-lint (production)"
"$VENV_BIN/ansible-lint" --offline --profile production -q
echo "== ansible-doc"
"$VENV_BIN/python" scripts/check_docs.py
echo "== ansible-test sanity validate-modules (offline)"
scripts/validate_modules.sh
