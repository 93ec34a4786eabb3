"""A packaged daemon running before `learn` gets its profile attached; convergence needs evidence (issue 16).

On the systemd-booted (journald flavour) lab host, Debian's nginx (no AppArmor profile shipped) is started by
systemd at boot, so it runs unconfined when learning starts. Through the playbooks only:

1. profile_fleet (2 passes) with apparmor_programs = nginx with `service: nginx`, a copy of sleep started
   before learn and listed WITHOUT a service, and a program that never runs. learn restarts nginx (once) and
   its processes are then confined by its complain-mode profile (read from /proc on the host, and shown by the
   status playbook: confined > 0, unconfined 0); the exercise is real HTTP (a page and a missing page); the
   sleep copy is reported "not attached" and does not converge; the program that never ran is "never
   exercised" and does not converge although its passes added nothing.
2. enforce skips the two with those reasons.

Expectations come from AppArmor's attach-at-exec rule and from what the test started, read on the host from
/proc (never from the code under test). Everything is put back: profiles unloaded and removed, the state and
backup directories removed, the sleep copy killed, nginx restarted unconfined.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml
from chained_steps import step_chain

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(HERE, "journey_callback")
NGINX = "/usr/sbin/nginx"
IDLE = "/usr/local/bin/armada-attach-idle"
NEVER = "/usr/local/bin/armada-attach-never"
STATE = "/var/lib/armada-attach"
BACKUPS = "/var/backups/armada-attach"
FILES = ["usr.sbin.nginx", "usr.local.bin.armada-attach-idle", "usr.local.bin.armada-attach-never"]
EXTRA = {
    "apparmor_programs": [{"path": NGINX, "service": "nginx"}, IDLE, NEVER],
    # a page and a missing one (404); -f would fail on the 404, so the code is checked instead
    "apparmor_learn_exercise": {NGINX: "curl -fsS -o /dev/null http://127.0.0.1/ && test \"$(curl -s -o /dev/null "
                                 "-w '%{http_code}' http://127.0.0.1/armada-missing)\" = 404"},
    "apparmor_state_dir": STATE, "apparmor_backup_dir": BACKUPS,
    "apparmor_enforce_serial": [1],
}

step = step_chain("attach")


def labels(lab, host, exe):
    """The AppArmor label of every running process of EXE, read from /proc on the host."""
    out = lab.ssh(host, "for p in $(pidof %s); do cat /proc/$p/attr/current; echo; done" % exe).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


class Run:
    def __init__(self, lab, host):
        self.lab, self.host = lab, host
        self.work = tempfile.mkdtemp(prefix="armada-attach-lab-")

    def must(self, command):
        res = self.lab.ssh(self.host, command)
        assert res.returncode == 0, "`%s` failed (%d): %s %s" % (command, res.returncode, res.stdout, res.stderr)
        return res.stdout

    def play(self, name, extra=None):
        """armada.apparmor.NAME on the host; {tasks, stats, log} from the test callback."""
        results = os.path.join(self.work, name + ".json")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                   ARMADA_JOURNEY_RESULTS=results, ANSIBLE_NOCOLOR="1", PWD=self.work)
        cmd = [ANSIBLE_PLAYBOOK, "-i", self.lab.inventory, "--limit", self.host, "armada.apparmor." + name,
               "-e", json.dumps(dict(EXTRA, **(extra or {})))]
        log = os.path.join(self.work, name + ".log")  # readable while the play runs
        with open(log, "w") as fh:
            res = subprocess.run(cmd, cwd=self.work, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                 stderr=subprocess.STDOUT, timeout=3600, check=False)
        with open(log) as fh:
            text = fh.read()
        assert res.returncode == 0, text[-6000:]
        with open(results) as fh:
            out = json.load(fh)
        out["log"] = text
        return out

    def task(self, out, name):
        found = [t["result"] for t in out["tasks"] if t["task"].endswith(name) and t["host"] == self.host]
        assert found, "no task %r in:\n%s" % (name, out["log"][-4000:])
        return found[-1]

    def record(self):
        return json.loads(self.must("cat %s/convergence.json" % STATE))["profiles"]


@pytest.fixture(scope="module")
def run(lab):
    hosts = [h for h, hv in sorted(lab.hosts.items()) if hv.get("armada_lab_flavour") == "journald"]
    if not hosts:
        pytest.fail("the attach test needs a systemd-booted lab host (`tests/lab/lab up 1 --flavours journald`)")
    r = Run(lab, hosts[0])
    r.must("systemctl is-active nginx && cp /bin/sleep %s && cp /bin/true %s && "
           "(setsid %s 3600 </dev/null >/dev/null 2>&1 &)" % (IDLE, NEVER, IDLE))
    yield r
    lab.ssh(r.host, "kill $(pidof %s); cd /etc/apparmor.d && for f in %s; do "
                    "[ -e $f ] && apparmor_parser -R $f; rm -f $f local/$f; done; rm -f %s %s; rm -rf %s %s; "
                    "systemctl restart nginx; true" % (IDLE, " ".join(FILES), IDLE, NEVER, STATE, BACKUPS))
    assert labels(lab, r.host, NGINX) and set(labels(lab, r.host, NGINX)) == {"unconfined"}
    shutil.rmtree(r.work, ignore_errors=True)


@step("1")
def test_learn_restarts_the_running_daemon_and_only_evidence_converges(run):
    before = labels(run.lab, run.host, NGINX)
    assert len(before) >= 2 and set(before) == {"unconfined"}, before  # master + worker(s), started at boot
    assert labels(run.lab, run.host, IDLE) == ["unconfined"]

    out = run.play("profile_fleet", {"apparmor_profile_fleet_passes": 2})
    restart = run.task(out, "Restart the services whose program runs unconfined, so its profile attaches")
    assert restart["changed"] and [r["item"] for r in restart["results"]] == ["nginx"], restart
    said = run.task(out, "Programs not attached - their processes run unconfined and no service is named to restart")
    assert IDLE in said["msg"] and NGINX not in said["msg"] and NEVER not in said["msg"], said

    after = labels(run.lab, run.host, NGINX)
    assert len(after) >= 2 and set(after) == {NGINX + " (complain)"}, after
    assert labels(run.lab, run.host, IDLE) == ["unconfined"]

    rec = run.record()
    assert rec[NGINX]["exercised"] is True and rec[NGINX]["unconfined"] == 0, rec[NGINX]
    assert rec[NGINX]["confined"] == len(after), rec[NGINX]
    assert (rec[IDLE]["unconfined"], rec[IDLE]["converged"]) == (1, False), rec[IDLE]
    never = rec[NEVER]
    assert (never["passes"], never["quiet_passes"]) == (2, 2), never  # quiet: its passes added nothing
    assert (never["exercised"], never["converged"]) == (False, False), never

    status = run.play("status")
    table = "\n".join(run.task(status, "Fleet table")["msg"])
    rows = {line.split()[1]: line.split() for line in table.splitlines()[1:] if line.split()}
    assert rows[NGINX][-2:] == ["%d/0" % len(after), "-"], table   # processes, drift
    assert rows[IDLE][-2:] == ["0/1", "-"], table
    with open(os.path.join(run.work, "apparmor-report", "status", "report.json")) as fh:
        report = json.load(fh)
    procs = {p["profile"]: p["processes"] for h in report["hosts"] for p in h["profiles"]}
    assert procs[NGINX] == {"confined": len(after), "unconfined": 0}, procs
    assert procs[IDLE] == {"confined": 0, "unconfined": 1}, procs


@step("2")
def test_enforce_skips_what_has_no_evidence(run):
    run.play("enforce", {"apparmor_enforce_soak_seconds": 1})
    with open(os.path.join(run.work, "apparmor-enforce-report", run.host + ".yml")) as fh:
        report = yaml.safe_load(fh)
    plan = {p["profile"]: p for p in report["profiles"]}
    assert plan[NEVER]["action"] == "skip" and plan[NEVER]["reason"].startswith("never exercised: "), plan[NEVER]
    assert plan[IDLE]["action"] == "skip" and plan[IDLE]["reason"].startswith("not attached: 1 process(es)"), \
        plan[IDLE]
    # nginx has evidence: it is held back by its unanswered accesses, not by the evidence check
    assert plan[NGINX]["action"] == "skip" and re.match(r"pending answers: [1-9]", plan[NGINX]["reason"]), \
        plan[NGINX]
    modes = run.must("cat /sys/kernel/security/apparmor/profiles")
    for name in (NGINX, IDLE, NEVER):
        assert "%s (complain)" % name in modes, modes
