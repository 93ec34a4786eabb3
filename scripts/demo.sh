#!/usr/bin/env bash
# `make demo` (after `make setup`): build the qemu lab, boot 3 hosts, run the three journeys through the
# playbooks, print a short summary, and always take the lab down (trap), also on failure or Ctrl-C.
#
#   1. profile_fleet (apparmor_profile_fleet_passes: 2)  learn the lab workload in complain mode on every host until converged
#   2. an access no answer covers -> pending file; answered -> rule; again -> nothing changes
#   3. enforce: canary first, then batches, soak with health checks
#   4. something the workload never did -> DENIED
#   5. restore the snapshot taken before the switch -> files identical (sha256), complain mode
#
# Output of the playbooks goes to $DEMO_DIR/logs/*.log; the summary names every place files were written.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_HOST_KEY_CHECKING=false ANSIBLE_NOCOLOR=1
LAB="$ROOT/tests/lab/lab"
DEMO_DIR="${DEMO_DIR:-$ROOT/build/demo}"
PROGRAM=/usr/local/bin/armada-workload
PROFILE=/etc/apparmor.d/usr.local.bin.armada-workload
SECRET=/var/tmp/armada-demo-secret.txt

trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
play() {  # play NAME LOG [ansible-playbook args...]
  local name=$1 log=$2; shift 2
  printf '   ansible-playbook armada.apparmor.%s %s  (log: %s)\n' "$name" "$*" "logs/$log.log"
  if ! (cd "$DEMO_DIR" && PWD="$DEMO_DIR" ansible-playbook -i inventory "armada.apparmor.$name" "$@" \
        >"$DEMO_DIR/logs/$log.log" 2>&1); then
    echo "   FAILED - last lines of logs/$log.log:" >&2
    tail -25 "$DEMO_DIR/logs/$log.log" | sed 's/^/   | /' >&2
    return 1
  fi
}
on() { "$LAB" ssh "$1" "sudo -n sh -c $(printf '%q' "$2")"; }

say "lab: build (cached) and boot 3 hosts"
"$LAB" build >/dev/null
"$LAB" up 3 --owner $$ | tail -1
eval "$("$LAB" env)"
HOSTS=$(python3 -c 'import sys,yaml; print(" ".join(sorted(yaml.safe_load(open(sys.argv[1]))["all"]["hosts"])))' \
        "$ARMADA_LAB_INVENTORY")

rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR/logs" "$DEMO_DIR/inventory"
cp "$ARMADA_LAB_INVENTORY" "$DEMO_DIR/inventory/hosts.yml"
cp -r "$ROOT/playbooks/inventory.example/group_vars" "$DEMO_DIR/inventory/"
for h in $HOSTS; do on "$h" "printf 'not for the workload\n' > $SECRET"; done

say "1. profile the fleet: learn in complain mode, exercise, update - 2 passes"
play profile_fleet 1-profile_fleet -e apparmor_profile_fleet_passes=2

say "2. an access no answer covers stays pending; answer it; update again; and again (no change)"
for h in $HOSTS; do on "$h" "$PROGRAM --once --read-extra /etc/armada-workload/extra.txt >/dev/null"; done
play profile_fleet 2a-update -e apparmor_learn=false
# the newest review round (pass ids sort like the passes ran), saved under its own name so rounds add up
round=$(ls "$DEMO_DIR"/apparmor-pending-*.yml | sort | tail -n 1)
sed -n '/^apparmor_answers_pending_/,$p' "$round" | head -12 | sed 's/^/   | /'
sed 's/answer: pending/answer: allow/' "$round" > "$DEMO_DIR/inventory/group_vars/all/$(basename "$round")"
play profile_fleet 2b-update-answered -e apparmor_learn=false
play profile_fleet 2c-update-again -e apparmor_learn=false
grep -E '^(lab[0-9]+) +:' "$DEMO_DIR/logs/2c-update-again.log" | sed 's/^/   recap: /'

say "3. roll out enforce mode: canary first, then batches, soak 10 s each"
declare -A BEFORE
for h in $HOSTS; do BEFORE[$h]=$(on "$h" "sha256sum $PROFILE" | cut -c1-16); done
play enforce 3-enforce -e apparmor_enforce_soak_seconds=10
for h in $HOSTS; do
  on "$h" "$PROGRAM --once >/dev/null && echo '   $h: workload ran fine in enforce mode'"
done

say "4. something the workload never did is DENIED"
for h in $HOSTS; do
  if on "$h" "$PROGRAM --once --read-extra $SECRET" >/dev/null 2>&1; then
    echo "   $h: UNEXPECTED: reading $SECRET was allowed"
  else
    echo "   $h: reading $SECRET refused (Permission denied)"
  fi
done

say "5. restore the snapshot taken before the switch"
play restore 5-restore
play status 6-status

say "summary"
python3 - "$DEMO_DIR" "$ARMADA_LAB_INVENTORY" <<'EOF'
import glob, os, re, sys, yaml
demo, inv = sys.argv[1], sys.argv[2]


class Unsafe(yaml.SafeLoader):
    """The pending file's entries are !unsafe mappings (Ansible's tag): read them as plain mappings."""


Unsafe.add_constructor("!unsafe", lambda loader, node: loader.construct_mapping(node))
log = open(os.path.join(demo, "logs", "6-status.log")).read()
rows = re.findall(r'^\s*"(lab\d.*)",?$', log, re.M)
header = re.search(r'^\s*"(host\s+profile.*)",?$', log, re.M)
print("fleet (armada.apparmor.status):")
if header:
    print("   " + header.group(1))
for r in rows:
    print("   " + r)
prof = sorted(glob.glob(os.path.join(demo, "profiles", "*")))
for p in prof:
    rules = [l.strip() for l in open(p) if l.strip().endswith(",") and not l.lstrip().startswith(("#", "abi", "include"))]
    print("rules learned in %s: %d" % (os.path.basename(p), len(rules)))
    for l in rules:
        print("   " + l)
newest = sorted(glob.glob(os.path.join(demo, "apparmor-pending-*.yml")))[-1]
pending = yaml.load(open(newest), Loader=Unsafe) or {}
print("pending answers: %d (%s)" % (sum(len(v or []) for v in pending.values()), newest))
print("fetched profiles: %s" % os.path.join(demo, "profiles"))
print("enforce reports: %s" % os.path.join(demo, "apparmor-enforce-report"))
for f in sorted(glob.glob(os.path.join(demo, "apparmor-enforce-report", "*.yml"))):
    r = yaml.safe_load(open(f))
    print("   %s: %s (snapshot %s)" % (r["host"], r["status"], r.get("outcome", {}).get("snapshot", "-")))
print("backups: /var/backups/armada-apparmor on each host (restored: latest = the pre-enforce snapshot)")
print("playbook logs: %s" % os.path.join(demo, "logs"))
EOF
for h in $HOSTS; do
  after=$(on "$h" "sha256sum $PROFILE" | cut -c1-16)
  printf '   %s: profile sha256 %s... after restore, %s... before the switch to enforce\n' "$h" "$after" "${BEFORE[$h]}"
done
say "done - the lab is taken down now"
