"""Faults made for real on the qemu lab, through the playbooks users run (issue 8).

Two hosts take turns: in each pass one host has a fault and the other recovers from the fault it had in the
previous pass, so every fault is followed by a plain re-run that proves nothing was lost.

  1. update: apparmor_parser fails on B only - an approved answer covers accesses with a site abstraction
     (``include: abstractions/armada-faults-site``) that the site baseline installed on A but not (yet) on B;
  2. update: /etc/apparmor.d on A is a full tmpfs (B recovers: abstraction installed);
  3. update: /etc/apparmor.d on B is a read-only bind mount (A recovers: space freed);
  4. update: the state directory on A is a full tmpfs (B recovers: mount removed);
  5. update: A recovers (space freed) - every rule of every pass is on both hosts;
  6. enforce: apparmor_parser fails on B when switching to enforce - a hand edit of its ``local/`` override uses
     a site tunable B lacks (B rolls back, A in the same batch finishes, a later batch is untouched);
  7. enforce: the override fixed, a plain re-run enforces B.

Faults are real: a tmpfs filled with dd, a read-only bind mount, a missing or broken include that the host's
own apparmor_parser rejects. Expectations come from the fault (which host, which file, which message the OS or
the parser gives), never from the output of the code under test. Host state is read over plain ssh: sha256 of
files, /sys/kernel/security/apparmor/profiles (mode), policy/revision (bumped by every load or replace in the
namespace) and the sha1 of the loaded policy.

Every mount is undone and every file removed in the module fixture's teardown, also after a failure.
"""
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
ANSIBLE = os.path.join(ROOT, ".venv", "bin", "ansible")
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journey_callback")

NAME = "armada-faults"
PROGRAM = "/usr/local/bin/armada-faults"
AD = "/etc/apparmor.d"
PROFILE = AD + "/armada-faults"
LOCAL = AD + "/local/armada-faults"
SITE = AD + "/abstractions/armada-faults-site"
STATE = "/var/lib/armada-faults"
CURSOR = STATE + "/cursors/armada-update.json"
BACKUPS = "/var/backups/armada-faults"
DATA = "/etc/armada-faults"
FILL = ".zz-faults-fill"  # a dot file: AppArmor's loaders skip it; not the collection's temp prefix (.armada-)

PROFILE_TEXT = """abi <abi/3.0>,
include <tunables/global>

profile armada-faults /usr/local/bin/armada-faults flags=(complain) {
  include <abstractions/base>
  include if exists <local/armada-faults>
}
"""
SITE_TEXT = "# site baseline: data the armada-faults jobs read\n%s/site/** r,\n" % DATA
INCLUDE = "include <abstractions/armada-faults-site>"

ANSWERS = [
    {"profile": NAME, "match": {"kind": "file", "path": DATA + "/site/**"}, "answer": "allow",
     "include": "abstractions/armada-faults-site"},
    {"profile": NAME, "match": {"kind": "file", "path": DATA + "/*.txt"}, "answer": "allow"},
]

SETUP = r"""
set -e
for m in {ad} {state}; do
  if mountpoint -q $m; then echo "$m is a mount point: not a clean lab host" >&2; exit 3; fi
done
apparmor_parser -R {profile} 2>/dev/null || true
rm -rf {state} {backups} {profile} {local} {site} {data}
install -m 0755 /usr/bin/cat {program}
mkdir -p {data}/site
for f in a b c d e; do echo $f > {data}/$f.txt; echo $f > {data}/site/$f.txt; done
printf '%s' '{profile_text}' > {profile}
apparmor_parser -r {profile}
[ -f /run/armada-faults.printk ] || cat /proc/sys/kernel/printk_ratelimit > /run/armada-faults.printk
sysctl -q -w kernel.printk_ratelimit=0
""".format(ad=AD, state=STATE, profile=PROFILE, local=LOCAL, site=SITE, backups=BACKUPS, data=DATA,
           program=PROGRAM, profile_text=PROFILE_TEXT)

# Never fails: unmount what the tests mounted, unload and remove everything they added, restore the limit.
TEARDOWN = r"""
for m in {ad} {state}; do
  n=0; while mountpoint -q $m && [ $n -lt 5 ]; do umount $m || umount -l $m; n=$((n+1)); done
done
apparmor_parser -R {profile} 2>/dev/null
rm -rf {state} {backups} {profile} {local} {site} {data} {program} /run/armada-faults-copy
find /var/cache/apparmor -name armada-faults -delete 2>/dev/null
if [ -f /run/armada-faults.printk ]; then
  sysctl -q -w kernel.printk_ratelimit=$(cat /run/armada-faults.printk) && rm -f /run/armada-faults.printk
fi
true
""".format(ad=AD, state=STATE, profile=PROFILE, local=LOCAL, site=SITE, backups=BACKUPS, data=DATA, program=PROGRAM)


def full_tmpfs(directory):
    """Replace DIRECTORY by a tmpfs holding a copy of its content, then fill the tmpfs: 0 bytes free."""
    return r"""
set -e
mountpoint -q {d} && exit 3
rm -rf /run/armada-faults-copy && mkdir -p /run/armada-faults-copy && cp -a {d}/. /run/armada-faults-copy/
used=$(du -sk /run/armada-faults-copy | cut -f1)
mount -t tmpfs -o size=$((used + 512))k,mode=0755 armada-faults-full {d}
cp -a /run/armada-faults-copy/. {d}/
rm -rf /run/armada-faults-copy
dd if=/dev/zero of={d}/{fill} bs=4k 2>/dev/null || true
dd if=/dev/zero of={d}/{fill}2 bs=1 2>/dev/null || true
df -k {d} | awk 'NR==2 {{print $4}}'
""".format(d=directory, fill=FILL)


step = step_chain("fault")


class Faults:
    """A controller work directory (inventory with the answers, pending file, reports) and the two hosts."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.all = sorted(lab.hosts)
        self.a, self.b = self.all[0], self.all[1]
        self.inv = os.path.join(work, "inventory")
        os.makedirs(os.path.join(self.inv, "group_vars", "all"))
        os.makedirs(os.path.join(work, "logs"))
        shutil.copy(lab.inventory, os.path.join(self.inv, "hosts.yml"))
        with open(os.path.join(self.inv, "group_vars", "all", "faults.yml"), "w") as fh:
            yaml.safe_dump({"apparmor_programs": [], "apparmor_update_profiles": [NAME], "apparmor_state_dir": STATE,
                            "apparmor_backup_dir": BACKUPS, "apparmor_answers_faults": ANSWERS}, fh)
        self.runs = 0

    def env(self, results=""):
        return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                    ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                    ARMADA_JOURNEY_RESULTS=results, ANSIBLE_NOCOLOR="1", PWD=self.work)

    def play(self, name, limit, extra=None, expect_rc=0):
        """Run the collection's playbook NAME on LIMIT; return {tasks, stats, rc, log}."""
        self.runs += 1
        log = os.path.join(self.work, "logs", "%02d-%s.log" % (self.runs, name))
        results = log[:-4] + ".json"
        cmd = [ANSIBLE_PLAYBOOK, "-i", self.inv, "--limit", ",".join(limit), "armada.apparmor." + name]
        if extra:
            cmd += ["-e", json.dumps(extra)]
        with open(log, "w") as fh:
            res = subprocess.run(cmd, cwd=self.work, env=self.env(results), stdin=subprocess.DEVNULL, stdout=fh,
                                 stderr=subprocess.STDOUT, timeout=1800, check=False)
        with open(log) as fh:
            text = fh.read()
        if not os.path.exists(results):
            pytest.fail("%s: no results (rc %d):\n%s" % (name, res.returncode, text[-4000:]))
        with open(results) as fh:
            out = json.load(fh)
        out["rc"] = res.returncode
        out["log"] = text
        if res.returncode != expect_rc:
            pytest.fail("%s: rc %d, expected %d:\n%s" % (name, res.returncode, expect_rc, text[-5000:]))
        return out

    def update(self, expect_rc=0):
        return self.play("profile_fleet", [self.a, self.b], {"apparmor_learn": False}, expect_rc)

    def mark_cursor(self, hosts):
        """Set the update cursor at the end of the logs, as the learn role does when learning starts."""
        cmd = [ANSIBLE, "-i", self.inv, ",".join(hosts), "-b", "-m", "armada.apparmor.denials", "-a",
               json.dumps({"since": "armada-update", "cursor_dir": STATE + "/cursors", "profiles": [NAME],
                           "max_events": 1, "commit": True})]
        res = subprocess.run(cmd, cwd=self.work, env=self.env(), stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]

    def sh(self, host, command):
        res = self.lab.ssh(host, command)
        return res.returncode, res.stdout + res.stderr

    def must(self, host, command):
        rc, out = self.sh(host, command)
        assert rc == 0, "%s: `%s` failed (%d): %s" % (host, command, rc, out)
        return out

    def access(self, host, name):
        """The confined program reads DATA/NAME: in complain mode the kernel logs it ALLOWED."""
        self.must(host, "%s %s/%s >/dev/null" % (PROGRAM, DATA, name))

    def sha(self, host, path):
        """sha256 of PATH on HOST, or None when it does not exist."""
        out = self.must(host, "if [ -e %s ]; then sha256sum %s; fi" % (path, path)).split()
        return out[0] if out else None

    def text(self, host, path=PROFILE):
        return self.must(host, "cat %s" % path)

    def kernel(self, host):
        """{'mode', 'revision', 'sha1'}: the profile's mode in the kernel, the namespace's policy revision (every
        load or replace bumps it) and the sha1 of the loaded policy."""
        out = self.must(host, "head -n1 /sys/kernel/security/apparmor/policy/revision; "
                              "grep '^%s (' /sys/kernel/security/apparmor/profiles || true; "
                              "cat /sys/kernel/security/apparmor/policy/profiles/%s.*/sha1 2>/dev/null || true"
                        % (NAME, NAME)).splitlines()
        mode = [line.rsplit("(", 1)[1].rstrip(")") for line in out[1:] if line.startswith(NAME + " (")]
        return {"revision": out[0].strip(), "mode": mode[0] if mode else None,
                "sha1": sorted(line for line in out[1:] if not line.startswith(NAME + " ("))}

    def temps(self, host, directory):
        """Leftover temporary files: fileops' .armada-*.tmp~, the update state's .*.tmp, the cursor's .tmp-*."""
        return self.must(host, "find %s -xdev \\( -name '.armada-*.tmp~' -o -name '.*.tmp' -o -name '.tmp-*' \\) "
                               "-print 2>/dev/null || true" % directory).split()

    def host_state(self, host):
        return {"profile": self.sha(host, PROFILE), "local": self.sha(host, LOCAL), "kernel": self.kernel(host),
                "cursor": self.sha(host, CURSOR), "events": self.sha(host, STATE + "/events.json"),
                "convergence": self.sha(host, STATE + "/convergence.json")}


def results_of(out, task, host):
    """Results of the tasks whose name ends with TASK on HOST (loop items flattened)."""
    found = []
    for t in out["tasks"]:
        if t["host"] == host and t["task"].endswith(task):
            found.append(t["result"])
            found.extend(t["result"].get("results") or [])
    return found


def failure_messages(out, host):
    """What the user reads about HOST's failures: each failed result's msg and stderr (loop items included)."""
    return [r.get("msg", "") + " " + r.get("stderr", "") for t in out["tasks"]
            if t["host"] == host and t["result"]["_status"] == "failed"
            for r in [t["result"]] + [i for i in t["result"].get("results") or [] if i.get("failed")]]


def read_paths(out, host):
    """Paths of the events the update role read on HOST in this run."""
    return sorted({e.get("path") for r in results_of(out, "Read new AppArmor events since the cursor", host)
                   for e in r.get("events") or []})


def assert_untouched(f, host, before, after, where=AD):
    """The failing host: profile and local/ byte-identical, nothing loaded, no temp file left."""
    assert after["profile"] == before["profile"], "%s: profile file changed" % host
    assert after["local"] == before["local"], "%s: local/ include changed" % host
    assert after["kernel"] == before["kernel"], "%s: kernel policy changed: %s -> %s" % (
        host, before["kernel"], after["kernel"])
    assert f.temps(host, where) == [], "%s: temp files left in %s" % (host, where)


@pytest.fixture(scope="module")
def faults(lab, tmp_path_factory):
    if len(lab.hosts) < 2:
        pytest.fail("the fault tests need a lab of at least 2 hosts (`tests/lab/lab up 2`)")
    f = Faults(lab, str(tmp_path_factory.mktemp("faults")))
    try:
        for h in f.all:
            f.must(h, SETUP)
        f.must(f.a, "printf '%s' '%s' > %s" % ("%s", SITE_TEXT, SITE))
        f.mark_cursor([f.a, f.b])
        yield f
    finally:
        for h in f.all:
            f.sh(h, TEARDOWN)


@step("1")
def test_step1_parser_fails_on_one_host_during_update(faults):
    f = faults
    before = {h: f.host_state(h) for h in (f.a, f.b)}
    assert before[f.b]["cursor"], "the cursor was marked on %s" % f.b
    for h in (f.a, f.b):
        f.access(h, "site/a.txt")
    out = f.update(expect_rc=2)
    after = {h: f.host_state(h) for h in (f.a, f.b)}
    # B: its own apparmor_parser rejects the include (no such abstraction on B); reported, nothing changed
    assert out["stats"][f.b]["failures"] == 1 and out["stats"][f.a]["failures"] == 0, out["stats"]
    msgs = " ".join(failure_messages(out, f.b))
    assert "Could not open 'abstractions/armada-faults-site'" in msgs and "does not compile" in msgs, msgs
    assert_untouched(f, f.b, before[f.b], after[f.b])
    assert after[f.b]["kernel"]["mode"] == "complain"
    # its cursor is not committed and its kept events are unchanged: the same records are read next pass
    assert after[f.b]["cursor"] == before[f.b]["cursor"] and after[f.b]["events"] == before[f.b]["events"]
    assert DATA + "/site/a.txt" in read_paths(out, f.b)
    # A: got the include, loaded it (revision bumped, new policy hash), committed its cursor
    assert INCLUDE in f.text(f.a), f.text(f.a)
    assert after[f.a]["kernel"]["revision"] != before[f.a]["kernel"]["revision"]
    assert after[f.a]["kernel"]["sha1"] != before[f.a]["kernel"]["sha1"] and after[f.a]["kernel"]["mode"] == "complain"
    assert after[f.a]["cursor"] != before[f.a]["cursor"]
    assert DATA + "/site/a.txt" in read_paths(out, f.a)


@step("2")
def test_step2_full_apparmor_d_on_one_host_and_the_parser_fault_removed(faults):
    f = faults
    f.must(f.b, "printf '%s' '%s' > %s" % ("%s", SITE_TEXT, SITE))  # the site baseline reaches B
    f.access(f.a, "b.txt")
    free = f.must(f.a, full_tmpfs(AD)).split()[-1]
    assert free == "0", "the tmpfs on %s is not full: %s KiB free" % (f.a, free)
    before = {h: f.host_state(h) for h in (f.a, f.b)}
    out = f.update(expect_rc=2)
    after = {h: f.host_state(h) for h in (f.a, f.b)}
    assert out["stats"][f.a]["failures"] == 1 and out["stats"][f.b]["failures"] == 0, out["stats"]
    msgs = " ".join(failure_messages(out, f.a))
    assert "no space left on device" in msgs.lower(), msgs
    assert_untouched(f, f.a, before[f.a], after[f.a])
    assert after[f.a]["cursor"] == before[f.a]["cursor"] and after[f.a]["events"] == before[f.a]["events"]
    # B recovered: the pass-1 records were read again (its cursor had not moved) and became the include
    assert DATA + "/site/a.txt" in read_paths(out, f.b)
    text = f.text(f.b)
    assert INCLUDE in text and DATA + "/b.txt r," in text, text
    assert after[f.b]["kernel"]["revision"] != before[f.b]["kernel"]["revision"]
    assert after[f.b]["cursor"] != before[f.b]["cursor"]


@step("3")
def test_step3_read_only_apparmor_d_on_one_host_and_space_freed_on_the_other(faults):
    f = faults
    f.must(f.a, "rm -f %s/%s %s/%s2" % (AD, FILL, AD, FILL))  # space freed on A (the tmpfs stays mounted)
    f.access(f.b, "c.txt")
    f.must(f.b, "mount --bind %s %s && mount -o remount,ro,bind %s" % (AD, AD, AD))
    rc, _ = f.sh(f.b, "touch %s/.probe-faults" % AD)
    assert rc != 0, "%s: %s is still writable" % (f.b, AD)
    before = {h: f.host_state(h) for h in (f.a, f.b)}
    out = f.update(expect_rc=2)
    after = {h: f.host_state(h) for h in (f.a, f.b)}
    assert out["stats"][f.b]["failures"] == 1 and out["stats"][f.a]["failures"] == 0, out["stats"]
    msgs = " ".join(failure_messages(out, f.b))
    assert "read-only file system" in msgs.lower(), msgs
    assert_untouched(f, f.b, before[f.b], after[f.b])
    assert after[f.b]["cursor"] == before[f.b]["cursor"] and after[f.b]["events"] == before[f.b]["events"]
    # A recovered: its pass-2 record of b.txt was read again and is a rule now, with B's c.txt
    assert DATA + "/b.txt" in read_paths(out, f.a)
    text = f.text(f.a)
    for needle in (INCLUDE, DATA + "/b.txt r,", DATA + "/c.txt r,"):
        assert needle in text, (needle, text)
    assert after[f.a]["kernel"]["revision"] != before[f.a]["kernel"]["revision"]


@step("4")
def test_step4_full_state_dir_keeps_the_old_state(faults):
    f = faults
    f.must(f.b, "umount %s" % AD)  # B: read-only mount removed
    f.access(f.a, "d.txt")
    free = f.must(f.a, full_tmpfs(STATE)).split()[-1]
    assert free == "0", "the tmpfs on %s is not full: %s KiB free" % (f.a, free)
    before = {h: f.host_state(h) for h in (f.a, f.b)}
    assert before[f.a]["events"] and before[f.a]["cursor"] and before[f.a]["convergence"]
    out = f.update(expect_rc=2)
    after = {h: f.host_state(h) for h in (f.a, f.b)}
    assert out["stats"][f.a]["failures"] == 1 and out["stats"][f.b]["failures"] == 0, out["stats"]
    msgs = " ".join(failure_messages(out, f.a))
    assert "no space left on device" in msgs.lower() and STATE in msgs, msgs
    # the state of A is the old one, byte for byte, and no partial temp file is left
    for key in ("cursor", "events", "convergence"):
        assert after[f.a][key] == before[f.a][key], "%s: %s changed" % (f.a, key)
    assert f.temps(f.a, STATE) == [], f.temps(f.a, STATE)
    # B recovered: its pass-3 record of c.txt was read again; A's d.txt arrived too
    assert DATA + "/c.txt" in read_paths(out, f.b)
    text = f.text(f.b)
    for needle in (INCLUDE, DATA + "/b.txt r,", DATA + "/c.txt r,", DATA + "/d.txt r,"):
        assert needle in text, (needle, text)


@step("5")
def test_step5_space_freed_every_host_has_every_rule(faults):
    f = faults
    f.must(f.a, "rm -f %s/%s %s/%s2" % (STATE, FILL, STATE, FILL))
    before = {h: f.host_state(h) for h in (f.a, f.b)}
    passes = json.loads(f.must(f.a, "cat %s/convergence.json" % STATE))["profiles"][NAME]["passes"]
    out = f.update(expect_rc=0)
    after = {h: f.host_state(h) for h in (f.a, f.b)}
    # A read its pass-4 records again (the failed pass did not commit the cursor); the d.txt rule it wrote in
    # pass 4 (before keeping the state failed) covers them now, so they are counted as covered
    reads = results_of(out, "Read new AppArmor events since the cursor", f.a)
    assert sum((r.get("covered") or {}).get("allow", 0) for r in reads) >= 1 or DATA + "/d.txt" in read_paths(
        out, f.a), reads
    # and the state moves on from the old one: cursor committed, a valid record counting this pass
    assert after[f.a]["cursor"] != before[f.a]["cursor"]
    record = json.loads(f.must(f.a, "cat %s/convergence.json" % STATE))["profiles"][NAME]
    assert record["passes"] == passes + 1, record
    assert isinstance(json.loads(f.must(f.a, "cat %s/events.json" % STATE)), list)
    for h in (f.a, f.b):
        text = f.text(h)
        for needle in (INCLUDE, DATA + "/b.txt r,", DATA + "/c.txt r,", DATA + "/d.txt r,"):
            assert needle in text, (h, needle, text)
        assert after[h]["kernel"]["mode"] == "complain"
        assert f.temps(h, AD) == [] and f.temps(h, STATE) == []


@step("6")
def test_step6_parser_fails_on_one_host_during_enforce(faults):
    f = faults
    # a hand edit of B's local/ override using a site tunable (@{ARMADA_SITE_DATA}) that B's tunables lack, not
    # reloaded: the file parses (status lists the profile) but B's apparmor_parser refuses to compile it
    f.must(f.b, "printf '@{ARMADA_SITE_DATA}/e.txt r,\\n' > %s" % LOCAL)
    before = {h: f.host_state(h) for h in f.all}
    for h in f.all:
        assert before[h]["kernel"]["mode"] == "complain", (h, before[h])
    extra = {"apparmor_enforce_serial": [2, "100%"], "apparmor_enforce_force": True, "apparmor_enforce_soak_seconds": 1,
             "apparmor_enforce_profiles": [NAME]}
    out = f.play("enforce", f.all, extra, expect_rc=2)
    after = {h: f.host_state(h) for h in f.all}
    reports = os.path.join(f.work, "apparmor-enforce-report")
    with open(os.path.join(reports, f.b + ".yml")) as fh:
        rep_b = yaml.safe_load(fh)
    assert rep_b["status"] == "rolled back", rep_b
    reason = rep_b["outcome"]["reason"]
    assert "ARMADA_SITE_DATA, but is never declared" in reason and "does not compile" in reason, rep_b
    assert rep_b["outcome"]["verified"] is True, rep_b
    assert_untouched(f, f.b, before[f.b], after[f.b])
    assert after[f.b]["kernel"]["mode"] == "complain"
    # A, in the same batch, finished: enforced in the file and in the kernel
    with open(os.path.join(reports, f.a + ".yml")) as fh:
        assert yaml.safe_load(fh)["status"] == "enforced"
    assert after[f.a]["kernel"]["mode"] == "enforce" and after[f.a]["profile"] != before[f.a]["profile"]
    # later batches (hosts after the first two): untouched, no report, no switch attempted
    later = f.all[2:]
    assert sorted(os.listdir(reports)) == sorted([f.a + ".yml", f.b + ".yml", "index.html"])
    assert not {t["host"] for t in out["tasks"] if t["task"].endswith("Switch to enforce mode")} & set(later)
    for h in later:
        assert after[h] == before[h], h


@step("7")
def test_step7_enforce_again_after_the_override_is_fixed(faults):
    f = faults
    f.must(f.b, "printf '%s/e.txt r,\\n' > %s" % (DATA, LOCAL))  # the override fixed: a plain path
    extra = {"apparmor_enforce_serial": [2, "100%"], "apparmor_enforce_force": True, "apparmor_enforce_soak_seconds": 1,
             "apparmor_enforce_profiles": [NAME]}
    f.play("enforce", [f.a, f.b], extra, expect_rc=0)
    with open(os.path.join(f.work, "apparmor-enforce-report", f.b + ".yml")) as fh:
        assert yaml.safe_load(fh)["status"] == "enforced"
    for h in (f.a, f.b):
        assert f.kernel(h)["mode"] == "enforce", h
