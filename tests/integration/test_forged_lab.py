"""Forged AppArmor records written with ``logger`` by an unprivileged user during an enforce soak (issue 12, item 4).

One enforce rollout of the tests' own profile ``armada-forged`` over the three lab flavours, canary first, one host
per batch: journald host (canary), kernel-log host, auditd host. During each soak the soak command makes user
``nobody`` write a complete DENIED record for the profile with ``logger``:

- journald host: ``logger -t dbus-daemon 'apparmor="DENIED" operation="dbus_method_call" ... label="armada-forged"'``.
  journald stores it with the trusted fields ``_TRANSPORT=syslog _UID=65534 _COMM=logger``: not the dbus daemon.
  The host has a trusted source (the journal's kernel transport), so the record is reported as unverified and
  the canary is NOT rolled back: it stays enforced and the rollout goes on.
- kernel-log host: a syslog daemon writes ``/var/log/messages`` (the image has none: busybox ``syslogd`` is
  started for the test) and ``logger -t kernel 'audit: type=1400 audit(...): apparmor="DENIED" ...'`` lands
  there exactly like a kernel line. That file is then the host's only source (no auditd, no journal): nothing
  can tell the record from a real denial, so the host is neither rolled back nor trusted - it stays switched,
  is reported ``unverified``, and the rollout stops after this batch: the auditd host gets no task.

Without the change (the reader trusting the tags) the canary is rolled back by the forged dbus record and the
rollout stops there. Expectations come from what the forger wrote and the kernel's profile mode, never from the
code under test. Everything added (profile, program, state, backups, the syslog daemon and its files) is removed in
the fixture's teardown; journal entries cannot be removed and name only the tests' own profile.
"""
import json
import os
import shutil
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")

NAME = "armada-forged"
PROGRAM = "/usr/local/bin/armada-forged"
PROFILE = "/etc/apparmor.d/" + NAME
STATE = "/var/lib/armada-forged"
BACKUPS = "/var/backups/armada-forged"
FORGE = "/run/armada-forged.forge"
MESSAGES = "/var/log/messages"
SYSLOGD_PID = "/var/run/syslogd.pid"

PROFILE_TEXT = """abi <abi/3.0>,
include <tunables/global>

profile armada-forged /usr/local/bin/armada-forged flags=(complain) {
  include <abstractions/base>
}
"""
FORGED_DBUS = ('apparmor="DENIED" operation="dbus_method_call" bus="system" path="/org/armada/Forged" '
               'interface="org.armada.Forged" member="Fake" mask="send" name="org.armada.Forged" pid=4242 '
               'label="armada-forged" peer_pid=1 peer_label="unconfined"')
FORGED_KERNEL = ('audit: type=1400 audit(1765000000.123:4242): apparmor="DENIED" operation="open" class="file" '
                 'profile="armada-forged" name="/etc/armada-forged-secret" pid=4242 comm="armada-forged" '
                 'requested_mask="r" denied_mask="r" fsuid=0 ouid=0')

SETUP = r"""
set -e
apparmor_parser -R {profile} 2>/dev/null || true
rm -rf {state} {backups} {profile} {forge}
install -m 0755 /usr/bin/cat {program}
printf '%s' '{profile_text}' > {profile}
apparmor_parser -r {profile}
""".format(profile=PROFILE, state=STATE, backups=BACKUPS, forge=FORGE, program=PROGRAM, profile_text=PROFILE_TEXT)

# The kernel-log host gets a syslog daemon: busybox syslogd on /dev/log, writing /var/log/messages.
SYSLOGD_UP = r"""
set -e
if [ -e /dev/log ] || [ -e {messages} ]; then
  echo "/dev/log or {messages} exists: not a clean kernlog host" >&2; exit 3
fi
busybox syslogd -O {messages}
n=0; while [ ! -S /dev/log ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
[ -S /dev/log ]
""".format(messages=MESSAGES)

TEARDOWN = r"""
if [ -f {pid} ]; then kill "$(cat {pid})" 2>/dev/null; sleep 0.5; rm -f {pid} /dev/log {messages}*; fi
apparmor_parser -R {profile} 2>/dev/null
rm -rf {state} {backups} {profile} {program} {forge}
find /var/cache/apparmor -name {name} -delete 2>/dev/null
true
""".format(pid=SYSLOGD_PID, messages=MESSAGES, profile=PROFILE, state=STATE, backups=BACKUPS, program=PROGRAM,
           forge=FORGE, name=NAME)

# Run by the enforce role's soak command as root; the forge script itself runs as nobody.
SOAK = "if [ -f {forge} ]; then runuser -u nobody -- sh {forge}; fi".format(forge=FORGE)


def shq(text):
    return "'" + text.replace("'", "'\\''") + "'"


def by_flavour(lab, flavour):
    hosts = [h for h, hv in sorted(lab.hosts.items()) if hv.get("armada_lab_flavour") == flavour]
    if not hosts:
        pytest.fail("the forged-record test needs a lab with the auditd, kernlog and journald flavours "
                    "(`tests/lab/lab up 3 --flavours auditd,kernlog,journald`); no %s host" % flavour)
    return hosts[0]


@pytest.fixture(scope="module")
def forged(lab, tmp_path_factory):
    journald, kernlog, auditd = by_flavour(lab, "journald"), by_flavour(lab, "kernlog"), by_flavour(lab, "auditd")
    work = str(tmp_path_factory.mktemp("forged"))
    inv = os.path.join(work, "inventory")
    os.makedirs(os.path.join(inv, "group_vars", "all"))
    shutil.copy(lab.inventory, os.path.join(inv, "hosts.yml"))
    with open(os.path.join(inv, "group_vars", "all", "forged.yml"), "w") as fh:
        yaml.safe_dump({"apparmor_programs": [], "apparmor_state_dir": STATE, "apparmor_backup_dir": BACKUPS}, fh)
    hosts = [journald, kernlog, auditd]

    def must(host, command):
        res = lab.ssh(host, command)
        assert res.returncode == 0, "%s: `%s` failed (%d): %s" % (host, command, res.returncode,
                                                                  res.stdout + res.stderr)
        return res.stdout

    try:
        for h in hosts:
            must(h, SETUP)
        must(kernlog, SYSLOGD_UP)
        must(journald, "printf '%%s\\n' %s > %s" % (shq("logger -t dbus-daemon " + shq(FORGED_DBUS)), FORGE))
        must(kernlog, "printf '%%s\\n' %s > %s" % (shq("logger -t kernel " + shq(FORGED_KERNEL)), FORGE))
        yield {"lab": lab, "work": work, "inv": inv, "journald": journald, "kernlog": kernlog, "auditd": auditd,
               "must": must}
    finally:
        for h in hosts:
            lab.ssh(h, TEARDOWN)


def mode(f, host):
    """The profile's mode in the kernel (from /sys/kernel/security/apparmor/profiles), None when not loaded."""
    for line in f["must"](host, "cat /sys/kernel/security/apparmor/profiles").splitlines():
        if line.startswith(NAME + " ("):
            return line.rsplit("(", 1)[1].rstrip(")")
    return None


def test_forged_records_never_roll_back_and_stop_the_rollout_where_nothing_is_trusted(forged):
    f = forged
    # the forger really is unprivileged and the records really land where the reader looks
    assert f["must"](f["kernlog"], "runuser -u nobody -- id -u").strip() == "65534"
    assert mode(f, f["journald"]) == mode(f, f["kernlog"]) == mode(f, f["auditd"]) == "complain"

    results = os.path.join(f["work"], "results.json")
    extra = {"apparmor_enforce_canary": "%s:%s" % (f["journald"], f["kernlog"]),
             "apparmor_enforce_serial": [1, 1, 1], "apparmor_enforce_force": True, "apparmor_enforce_soak_seconds": 1,
             "apparmor_enforce_profiles": [NAME], "apparmor_enforce_soak_command": SOAK}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
               ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
               ARMADA_JOURNEY_RESULTS=results, ANSIBLE_NOCOLOR="1", PWD=f["work"])
    cmd = [ANSIBLE_PLAYBOOK, "-i", f["inv"], "--limit", ",".join([f["journald"], f["kernlog"], f["auditd"]]),
           "armada.apparmor.enforce", "-e", json.dumps(extra)]
    res = subprocess.run(cmd, cwd=f["work"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=1200, check=False)
    log = res.stdout + res.stderr
    with open(results) as fh:
        tasks = json.load(fh)["tasks"]

    def soak_read(host):
        found = [t["result"] for t in tasks
                 if t["host"] == host and t["task"].endswith("Look for new DENIED records of the enforced profiles")]
        assert len(found) == 1, "%s: soak read ran %d times\n%s" % (host, len(found), log[-4000:])
        return found[0]

    # the rollout stopped (max_fail_percentage 0 after the kernel-log host's batch)
    assert res.returncode == 2, log[-5000:]

    # canary (journald): the forged dbus record was read, marked forgeable, and did not roll the canary back
    canary = soak_read(f["journald"])
    forged_events = [e for e in canary["events"] if e.get("dbus_path") == "/org/armada/Forged"]
    assert len(forged_events) == 1, canary["events"]
    assert forged_events[0]["forgeable"] is True and forged_events[0]["sources"] == ["journal-unverified"]
    assert canary["source_trust"]["only_forgeable"] is False
    with open(os.path.join(f["work"], "apparmor-enforce-report", f["journald"] + ".yml")) as fh:
        report = yaml.safe_load(fh)
    assert report["status"] == "enforced", report
    assert "journal-unverified" in report["outcome"]["reason"] and "/org/armada/Forged" in \
        report["outcome"]["unverified_denials"], report
    assert mode(f, f["journald"]) == "enforce"
    assert not [t for t in tasks if t["host"] == f["journald"] and "Roll back" in t["task"]
                and t["result"]["_status"] != "skipped"]

    # kernel-log host: the syslog file is its only source -> unverified, left switched, the rollout stops
    klog = soak_read(f["kernlog"])
    assert [e["path"] for e in klog["events"]] == ["/etc/armada-forged-secret"], klog["events"]
    assert klog["events"][0]["forgeable"] is True and klog["events"][0]["sources"] == ["syslog"]
    assert klog["source_trust"] == {"trusted": [], "forgeable": ["file:" + MESSAGES], "only_forgeable": True}
    with open(os.path.join(f["work"], "apparmor-enforce-report", f["kernlog"] + ".yml")) as fh:
        report = yaml.safe_load(fh)
    assert report["status"] == "unverified", report
    assert "/etc/armada-forged-secret" in report["outcome"]["unverified_denials"]
    assert mode(f, f["kernlog"]) == "enforce"
    assert "stays switched to enforce mode, reported unverified" in log

    # the auditd host was a later batch: untouched, still in complain mode, no report
    # (its only tasks: the first play's include of start_report and its argument check, run on every host first)
    later = [t["task"] for t in tasks if t["host"] == f["auditd"]
             and t["task"] != "Empty the report directory" and "'start_report'" not in t["task"]]
    assert later == [], "a later batch ran: %s" % later
    assert mode(f, f["auditd"]) == "complain"
    assert not os.path.exists(os.path.join(f["work"], "apparmor-enforce-report", f["auditd"] + ".yml"))
