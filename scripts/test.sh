#!/usr/bin/env bash
# The body of `make test` after setup: boot two qemu labs of the same three flavours, run molecule against the
# first, then the pytest suite split in two halves that run at the same time, one per lab: the guests are TCG
# (one host core each, mostly one busy guest per lab at a time), so two labs use both cores of the 2-core CI
# machine and the lab tests take about half the time (CI has 90 minutes; docs/lab.md).
#   checks (`make checks`: lint, engine tests on the oldest Python, the other ansible-cores) start first and run
#          beside everything else: they are mostly single-threaded and the labs leave CPU free while guests
#          boot, soak or wait; run alone before the labs they cost ~12 minutes of CI's 90
#   half A (lab A): unit, conformance, and every integration test not listed in HALF_B
#   half B (lab B): HALF_B
# The output of half A comes first, then half B's, then the checks'; the run fails when any of them fails.
# The labs are always shut down: by the trap on failure or interrupt, and by the lab's own watchdog
# (--owner) should this script be killed outright.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
LAB=$PWD/tests/lab/lab
CACHE=${ARMADA_LAB_CACHE:-$HOME/.cache/armada-lab}
RUN_A=${ARMADA_LAB_RUN:-$CACHE/run}
RUN_B=$RUN_A-b
# trixie: a Debian 13 host (kernel 6.12, AppArmor 4.1) for tests/integration/test_trixie_lab.py only. Not booted by
# default: its scenario takes ~9 min plus a 4th guest on two cores, and CI has 90 minutes (docs/lab.md, "Debian 13").
# ARMADA_LAB_FLAVOURS=auditd,kernlog,journald,trixie make test   runs it too (on lab A).
FLAVOURS=${ARMADA_LAB_FLAVOURS:-auditd,kernlog,journald}
HALF_B=(tests/integration/test_forged_lab.py tests/integration/test_hostile_fetch_lab.py
        tests/integration/test_journeys.py tests/integration/test_kill_lab.py tests/integration/test_report_lab.py
        tests/integration/test_services_lab.py)
LOG_B=$(mktemp /tmp/armada-test-half-b.XXXXXX)
LOG_C=$(mktemp /tmp/armada-test-checks.XXXXXX)
pid_c=
down() { ARMADA_LAB_RUN=$RUN_B "$LAB" down >/dev/null 2>&1 || true; ARMADA_LAB_RUN=$RUN_A "$LAB" down >/dev/null 2>&1 || true; }
trap '[ -n "$pid_c" ] && kill -- "-$pid_c" 2>/dev/null; down; rm -f "$LOG_B" "$LOG_C"' EXIT
trap 'exit 130' INT TERM
setsid make --no-print-directory checks >"$LOG_C" 2>&1 &   # its own process group: the trap stops all of it
pid_c=$!
"$LAB" build
if [[ ,$FLAVOURS, == *,trixie,* ]]; then "$LAB" build --suite trixie; fi
ARMADA_LAB_RUN=$RUN_A "$LAB" up "$(tr ',' '\n' <<<"$FLAVOURS" | wc -l)" --flavours "$FLAVOURS" --owner $$
ARMADA_LAB_RUN=$RUN_B "$LAB" up 3 --flavours auditd,kernlog,journald --owner $$
ENV_B=$(ARMADA_LAB_RUN=$RUN_B "$LAB" env)
eval "$(ARMADA_LAB_RUN=$RUN_A "$LAB" env)"
molecule test -s default
( eval "$ENV_B"; exec .venv/bin/python -m pytest -p no:cacheprovider --durations=15 "${HALF_B[@]}" "$@" ) >"$LOG_B" 2>&1 &
pid_b=$!
rc=0
ignore=()
for f in "${HALF_B[@]}"; do ignore+=("--ignore=$f"); done
.venv/bin/python -m pytest --durations=25 tests/unit tests/conformance tests/integration "${ignore[@]}" "$@" || rc=$?
rc_b=0
wait "$pid_b" || rc_b=$?
echo "== half B (lab B: ${HALF_B[*]})"
cat "$LOG_B"
rc_c=0
wait "$pid_c" || rc_c=$?
pid_c=
echo "== checks (make checks: lint, unit-oldest, core-matrix)"
cat "$LOG_C"
for r in "$rc" "$rc_b" "$rc_c"; do [ "$r" -ne 0 ] && exit "$r"; done
exit 0
