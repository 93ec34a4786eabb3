#!/usr/bin/env bash
# The body of `make test` after lint: boot the qemu lab once, run molecule against it, then the whole
# pytest suite (unit, conformance, integration), so the run ends with pytest's summary line.
# The lab is always shut down, also when a step fails or the run is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
LAB=tests/lab/lab
if [ -x "$LAB" ]; then
  trap '"$LAB" down || true' EXIT
  trap 'exit 130' INT TERM
  "$LAB" build
  "$LAB" up 3
  eval "$("$LAB" env)"
  if [ -d molecule/default ]; then
    molecule test -s default
  fi
fi
exec .venv/bin/python -m pytest tests/unit tests/conformance tests/integration "$@"
