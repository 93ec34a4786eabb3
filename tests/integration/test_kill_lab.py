"""A lab host killed in the middle of a rollout batch (issue 8): every host ends in a known state.

The fault is made for real: the qemu of one host of the second batch gets SIGKILL (`tests/lab/lab kill`, a
power cut) while that host is soaking under `armada.apparmor.enforce`, detected by polling (the host's kernel
lists the test profile as enforced AND the rollout printed a soak round of that host), not by a fixed delay.

The rollout: a small profile of our own (`armada-killtest`, deployed in complain mode with
`armada.apparmor.deploy`) on every lab host, `apparmor_enforce_serial: [1, 2]`: batch 1 = the canary,
batch 2 = the next two hosts (one is killed), batch 3 = a host that only exists in the inventory (a loopback
port nobody listens on: ansible would try it - and the recap would name it - if the rollout went on; the lab
has three guests, so the later batch cannot be a real one).

What a user must be able to rely on, asserted against what the kernel and the controller's files show:
- the play fails (rc 4) and its recap names the killed host UNREACHABLE;
- the canary is enforced (kernel) and its report says so;
- the other host of the killed host's batch finishes its soak and is enforced (kernel + report);
- the report directory has a record for every host the rollout reached; the killed host's is `unknown`,
  never `enforced`; the printed rollout report says `unknown` for it too;
- the later batch is never started (ansible does not count unreachable hosts in max_fail_percentage: the
  role stops the play itself);
- after `lab restart` (the host comes back FRESH: the guests run from an initramfs, as a replaced host
  would), deploying again and re-running the rollout completes it with every host enforced and reported.

The killed host is booted again in `finally` whatever happens, and the test removes its profile, unloads it
and puts back each host's armada state directories (cursors, snapshots) as it found them; the restarted
host stays in the image's state. conftest.py orders this test right before the journeys.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")
NAME = "armada-killtest"
FILE = "/etc/apparmor.d/" + NAME
PROFILE = """abi <abi/3.0>,
include <tunables/global>

# armada power-cut test profile (tests/integration/test_kill_lab.py)
profile armada-killtest /usr/local/bin/armada-killtest {
  include <abstractions/base>
  /etc/hostname r,
}
"""
SOAK = 41  # seconds: long enough (two rounds of the soak) for the victim to be caught soaking
SAVED = "/root/armada-killtest-saved.tar"
STATE_DIRS = "var/lib/armada-apparmor var/backups/armada-apparmor"
# tasks of the enforce playbook's first play (it empties the report directory, on the controller, for all hosts)
START = ("Empty the report directory", "arg spec 'start_report'")


def free_closed_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Rollout:
    """ansible-playbook runs from a controller work directory, results through the journey_results callback."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.runs = 0

    def cmd(self, name, extra, inventories):
        self.runs += 1
        base = os.path.join(self.work, "%02d-%s" % (self.runs, name))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                   ARMADA_JOURNEY_RESULTS=base + ".json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="5", PWD=self.work)
        argv = [ANSIBLE_PLAYBOOK]
        for inv in inventories or [self.lab.inventory]:
            argv += ["-i", inv]
        argv += ["-e", json.dumps(extra), "armada.apparmor." + name]
        return argv, env, base

    def start(self, name, extra, inventories=None):
        argv, env, base = self.cmd(name, extra, inventories)
        with open(base + ".log", "w") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(argv, cwd=self.work, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        return proc, base

    def finish(self, proc, base, timeout=1500):
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with open(base + ".log") as fh:
            text = fh.read()
        if not os.path.exists(base + ".json"):
            pytest.fail("%s: no results (rc %s):\n%s" % (base, rc, text[-4000:]))
        with open(base + ".json") as fh:
            out = json.load(fh)
        out["rc"], out["log"] = rc, text
        return out

    def play(self, name, extra, inventories=None, expect_rc=0):
        out = self.finish(*self.start(name, extra, inventories))
        if out["rc"] != expect_rc:
            pytest.fail("%s: rc %d, expected %d:\n%s" % (name, out["rc"], expect_rc, out["log"][-5000:]))
        return out

    def report(self, host):
        path = os.path.join(self.work, "apparmor-enforce-report", host + ".yml")
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return yaml.safe_load(fh)

    def reports(self):
        return sorted(f[:-4] for f in os.listdir(os.path.join(self.work, "apparmor-enforce-report"))
                      if f.endswith(".yml"))


def results(out, task):
    """{host: result} of the task whose name ends with TASK (the latest result per host wins)."""
    return {t["host"]: t["result"] for t in out["tasks"] if t["task"].endswith(task)}


def soaking(lab, host, base):
    """The host is inside the soak of its batch: the kernel enforces the test profile and the rollout printed
    a soak round of it (the soak waits on the controller, in rounds, between reads of the host's records)."""
    with open(base + ".log") as fh:
        printed = re.search(r'ok: \[%s\] => \{\s*"msg": "soak round \d+/' % re.escape(host), fh.read())
    if not printed:
        return False
    res = lab.ssh(host, "grep -qx '%s (enforce)' /sys/kernel/security/apparmor/profiles" % NAME, timeout=60)
    return res.returncode == 0


def test_host_killed_mid_batch_leaves_every_host_in_a_known_state(lab, tmp_path):
    hosts = list(lab.hosts)  # inventory order = rollout order after the canary
    canary = lab.first("canary")
    order = [canary] + [h for h in hosts if h != canary]
    if len(order) < 3:
        pytest.fail("the power-cut test needs a lab of 3 hosts (canary + a batch of 2): `tests/lab/lab up 3`")
    victim, other = order[1], order[2]
    later = order[3:] + ["ghost"]
    work = str(tmp_path)
    # a second inventory source for the first rollout: the ghost host, and the soak per host (host vars beat
    # the role default): short for the canary, long enough for the victim's batch to be caught soaking
    ghost_inv = os.path.join(work, "rollout.yml")
    soak = dict({h: {"apparmor_enforce_soak_seconds": SOAK} for h in order},
                **{canary: {"apparmor_enforce_soak_seconds": 5}})
    with open(ghost_inv, "w") as fh:
        yaml.safe_dump({"all": {"hosts": dict(soak, ghost={"ansible_host": "127.0.0.1",
                                                            "ansible_port": free_closed_port()})}}, fh)
    r = Rollout(lab, work)
    deploy = {"apparmor_deploy_src_dir": "", "apparmor_deploy_mode": "complain", "apparmor_hosts": "lab",
              "apparmor_deploy_profiles": [{"path": NAME, "content": PROFILE}]}
    # apparmor_hosts: the bookworm hosts and the ghost, not a trixie host the lab may also hold
    enforce = {"apparmor_enforce_profiles": [NAME], "apparmor_enforce_programs": [], "apparmor_enforce_force": True,
               "apparmor_enforce_serial": [1, 2], "apparmor_hosts": "lab:ghost"}

    for h in order:  # start clean (an interrupted run may have left the profile), keep the state dirs
        lab.remove_profile(h, NAME, FILE)
        lab.must(h, "cd / && rm -f %s && tar -cf %s --ignore-failed-read %s 2>/dev/null; test -f %s"
                     % (SAVED, SAVED, STATE_DIRS, SAVED))
    t0 = time.time()
    timings = {}
    try:
        r.play("deploy", deploy)
        for h in order:
            assert lab.kernel_mode(h, NAME) == "complain", h
        timings["deploy"] = time.time() - t0

        # -- the rollout, and the power cut while the victim's batch soaks
        proc, base = r.start("enforce", enforce, inventories=[lab.inventory, ghost_inv])
        deadline = time.time() + 1200
        while not soaking(lab, victim, base):
            if proc.poll() is not None:
                out = r.finish(proc, base)
                pytest.fail("the rollout ended before %s soaked (rc %s):\n%s" % (victim, out["rc"], out["log"][-4000:]))
            if time.time() > deadline:
                proc.kill()
                pytest.fail("%s never reached its soak within 1200 s" % victim)
            time.sleep(1)
        assert soaking(lab, other, base) or lab.kernel_mode(other, NAME) == "enforce", \
            "%s is in the same batch: switched and soaking when %s is" % (other, victim)
        lab.kill(victim)
        timings["kill"] = time.time() - t0
        assert not lab.alive(victim)
        out = r.finish(proc, base)
        timings["rollout"] = time.time() - t0

        # the play fails and names the killed host unreachable, in the soak
        assert out["rc"] == 4, (out["rc"], out["log"][-3000:])
        assert out["stats"][victim]["unreachable"] == 1, out["stats"]
        assert "UNREACHABLE" in results(out, "Soak round - read the DENIED records seen so far (not committed)"
                                        )[victim]["_status"].upper()
        assert "fatal: [%s]: UNREACHABLE!" % victim in out["log"]
        # the canary is enforced and its report says so
        assert lab.kernel_mode(canary, NAME) == "enforce"
        assert r.report(canary)["status"] == "enforced", r.report(canary)
        # the other host of the batch finished its soak, found no denial, and is enforced
        assert results(out, "Soak - run the health checks again")[other]["_status"] == "ok"
        assert results(out, "No new denial from a trusted source")[other]["_status"] == "ok"
        assert lab.kernel_mode(other, NAME) == "enforce"
        assert r.report(other)["status"] == "enforced", r.report(other)
        assert out["stats"][other]["failures"] == 0 and out["stats"][other]["unreachable"] == 0
        # a record for every host the rollout reached; the killed one unknown, never enforced
        assert r.reports() == sorted([canary, victim, other]), r.reports()
        rep = r.report(victim)
        assert rep["status"] == "unknown" and rep["outcome"]["status"] == "unknown", rep
        assert "never reported back" in rep["outcome"]["reason"], rep
        printed = results(out, "Rollout report so far")
        lines = [line for res in printed.values() for line in res["msg"]]
        assert any(line.startswith("%s: unknown" % victim) for line in lines), lines
        assert not any(line.startswith("%s: enforced" % victim) for line in lines), lines
        # the later batch never started: no task of the rollout play, never contacted, no report
        for h in later:
            ran = [t["task"] for t in out["tasks"] if t["host"] == h and not any(s in t["task"] for s in START)]
            assert ran == [], (h, ran)
            assert out["stats"].get(h, {}).get("unreachable", 0) == 0, (h, out["stats"])
            assert r.report(h) is None, h

        # -- the host comes back (fresh), is provisioned again, and the rollout is run again
        lab.restart(victim)
        timings["restart"] = time.time() - t0
        assert lab.must(victim, "test -e %s && echo present || echo absent" % FILE).strip() == "absent", \
            "a restarted lab host boots from the image: the profile deployed before the kill is gone"
        r.play("deploy", dict(deploy, apparmor_hosts=victim))
        assert lab.kernel_mode(victim, NAME) == "complain"
        out = r.play("enforce", dict(enforce, apparmor_enforce_soak_seconds=5))
        timings["rerun"] = time.time() - t0
        assert r.reports() == sorted(order), r.reports()
        status = {h: r.report(h)["status"] for h in order}
        assert status == dict({h: "unchanged" for h in order}, **{victim: "enforced"}), status
        for h in order:
            assert lab.kernel_mode(h, NAME) == "enforce", h
        switched = {h for h, res in results(out, "Switch to enforce mode").items() if res["_status"] != "skipped"}
        assert switched == {victim}, switched
    finally:
        if not lab.alive(victim):
            lab.restart(victim)
        for h in order:
            lab.remove_profile(h, NAME, FILE)
            lab.must(h, "cd / && rm -rf %s && if [ -f %s ]; then tar -xpf %s && rm -f %s; fi"
                         % (STATE_DIRS, SAVED, SAVED, SAVED))
            assert lab.kernel_mode(h, NAME) is None, h
        shutil.rmtree(os.path.join(work, "apparmor-enforce-report"), ignore_errors=True)
        timings["total"] = time.time() - t0
        print("power-cut test timings (s since start): %s" % {k: round(v) for k, v in timings.items()})
