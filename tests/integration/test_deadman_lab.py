"""The enforce rollout's dead-man's switch on the systemd lab host (issue 16): a profile that breaks sshd cuts the
controller off, and the host reverts itself.

The profile `armada-deadman-sshd` attaches to /usr/sbin/sshd with only the base abstraction. sshd re-executes
itself for every connection, so once it is enforced every new ssh connection dies in the key exchange (measured on
the lab: `kex_exchange_identification: Connection closed by remote host`); the running listener, started before
the profile existed, stays unconfined and keeps accepting. Loaded in complain mode it changes nothing.

The scenario, through the enforce playbook only, with a 5 s soak and the shortest timeout the role accepts:
- the rollout arms the switch, switches, then loses the host: the play fails with the host unreachable, the report
  says `unknown`, and plain ssh fails too;
- the switch's timer fires on the host; ssh works again within the timeout (plus a grace for a slow guest);
- the profile is back in complain mode, its file byte-identical to the deployed one; the revert's record says
  `reverted`; no switch is armed any more.
Then the module's other two paths on the same host (lab_playbooks/deadman_confirm.yml): a switch confirmed is gone
with its payload; a switch armed and fired at once by `state=reverted` (an interrupted run's) runs its revert.

The host is left as found: the profile unloaded and removed, the armada state directories put back.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")
NAME = "armada-deadman-sshd"
FILE = "/etc/apparmor.d/" + NAME
PROFILE = """abi <abi/3.0>,
include <tunables/global>

# armada dead-man's switch test profile (tests/integration/test_deadman_lab.py): breaks every new ssh connection
profile armada-deadman-sshd /usr/sbin/sshd flags=(complain) {
  include <abstractions/base>
  /usr/sbin/sshd mr,
}
"""
SOAK = 5
TIMEOUT = SOAK + 60  # the least the role accepts (deadman.MARGIN_SECONDS)
GRACE = 90  # a slow TCG guest: python start-up, the staged compile and the reload after the timer fires
SAVED = "/root/armada-deadman-saved.tar"
STATE_DIRS = "var/lib/armada-apparmor var/backups/armada-apparmor"
LIST_TIMERS = "systemctl list-units --all --plain --no-legend --type=timer 'armada-apparmor-revert-*'"


def enforce(lab, work, host):
    """The enforce playbook on HOST; results through the journey_results callback."""
    base = os.path.join(work, "enforce")
    extra = {"apparmor_enforce_profiles": [NAME], "apparmor_enforce_programs": [], "apparmor_enforce_force": True,
             "apparmor_enforce_soak_seconds": SOAK, "apparmor_enforce_deadman_timeout": TIMEOUT,
             "apparmor_hosts": host}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
               ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
               ARMADA_JOURNEY_RESULTS=base + ".json", ANSIBLE_NOCOLOR="1", PWD=work)
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", lab.inventory, "-e", json.dumps(extra), "armada.apparmor.enforce"],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
    if not os.path.exists(base + ".json"):
        pytest.fail("enforce: no results (rc %d):\n%s" % (proc.returncode, proc.stdout[-4000:]))
    with open(base + ".json") as fh:
        out = json.load(fh)
    out["rc"], out["log"] = proc.returncode, proc.stdout
    return out


def result(out, host, task):
    found = [t["result"] for t in out["tasks"] if t["host"] == host and t["task"].endswith(task)]
    assert found, "no result of %r for %s:\n%s" % (task, host, out["log"][-3000:])
    return found[-1]


def test_host_cut_off_by_its_new_profile_reverts_itself(lab, tmp_path):
    host = lab.first("journald")
    work = str(tmp_path)
    lab.must(host, "cd / && rm -f %s && tar -cf %s --ignore-failed-read %s 2>/dev/null; test -f %s"
                    % (SAVED, SAVED, STATE_DIRS, SAVED))
    lab.remove_profile(host, NAME, FILE)
    timings = {}
    t0 = time.time()
    try:
        lab.must(host, "cat > %s <<'EOF'\n%sEOF\napparmor_parser -r %s" % (FILE, PROFILE, FILE))
        assert lab.kernel_mode(host, NAME) == "complain"
        assert lab.ssh(host, "true").returncode == 0, "complain mode must not break ssh"

        out = enforce(lab, work, host)
        lost = time.time()
        timings["rollout"] = lost - t0
        armed = result(out, host, "Dead-man's switch - arm the host-local revert to the snapshot")
        assert armed["_status"] == "ok" and armed["changed"], armed
        unit = armed["unit"]
        assert result(out, host, "Switch to enforce mode")["_status"] in ("ok", "failed", "unreachable")
        # the controller lost the host: the play fails, the host is unreachable and never reported back
        assert out["rc"] != 0, out["log"][-3000:]
        assert out["stats"][host]["unreachable"] >= 1, (out["stats"], out["log"][-3000:])
        assert not any(t["host"] == host and t["task"].startswith("Dead-man's switch - confirm")
                       and t["result"]["_status"] == "ok" for t in out["tasks"])
        with open(os.path.join(work, "apparmor-enforce-report", host + ".yml")) as fh:
            assert yaml.safe_load(fh)["status"] == "unknown"
        cut = lab.ssh(host, "true", timeout=60)
        assert cut.returncode == 255, "ssh must be broken by the enforced profile: %s %s" % (cut.stdout, cut.stderr)

        # the switch fires on the host, which becomes reachable again
        deadline = lost + TIMEOUT + GRACE
        while lab.ssh(host, "true", timeout=60).returncode != 0:
            if time.time() > deadline:
                pytest.fail("%s still unreachable %d s after the rollout lost it (timeout %d s + grace %d s)"
                            % (host, time.time() - lost, TIMEOUT, GRACE))
            time.sleep(3)
        timings["back"] = time.time() - lost
        assert lab.kernel_mode(host, NAME) == "complain"
        on_host = lab.must(host, "cat %s" % FILE)
        assert hashlib.sha256(on_host.encode()).hexdigest() == hashlib.sha256(PROFILE.encode()).hexdigest(), on_host
        record = json.loads(lab.must(host, "cat /var/lib/armada-apparmor/deadman/%s.json" % unit))
        assert record["state"] == "reverted" and record["ok"] is True, record
        assert record["restore"]["plan"]["write"] == [NAME], record
        assert record["snapshot"] == unit.rsplit("-", 1)[1]
        assert "dead-man's switch fired" in lab.must(host, "journalctl -b --no-pager -u %s.service" % unit)
        assert lab.must(host, LIST_TIMERS).strip() == ""

        # the module's confirm and fire-now paths on the same host
        snap = record["snapshot"]
        res = lab.playbook("deadman_confirm.yml", [host], {"snapshot": snap})[host]
        timings["module paths"] = time.time() - t0
        first = res["armed"]["unit"]
        assert first == unit, "a switch is named after its snapshot"
        # confirm found it armed (systemd's list) and stopped it: arming the same unit again succeeds
        assert res["confirmed"]["armed"] == [first] and res["confirmed"]["confirmed"] == [first], res["confirmed"]
        assert res["confirmed"]["fired"] == [], res["confirmed"]
        assert res["rearmed"]["changed"] and res["rearmed"]["armed"] == [], res["rearmed"]
        # armed again, then fired at once: reverted (nothing to change: the profile is in complain mode already)
        assert res["reverted"]["armed"] == [res["rearmed"]["unit"]], res["reverted"]
        fired = res["reverted"]["fired"]
        assert [f["unit"] for f in fired] == [first] and fired[0]["state"] == "reverted" and fired[0]["ok"], fired
        assert not res["reverted"]["changed"], res["reverted"]
        assert [f for f in res["after_revert"] if ".timer" in f or f.endswith(".zip")] == [], res["after_revert"]
        # the records: the first firing's, kept aside when the same snapshot was armed again, and this one's
        records = sorted(f for f in res["after_revert"] if f.endswith(".json"))
        assert len(records) == 2 and first + ".json" in records, records
        assert lab.kernel_mode(host, NAME) == "complain"
    finally:
        # a failed assertion above may have left the host cut off: wait for the switch before cleaning up
        deadline = time.time() + TIMEOUT + GRACE
        while lab.ssh(host, "true", timeout=60).returncode != 0 and time.time() < deadline:
            time.sleep(3)
        lab.must(host, "for u in $(%s | cut -d' ' -f1); do systemctl stop $u; done; true" % LIST_TIMERS)
        lab.remove_profile(host, NAME, FILE)
        lab.must(host, "cd / && rm -rf %s && if [ -f %s ]; then tar -xpf %s && rm -f %s; fi"
                        % (STATE_DIRS, SAVED, SAVED, SAVED))
        assert lab.kernel_mode(host, NAME) is None
        shutil.rmtree(os.path.join(work, "apparmor-enforce-report"), ignore_errors=True)
        timings["total"] = time.time() - t0
        print("dead-man's switch test timings (s): %s" % {k: round(v) for k, v in timings.items()})
