#!/usr/bin/env bash
# Print the oldest Python interpreter >= 3.8 that pyenv (or PATH) offers, other than the venv's.
set -euo pipefail
for v in 3.8 3.9 3.10; do
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.*; do
    [ -x "$d/bin/python" ] && { echo "$d/bin/python"; exit 0; }
  done
  command -v "python$v" >/dev/null 2>&1 && { command -v "python$v"; exit 0; }
done
exit 1
