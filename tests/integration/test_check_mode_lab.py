"""Check mode on every role (issue 8): `ansible-playbook --check --diff` leaves the host state identical.

On the first `auditd` lab host (the canary in `make test`'s lab):

1. `check_mode_playbooks/setup.yml` makes a state where a real run of EVERY role would change the host
   (its header lists what per role), and the baseline snapshot the restore role goes back to.
2. `check_mode_playbooks/roles.yml` imports the playbooks users run - armada.apparmor.backup, .deploy,
   .profile_fleet (learn + update), .enforce, .report, .restore - with a host-state digest (`host_digest.py`: every file
   under /etc/apparmor.d, the parser cache, the state, backup and exercise dirs with mode, owner, sha256 and
   mtime; loaded profiles and modes; the loaded policy's sha1/raw_sha1; the rate limits learn lifts) before and
   after each one. It runs once with --check --diff: every digest must equal the one taken over plain ssh
   before, and each role must report the changes it would make (the check is not vacuous). Then it runs for
   real: each digest must differ from the one before in the entries that role writes (the digest sees them) -
   except the report role's, which is read-only on hosts in both runs.
3. Everything the test added is removed, unloaded and the limits put back; the final digest must equal the
   one taken before the test (directory mtimes aside).

Controller-side files (update's ./profiles/ and pending file, enforce's report directory, backup's fetched
archives) are NOT written in check mode (ansible's copy/file/fetch honour it): asserted on the run's cwd.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYS = os.path.join(HERE, "check_mode_playbooks")
ROOT = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
PROFILES = ["armada-cm-deploy", "armada-cm-learn", "armada-cm-update", "armada-cm-enforce"]
ROLES = ["backup", "deploy", "learn", "update", "enforce", "restore"]
SEGMENTS = ["backup", "deploy", "profile_fleet", "enforce", "report", "restore"]
DEPLOY_PROFILE = """abi <abi/3.0>,
include <tunables/global>
profile armada-cm-deploy /usr/local/bin/armada-cm-deploy {
  include <abstractions/base>
  /usr/local/bin/armada-cm-deploy mr,
}
"""


def digest(lab, host):
    with open(os.path.join(PLAYS, "host_digest.py"), encoding="utf-8") as fh:
        script = fh.read()
    res = lab.ssh(host, "python3 -c %s ssh" % shlex.quote(script))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["digest"]


LOCK = "file:/run/armada-apparmor.lock"


def differences(before, after, ignore_dir_mtime=False):
    """Readable list of the entries that differ: 'KEY: BEFORE -> AFTER'.

    ``ignore_dir_mtime`` (after the REAL run) also ignores the mtime of the host-wide lock file: a real run
    takes the lock, which touches the file when it already exists (a run before this test, e.g. molecule's,
    created it). Its mode, owner, size and content still count; the check run is compared without this."""
    def norm(key, val):
        if ignore_dir_mtime and val and (key.startswith("dir:") or key == LOCK):
            return val.rsplit(" ", 1)[0]
        return val
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = norm(key, before.get(key)), norm(key, after.get(key))
        if a != b:
            out.append("%s: %s -> %s" % (key, a, b))
    return out


def run_playbook(lab, name, hosts, extra, cwd, check=False):
    """ansible-playbook in CWD (where the roles put controller-side files); returns the callback's records."""
    out = os.path.join(cwd, ".results.json")
    cmd = [ANSIBLE_PLAYBOOK, "-i", lab.inventory, "--limit", ",".join(hosts), "-e", json.dumps(extra),
           os.path.join(PLAYS, name)] + (["--check", "--diff"] if check else [])
    # PWD too: the roles resolve relative controller paths against $PWD (the shell's directory), which
    # subprocess's cwd= alone does not change
    env = dict(os.environ, PWD=cwd, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="5", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(PLAYS, "callback"),
               ANSIBLE_CALLBACKS_ENABLED="check_mode_results", ARMADA_CHECK_RESULTS=out)
    res = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, timeout=1500, check=False)
    if res.returncode != 0:
        pytest.fail("ansible-playbook %s%s failed (%d):\n%s" % (name, " --check" if check else "", res.returncode,
                                                                res.stdout[-8000:]))
    with open(out, encoding="utf-8") as fh:
        recs = json.load(fh)
    os.unlink(out)
    recs["output"] = res.stdout
    return recs


def segment_digests(recs, host):
    """{label: digest} from the digest plays of roles.yml, in run order."""
    out = {}
    for t in recs["tasks"]:
        if t["task"] == "Host-state digest" and t["host"] == host and t["status"] == "ok":
            d = json.loads(t["result"]["stdout"])
            out[d["label"]] = d["digest"]
    return out


def changed_tasks(recs, host, role):
    return [dict(t, task=t["task"].split(" : ", 1)[-1]) for t in recs["tasks"]
            if t["host"] == host and t["role"] == role and t["status"] == "ok" and t["result"].get("changed")]


def cleanup_command(orig):
    """Shell command removing all the test added, from the digest taken before it (ORIG)."""
    cmds = ["cd /"]
    for p in PROFILES:
        cmds.append("if grep -q '^%s ' /sys/kernel/security/apparmor/profiles; then printf %%s %s > "
                    "/sys/kernel/security/apparmor/.remove; fi" % (p, p))
        cmds.append("rm -f /etc/apparmor.d/%s /etc/apparmor.d/local/%s /etc/apparmor.d/disable/%s "
                    "/etc/apparmor.d/force-complain/%s" % (p, p, p, p))
    cmds.append("rm -rf /var/lib/armada-cm /var/backups/armada-cm /var/tmp/armada-cm "
                "/usr/local/bin/armada-cm-learn /usr/local/bin/armada-cm-update")
    # state a failed run may have left in the default locations (apparmor_* point elsewhere)
    for root in ("/var/backups/armada-apparmor", "/var/lib/armada-apparmor", "/run/armada-apparmor.lock"):
        if ("absent:" + root) in orig:
            cmds.append("rm -rf %s" % root)
    if ("dir:/var/backups/armada-apparmor") in orig:
        keep = {k.rsplit("/", 1)[1] for k in orig if k.startswith("file:/var/backups/armada-apparmor/")}
        cmds.append("for f in /var/backups/armada-apparmor/*; do case \"${f##*/}\" in %s) ;; *) rm -f \"$f\";; "
                    "esac; done" % ("|".join(sorted(shlex.quote(k) for k in keep)) or "''"))
    cmds.append("sysctl -q -w kernel.printk_ratelimit=%d" % int(orig["limit:printk_ratelimit"]))
    if "limit:audit_rate_limit" in orig:
        cmds.append("auditctl -r %d -b %d >/dev/null" % (int(orig["limit:audit_rate_limit"]),
                                                         int(orig["limit:audit_backlog_limit"])))
    return "; ".join(cmds)


@pytest.fixture(scope="module")
def hosts(lab):
    # one host keeps the CI cost down (TCG); the first auditd host is also the canary in make test's lab
    return [lab.first("auditd")]


@pytest.fixture(scope="module")
def runs(lab, hosts):
    """Setup, check run, real run, cleanup - once for the module; the tests read what was recorded."""
    started = time.monotonic()
    data = {"orig": {h: digest(lab, h) for h in hosts}, "seconds": {}}

    def lap(name):
        data["seconds"][name] = round(time.monotonic() - started - sum(data["seconds"].values()), 1)

    work = tempfile.mkdtemp(prefix="armada-check-mode-")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "armada-cm-deploy"), "w", encoding="utf-8") as fh:
            fh.write(DEPLOY_PROFILE)
        setup = run_playbook(lab, "setup.yml", hosts, {}, work)
        lap("setup")
        base = {t["host"]: t["result"]["id"] for t in setup["tasks"] if t["task"].startswith("Baseline snapshot")}
        extra = {
            "apparmor_state_dir": "/var/lib/armada-cm",
            "apparmor_backup_dir": "/var/backups/armada-cm",
            "apparmor_deploy_src_dir": src,
            "apparmor_learn_programs": [{"path": "/usr/local/bin/armada-cm-learn", "profile": "armada-cm-learn",
                                "exercise": "/usr/local/bin/armada-cm-learn /etc/hostname"
                                            " > /var/tmp/armada-cm/exercised"}],
            "apparmor_learn_cursor": "cm-learn",
            "apparmor_update_programs": [], "apparmor_update_profiles": ["armada-cm-update"],
            "apparmor_update_cursor": "cm-update",
            "apparmor_update_default": "allow",
            "apparmor_enforce_programs": [], "apparmor_enforce_profiles": ["armada-cm-enforce"],
            "apparmor_enforce_force": True,
            "apparmor_enforce_soak_seconds": 0,
        }
        data["before_check"] = {h: digest(lab, h) for h in hosts}
        # each host restores its own baseline snapshot (ids are timestamps, they differ per host)
        extra["apparmor_restore_id"] = "{{ cm_baseline[inventory_hostname] }}"
        extra["cm_baseline"] = base
        check_cwd = os.path.join(work, "check")
        os.makedirs(check_cwd)
        data["check"] = run_playbook(lab, "roles.yml", hosts, extra, check_cwd, check=True)
        data["check_cwd"] = sorted(os.listdir(check_cwd))
        lap("check run")
        data["after_check"] = {h: digest(lab, h) for h in hosts}
        real_cwd = os.path.join(work, "real")
        os.makedirs(real_cwd)
        data["real"] = run_playbook(lab, "roles.yml", hosts, extra, real_cwd)
        data["real_cwd"] = sorted(os.listdir(real_cwd))
        lap("real run")
        data["real_cwd_files"] = sorted(os.path.relpath(os.path.join(d, f), real_cwd)
                                        for d, _, fs in os.walk(real_cwd) for f in fs)
    finally:
        for h in hosts:
            res = lab.ssh(h, cleanup_command(data["orig"][h]))
            data.setdefault("cleanup", {})[h] = (res.returncode, res.stderr)
        data["final"] = {h: digest(lab, h) for h in hosts}
        shutil.rmtree(work, ignore_errors=True)
        lap("cleanup")
        print("\ntest_check_mode_lab: seconds per phase %s" % data["seconds"])
        if os.environ.get("ARMADA_CHECK_MODE_DUMP"):  # for debugging the assertions without a new run
            with open(os.environ["ARMADA_CHECK_MODE_DUMP"], "w", encoding="utf-8") as fh:
                json.dump(data, fh, default=str)
    return data


def test_check_run_leaves_every_host_identical(runs, hosts):
    for h in hosts:
        seg = segment_digests(runs["check"], h)
        assert list(seg) == ["start"] + SEGMENTS, list(seg)
        before = runs["before_check"][h]
        for label, d in seg.items():
            assert differences(before, d) == [], "%s: check mode changed the host by %s" % (h, label)
        assert differences(before, runs["after_check"][h]) == [], h


@pytest.mark.parametrize("role", ROLES)
def test_check_run_reports_what_the_role_would_change(runs, hosts, role):
    for h in hosts:
        changed = changed_tasks(runs["check"], h, role)
        assert changed, "%s: role %s reported no change in check mode" % (h, role)
        names = [t["task"] for t in changed]
        by_task = {t["task"]: t["result"] for t in changed}
        if role == "backup":
            assert "Snapshot the AppArmor policy and the loaded modes" in names
        elif role == "deploy":
            res = by_task["Deploy, validate and load the profiles"]
            assert [r["item"]["path"] for r in res["results"] if r["changed"]] == ["armada-cm-deploy"]
            assert any(r.get("diff") for r in res["results"]), "deploy --diff shows no diff"
        elif role == "learn":
            res = by_task["Profiles in complain mode - a minimal one (like aa-autodep) for programs without a profile"]
            assert [r["item"]["profile"] for r in res["results"] if r["changed"]] == ["armada-cm-learn"]
        elif role == "update":
            res = by_task["Write the rules into the profiles (snapshot first)"]
            texts = [a["text"] for r in res["results"] if r["changed"] for a in r.get("added", [])]
            assert any("/etc/hostname r" in t for t in texts), texts
        elif role == "enforce":
            res = by_task["Switch to enforce mode"]
            assert [r["item"]["profile"] for r in res["results"] if r["changed"]] == ["armada-cm-enforce"]
        elif role == "restore":
            res = by_task["Restore the snapshot (files byte-identical, verified by sha256, reloaded)"]
            assert {"armada-cm-update", "armada-cm-enforce"} <= set(res["plan"]["remove"]), res["plan"]


def test_check_run_writes_no_controller_file(runs):
    assert runs["check_cwd"] == []
    # the same playbook run for real writes them: the check above can see them
    assert "profiles/armada-cm-update" in runs["real_cwd_files"], runs["real_cwd_files"]
    assert [f for f in runs["real_cwd_files"] if re.match(r"apparmor-pending-[0-9]{8}T[0-9]{6}Z\.yml$", f)], \
        runs["real_cwd_files"]
    assert any(f.startswith("apparmor-enforce-report/") for f in runs["real_cwd_files"])
    for f in ("apparmor-report/index.html", "apparmor-report/report.json", "apparmor-report/positions.json"):
        assert f in runs["real_cwd_files"], runs["real_cwd_files"]


def _keys(diffs, prefix):
    return [d for d in diffs if d.startswith(prefix)]


def test_real_run_changes_what_the_digest_sees(runs, hosts):
    for h in hosts:
        seg = segment_digests(runs["real"], h)
        assert list(seg) == ["start"] + SEGMENTS, list(seg)
        assert differences(runs["after_check"][h], seg["start"]) == []
        labels = ["start"] + SEGMENTS
        diff = {lab_: differences(seg[labels[i - 1]], seg[lab_]) for i, lab_ in enumerate(labels) if i}
        # backup: a new archive + manifest in the backup dir, policy untouched
        assert len(_keys(diff["backup"], "file:/var/backups/armada-cm/")) >= 2, diff["backup"]
        assert not _keys(diff["backup"], "file:/etc/apparmor.d/"), diff["backup"]
        # deploy: the new file and its profile loaded in complain mode
        assert _keys(diff["deploy"], "file:/etc/apparmor.d/armada-cm-deploy: None -> f "), diff["deploy"]
        assert "loaded:armada-cm-deploy: None -> complain" in diff["deploy"]
        # learn: the minimal profile, loaded; learn.json, its cursor, the exercise ran
        pf = diff["profile_fleet"]
        assert "loaded:armada-cm-learn: None -> complain" in pf, pf
        for key in ("file:/etc/apparmor.d/armada-cm-learn: None", "file:/var/lib/armada-cm/learn.json: None",
                    "file:/var/tmp/armada-cm/exercised: None", "file:/var/lib/armada-cm/cursors/cm-learn"):
            assert _keys(pf, key), (key, pf)
        # update: the profile file and its loaded policy changed, events and convergence kept
        assert _keys(pf, "file:/etc/apparmor.d/armada-cm-update: f "), pf
        assert _keys(pf, "policy:armada-cm-update: "), pf
        assert _keys(pf, "file:/var/lib/armada-cm/events.json: None"), pf
        assert _keys(pf, "file:/var/lib/armada-cm/convergence.json: None"), pf
        # profile_fleet restores the limits learn lifted
        assert not _keys(pf, "limit:"), pf
        # every role's snapshots go to apparmor_backup_dir, none to the default directory
        for seg_name, seg_diff in diff.items():
            assert not _keys(seg_diff, "file:/var/backups/armada-apparmor/"), (seg_name, seg_diff)
        assert _keys(pf, "file:/var/backups/armada-cm/"), pf
        # enforce: the mode in the kernel
        assert "loaded:armada-cm-enforce: complain -> enforce" in diff["enforce"], diff["enforce"]
        # report: read-only on the host in a real run too (its position lives on the controller)
        assert diff["report"] == [], diff["report"]
        # restore: the four profiles gone from files and kernel
        for p in PROFILES:
            assert _keys(diff["restore"], "file:/etc/apparmor.d/%s: f " % p), (p, diff["restore"])
            assert _keys(diff["restore"], "loaded:%s: " % p), (p, diff["restore"])


def test_hosts_left_as_found(runs, hosts):
    for h in hosts:
        assert runs["cleanup"][h][0] == 0, runs["cleanup"][h]
        assert differences(runs["orig"][h], runs["final"][h], ignore_dir_mtime=True) == [], h
