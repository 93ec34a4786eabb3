"""The three journeys end to end on the 3-host qemu lab, through the playbooks users run.

Steps (issue 7), in the order they run here:
  1. learn the workload on all hosts in complain mode and exercise it, passing until converged;
  2. update with answers that leave one access pending; answer it; update again (changed); again (not
     changed), also after resetting the cursor;
  5. (run before 3, so that 3 leaves the fleet enforced) a canary that produces a new denial during the soak
     is rolled back - previous profile (sha256) and complain mode in the kernel - the rollout stops and the
     later batches are untouched;
  3. roll out enforce with a canary; the workload works and the kernel logs 0 DENIED records for it;
  4. something the workload never did (reading a file outside its profile) is DENIED;
  6. restore the backup taken before the switch and compare sha256 with the original files;
  7. aa-logprof's defaults (issue 17), on the restored complain-mode fleet: an update with `default: allow`
     allows what complain mode logged, keeps the enforce-mode denials of steps 5 and 4 pending as possible
     intrusions, and offers for an exec of a shell only the modes logprof.conf's [qualifiers] allow.

Expectations come from what the workload does (tests/lab/workload/armada-workload: config read, log append,
state file rename, helper exec, net_bind_service, inet stream) and from AppArmor's behaviour (complain mode
logs ALLOWED, enforce mode DENIED), never from the output of the code under test. Every step depends on the
previous ones; after a failure the later steps are skipped with the reason.
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess

import pytest
import yaml
from chained_steps import step_chain

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
EXAMPLE = os.path.join(ROOT, "playbooks", "inventory.example")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")
PROGRAM = "/usr/local/bin/armada-workload"
PROFILE_FILE = "/etc/apparmor.d/usr.local.bin.armada-workload"
STATE = "/var/lib/armada-apparmor"
SECRET = "/var/tmp/armada-journey-secret.txt"
EXTRA = "/etc/armada-workload/extra.txt"
SHELL_CONF = "/etc/armada-workload/shell.conf"  # a config whose helper is a shell (step 7)

step = step_chain("journey")


class Journey:
    """A working directory on the controller (inventory, fetched profiles, pending file, reports)."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.inv = os.path.join(work, "inventory")
        os.makedirs(self.inv)
        shutil.copy(lab.inventory, os.path.join(self.inv, "hosts.yml"))
        shutil.copytree(os.path.join(EXAMPLE, "group_vars"), os.path.join(self.inv, "group_vars"))
        self.hosts = sorted(lab.hosts)
        self.canary = lab.groups["canary"]
        self.rest = [h for h in self.hosts if h not in self.canary]
        self.runs = 0
        os.makedirs(os.path.join(work, "logs"))

    def play(self, name, extra=None, expect_rc=0):
        """Run playbooks/NAME.yml by its collection name; return {tasks, stats, rc, log}.

        Results come from the test callback tests/integration/journey_callback (ansible-core 2.19 has no json
        stdout callback); the human-readable output is kept in WORK/logs/ for reading after a failure.
        """
        self.runs += 1
        log = os.path.join(self.work, "logs", "%02d-%s.log" % (self.runs, name))
        results = log[:-4] + ".json"
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                   ARMADA_JOURNEY_RESULTS=results, ANSIBLE_NOCOLOR="1", PWD=self.work)
        # --limit: the lab may hold hosts of another suite (a trixie host), which this journey is not about
        cmd = [ANSIBLE_PLAYBOOK, "-i", self.inv, "--limit", ",".join(self.hosts), "armada.apparmor." + name]
        if extra:
            cmd += ["-e", json.dumps(extra)]
        with open(log, "w") as fh:
            res = subprocess.run(cmd, cwd=self.work, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                 stderr=subprocess.STDOUT, timeout=3600, check=False)
        with open(log) as fh:
            text = fh.read()
        if not os.path.exists(results):
            pytest.fail("%s: no results (rc %d):\n%s" % (name, res.returncode, text[-4000:]))
        with open(results) as fh:
            out = json.load(fh)
        out["rc"] = res.returncode
        out["log"] = text
        if expect_rc is not None and res.returncode != expect_rc:
            pytest.fail("%s: rc %d, expected %d:\n%s\n%s" % (name, res.returncode, expect_rc, _failures(out),
                                                            text[-3000:]))
        return out

    def sh(self, host, command):
        res = self.lab.ssh(host, command)
        return res.returncode, res.stdout

    def must(self, host, command):
        rc, out = self.sh(host, command)
        assert rc == 0, "%s: `%s` failed (%d): %s" % (host, command, rc, out)
        return out

    def sha(self, host, path=PROFILE_FILE):
        return self.must(host, "sha256sum %s" % path).split()[0]

    def kernel_mode(self, host, name=PROGRAM):
        for line in self.must(host, "cat /sys/kernel/security/apparmor/profiles").splitlines():
            if line.startswith(name + " ("):
                return line.rsplit("(", 1)[1].rstrip(")")
        return None

    def record(self, host):
        return json.loads(self.must(host, "cat %s/convergence.json" % STATE))["profiles"][PROGRAM]

    def denied_count(self, host, needle=PROGRAM):
        """DENIED records naming the workload's profile, from where this host's flavour puts them."""
        cmd = ("if pgrep -x auditd >/dev/null; then grep -h 'apparmor=\"DENIED\"' /var/log/audit/audit.log; "
               "else dmesg | grep 'apparmor=\"DENIED\"'; fi | grep -F 'profile=\"%s' || true" % needle)
        return [line for line in self.must(host, cmd).splitlines() if line.strip()]


def _failures(out):
    lines = ["%s | %s | %s" % (t["host"], t["task"], t["result"].get("msg", "")) for t in out["tasks"]
             if t["result"]["_status"] in ("failed", "unreachable")]
    return "\n".join(lines[-20:]) or json.dumps(out.get("stats"))


def task_results(out, name):
    """{host: result} of the tasks whose name ends with NAME (the latest result per host wins)."""
    return {t["host"]: t["result"] for t in out["tasks"] if t["task"].endswith(name)}


def changed(out):
    return {h: s["changed"] for h, s in out["stats"].items()}


@pytest.fixture(scope="module")
def journey(lab, tmp_path_factory):
    j = Journey(lab, str(tmp_path_factory.mktemp("journey")))
    # Guests boot from a fresh initramfs, but a developer's lab may have run the journey before: start clean.
    for h in j.hosts:
        j.must(h, "apparmor_parser -R %s 2>/dev/null; rm -rf %s %s /var/backups/armada-apparmor; "
                  "printf 'not for the workload\\n' > %s; true" % (PROFILE_FILE, PROFILE_FILE, STATE, SECRET))
    return j


@step("1")
def test_step1_learn_in_complain_mode_until_converged(journey):
    j = journey
    before = {h: j.must(h, "cat /proc/sys/kernel/printk_ratelimit; "
                           "pgrep -x auditd >/dev/null && auditctl -s | grep -E '^(rate_limit|backlog_limit)'; true")
              for h in j.hosts}
    first = j.play("profile_fleet", {"apparmor_profile_fleet_passes": 2})
    # the workload is not running before learn (its exercise starts it), so no process of it runs unconfined:
    # learn restarts nothing and reports nothing "not attached"
    plans = {h: r.get("ansible_facts", {}).get("learn_attach")
             for h, r in task_results(first, "Work out the services to restart").items()}
    assert plans == {h: {"restart": [], "not_attached": []} for h in j.hosts}, plans
    for name in ("Programs not attached - their processes run unconfined and no service is named to restart",
                 "Reminder - programs not attached (learn printed it before exercising)"):
        ran = {h: r["_status"] for h, r in task_results(first, name).items() if r["_status"] != "skipped"}
        assert not ran, (name, ran)
    runs = 1
    while not all(j.record(h)["converged"] for h in j.hosts) and runs < 3:
        j.play("profile_fleet")
        runs += 1
    for h in j.hosts:
        rec = j.record(h)
        assert rec["converged"] is True and rec["passes"] >= 2, (h, rec)
        assert rec["pending"] == 0, (h, rec)
        assert j.kernel_mode(h) == "complain", h
        text = j.must(h, "cat %s" % PROFILE_FILE)
        # the minimal profile (aa-autodep's shape) ...
        for line in ("abi <abi/3.0>,", "include <tunables/global>", "include <abstractions/base>", "flags=(complain)"):
            assert line in text, (h, line, text)
        # ... and the rules for what the workload does, from the example answers
        for rule in ("capability net_bind_service,", "network inet stream,", "/etc/armada-workload/workload.conf r,",
                     "/var/log/armada-workload/*.log w,",
                     "/usr/local/lib/armada-workload/armada-workload-helper mrix,"):
            assert rule in text, (h, rule, text)
        # the limits lifted while learning are back
        after = j.must(h, "cat /proc/sys/kernel/printk_ratelimit; "
                          "pgrep -x auditd >/dev/null && auditctl -s | grep -E '^(rate_limit|backlog_limit)'; true")
        assert after == before[h], (h, before[h], after)
    # one file per profile on the controller, identical to every host's copy
    fetched = os.path.join(j.work, "profiles", os.path.basename(PROFILE_FILE))
    with open(fetched, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    assert {j.sha(h) for h in j.hosts} == {digest}
    assert os.listdir(os.path.join(j.work, "profiles")) == [os.path.basename(PROFILE_FILE)]


def ansible_yaml(text):
    """YAML read as Ansible reads inventory (the pending file's entries are !unsafe mappings)."""
    from ansible.parsing.dataloader import DataLoader
    return DataLoader().load(text)


def newest_pending(work):
    """(path, text, questions) of the newest review round, apparmor-pending-<pass id>.yml, whose one variable is
    apparmor_answers_pending_<pass id> (pass ids sort like the passes ran)."""
    path = sorted(glob.glob(os.path.join(work, "apparmor-pending-*.yml")))[-1]
    with open(path) as fh:
        text = fh.read()
    (var, questions), = ansible_yaml(text).items()
    assert var == "apparmor_answers_pending_" + os.path.basename(path)[len("apparmor-pending-"):-len(".yml")], var
    return path, text, questions


@step("2")
def test_step2_pending_answer_then_idempotent_update(journey):
    j = journey
    update = {"apparmor_learn": False}
    for h in j.hosts:  # in complain mode: an access no answer covers, logged ALLOWED
        j.must(h, "%s --once --read-extra %s" % (PROGRAM, EXTRA))
    out = j.play("profile_fleet", update)
    pending_path, pending_text, pending = newest_pending(j.work)  # !unsafe entries: Ansible's loader
    assert [p["match"]["path"] for p in pending] == [EXTRA], pending
    assert pending[0]["answer"] == "pending" and sorted(pending[0]["hosts"]) == j.hosts
    for h in j.hosts:
        assert EXTRA not in j.must(h, "cat %s" % PROFILE_FILE)
        assert j.record(h)["pending"] == 1
    counts = task_results(out, "Allowed / denied / pending per profile")
    assert "pending=1" in list(counts.values())[0]["msg"][PROGRAM]

    # answer it (the reviewed pending block, edited as text and pasted back into inventory as is)
    assert pending_text.count("answer: pending  #") == 1
    with open(os.path.join(j.inv, "group_vars", "all", os.path.basename(pending_path)), "w") as fh:
        fh.write(pending_text.replace("answer: pending  #", "answer: allow  #"))
    out = j.play("profile_fleet", update)
    rules = task_results(out, "Write the rules into the profiles (snapshot first)")
    assert sorted(rules) == j.hosts and all(r["changed"] for r in rules.values()), rules
    for h in j.hosts:
        assert "%s r," % EXTRA in j.must(h, "cat %s" % PROFILE_FILE)
        rec = j.record(h)
        assert rec["pending"] == 0 and rec["converged"] is False, rec  # a rule was added in this pass
    assert newest_pending(j.work)[2] == []

    shas = {h: j.sha(h) for h in j.hosts}
    out = j.play("profile_fleet", update)
    assert not any(changed(out).values()), changed(out)
    for h in j.hosts:
        assert j.record(h)["converged"] is True

    # reset the cursor: everything is read again, and still nothing changes
    for h in j.hosts:
        j.must(h, "rm -f %s/cursors/armada-update.json" % STATE)
    out = j.play("profile_fleet", update)
    assert not any(changed(out).values()), changed(out)
    reads = task_results(out, "Read new AppArmor events since the cursor")
    for h in j.hosts:
        r = reads[h]
        # not an empty read: the old records were read again (those the profile now covers are counted in
        # `covered` by skip_covered instead of being returned)
        assert r["stats"]["records"] > 0 and r["covered"]["allow"] + len(r["events"]) > 0, (h, r["stats"], r["covered"])
        assert j.sha(h) == shas[h]


@step("5")
def test_step5_canary_denial_during_soak_rolls_back_and_stops(journey):
    j = journey
    shas = {h: j.sha(h) for h in j.hosts}
    canary = j.canary[0]
    out = j.play("enforce", {"apparmor_enforce_soak_seconds": 5,
                             "apparmor_enforce_soak_command": "%s --once --read-extra %s || true" % (PROGRAM, SECRET)},
                 expect_rc=2)
    for h in j.hosts:
        assert j.sha(h) == shas[h], "%s: profile file changed" % h
        assert j.kernel_mode(h) == "complain", h
    with open(os.path.join(j.work, "apparmor-enforce-report", canary + ".yml")) as fh:
        report = yaml.safe_load(fh)
    assert report["status"] == "rolled back" and report["outcome"]["verified"] is True, report
    assert SECRET in report["outcome"]["reason"], report
    # the later batches were never touched: no report, no task ran on them in the rollout play
    assert sorted(os.listdir(os.path.join(j.work, "apparmor-enforce-report"))) == ["index.html", canary + ".yml"]
    with open(os.path.join(j.work, "apparmor-enforce-report", "index.html")) as fh:
        summary = fh.read()
    assert "<td>%s</td><td>rolled back</td>" % canary in summary, summary[-2000:]
    assert not task_results(out, "Switch to enforce mode").keys() - {canary}


@step("3")
def test_step3_enforce_rollout_then_workload_runs_without_denials(journey):
    j = journey
    j.original = {h: j.sha(h) for h in j.hosts}
    j.play("enforce", {"apparmor_enforce_soak_seconds": 5})
    for h in j.hosts:
        with open(os.path.join(j.work, "apparmor-enforce-report", h + ".yml")) as fh:
            assert yaml.safe_load(fh)["status"] == "enforced", h
        assert j.kernel_mode(h) == "enforce", h
        before = len(j.denied_count(h))
        j.must(h, "%s --once" % PROGRAM)
        j.must(h, "sleep 1")
        assert len(j.denied_count(h)) == before, (h, j.denied_count(h)[before:])


@step("4")
def test_step4_something_new_is_denied(journey):
    j = journey
    for h in j.hosts:
        rc, _ = j.sh(h, "%s --once --read-extra %s" % (PROGRAM, SECRET))
        assert rc != 0, "%s: reading %s must be refused in enforce mode" % (h, SECRET)
        records = []
        for _ in range(10):
            records = [r for r in j.denied_count(h) if SECRET in r]
            if records:
                break
            j.must(h, "sleep 1")
        assert records, "%s: no DENIED record for %s" % (h, SECRET)


@step("6")
def test_step6_restore_backup_matches_original_sha256(journey):
    j = journey
    j.play("restore")  # latest = the snapshot enforce took right before the switch
    for h in j.hosts:
        assert j.sha(h) == j.original[h], h
        assert j.kernel_mode(h) == "complain", h
    out = j.play("status")
    table = task_results(out, "Fleet table")
    lines = list(table.values())[0]["msg"]
    for h in j.hosts:
        row = [line for line in lines if line.startswith(h + " ") and PROGRAM in line]
        assert row and "complain" in row[0] and "True" in row[0], lines


@step("7")
def test_step7_mode_decides_the_default_and_a_shell_gets_only_the_qualified_modes(journey):
    j = journey
    for h in j.hosts:  # complain mode again (step 6): the workload runs a shell as its helper
        j.must(h, "printf 'helper = /usr/bin/dash\\n' > %s && %s --once --config %s </dev/null"
                  % (SHELL_CONF, PROGRAM, SHELL_CONF))
    try:
        j.play("profile_fleet", {"apparmor_learn": False, "apparmor_update_default": "allow"})
    finally:
        for h in j.hosts:
            j.must(h, "rm -f %s" % SHELL_CONF)
    pending = newest_pending(j.work)[2]
    by_path = {(p["match"]["kind"], p["match"].get("path")): p for p in pending}
    # aa-logprof proposes Deny for enforce-mode events: the DENIED reads of steps 5 and 4 stay pending, flagged
    secret = by_path[("file", SECRET)]
    assert secret["possible_intrusion"] is True and secret["suggestions"]["default_answer"] == "deny", secret
    assert sorted(secret["hosts"]) == j.hosts, secret
    # logprof.conf [qualifiers]: /usr/bin/dash = icnu - inherit, child or unconfined, never its own profile
    dash = by_path[("exec", "/usr/bin/dash")]
    assert dash["suggestions"]["exec_modes"] == ["ix", "Cx", "Cix", "cx", "cix", "Ux", "ux"], dash
    assert "possible_intrusion" not in dash and dash["suggestions"]["default_answer"] == "allow"
    for h in j.hosts:
        text = j.must(h, "cat %s" % PROFILE_FILE)
        assert "%s r," % SHELL_CONF in text, (h, text)  # complain-mode access: allowed by default: allow
        assert SECRET not in text and "/usr/bin/dash Px" not in text, (h, text)
