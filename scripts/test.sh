#!/usr/bin/env bash
# The body of `make test` after lint: boot the qemu lab once, run molecule against it, then the whole
# pytest suite (unit, conformance, integration), so the run ends with pytest's summary line.
# The lab is always shut down: by the trap on failure or interrupt, and by the lab's own watchdog
# (--owner) should this script be killed outright.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
LAB=tests/lab/lab
# trixie: a Debian 13 host (kernel 6.12, AppArmor 4.1) for tests/integration/test_trixie_lab.py only. Not booted by
# default: its scenario takes ~9 min plus a 4th guest on two cores, and CI has 90 minutes (docs/lab.md, "Debian 13").
# ARMADA_LAB_FLAVOURS=auditd,kernlog,journald,trixie make test   runs it too.
FLAVOURS=${ARMADA_LAB_FLAVOURS:-auditd,kernlog,journald}
trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
"$LAB" build
if [[ ,$FLAVOURS, == *,trixie,* ]]; then "$LAB" build --suite trixie; fi
"$LAB" up "$(tr ',' '\n' <<<"$FLAVOURS" | wc -l)" --flavours "$FLAVOURS" --owner $$
eval "$("$LAB" env)"
molecule test -s default
rc=0
.venv/bin/python -m pytest tests/unit tests/conformance tests/integration "$@" || rc=$?
exit $rc
