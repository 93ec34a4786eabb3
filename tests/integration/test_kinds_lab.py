"""Every rule kind the lab's 6.1 kernel mediates, end to end, on both host flavours (auditd / kernel log).

One playbook run per host (tests/integration/kinds_playbooks/kinds.yml; tasks cost ~3 s per host under TCG,
so every kind is batched into ONE profile and ONE program run per phase): load `armada-kinds` in complain
mode with armada.apparmor.profile, run tests/integration/kinds_playbooks/armada-kinds (file incl. owner,
link and lock, ix and Px exec transitions, capabilities, inet stream and dgram, ptrace read/trace, signal,
mount / remount / a second mount / pivot_root / umount, change_profile), read it with
armada.apparmor.denials since a cursor, turn it into rules with the to_rules filter ("allow" answers),
apply them with armada.apparmor.rules, enforce with armada.apparmor.profile and run the program again:
every step must work and the kernel must write no record for it, while the accesses outside the profile
are DENIED with an audit stamp later than the enforce load.

Expectations come from AppArmor's documented behaviour and record format (apparmor.d(5), the kernel's
audit fields, libapparmor's test_multi corpus), from what the program does, and from the kernel's own
records read raw (grep of audit.log / dmesg in the playbook) - never from the code under test:
- complain mode logs each access the profile lacks as apparmor="ALLOWED" and lets it happen; an exec
  without a rule runs in a learning child `PROFILE//null-PROGRAM` (complain);
- enforce mode: `ix` keeps the caller's profile, `Px` switches to the profile attached to the program,
  `change_profile -> X` lets a task move to X; an access no rule allows fails with EACCES (EPERM for
  capabilities) and is logged as apparmor="DENIED" unless a `deny` rule without `audit` quiets it;
- on this kernel AF_UNIX has no fine-grained mediation and apparmor_parser 3.0.8 leaves the coarse
  `network unix` family allowed unless a rule denies it, so an allowed unix socket is never logged (not
  learnable); an `audit deny network unix dgram,` rule makes the dgram pair fail with a DENIED record.
"""
import json
import os
import re
import time
from typing import Dict, List, Tuple

import pytest

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOK = os.path.join(HERE, "kinds_playbooks", "kinds.yml")
STAMP = re.compile(r"audit\((\d+\.\d+):\d+\)")
FLAVOURS = [("auditd", "audit.log"), ("kernlog", "dmesg")]
PROFILE = "armada-kinds"
PEER = "armada-kinds-peer"

# Steps of the program whose success value is simply "ok" in both runs.
PLAIN_STEPS = ["file", "inet_stream", "inet_dgram", "unix_stream", "ptrace_trace", "signal", "mounts",
               "change_profile"]

# (what, predicate over one raw record): at least one ALLOWED record of the learning run per item.
# Written from the kernel's record fields (operation=, capname=, family=/sock_type=, requested_mask=, peer=).
LEARN_RECORDS = [
    ("file read, owned", lambda r: 'operation="open"' in r and 'name="/etc/armada-kinds/input.conf"' in r
     and 'requested_mask="r"' in r and "fsuid=0 ouid=0" in r),
    ("file create", lambda r: 'operation="mknod"' in r and 'name="/var/tmp/armada-kinds/out.txt"' in r),
    ("file lock", lambda r: 'operation="file_lock"' in r and 'k"' in r),
    ("file append", lambda r: 'name="/var/tmp/armada-kinds/log.txt"' in r and 'requested_mask="ac"' in r),
    ("file link", lambda r: 'operation="link"' in r and 'target="/var/tmp/armada-kinds/out.txt"' in r),
    ("capability chown", lambda r: 'operation="capable"' in r and 'capname="chown"' in r),
    ("capability net_bind_service", lambda r: 'capname="net_bind_service"' in r),
    ("capability sys_admin", lambda r: 'capname="sys_admin"' in r),
    ("capability sys_chroot", lambda r: 'capname="sys_chroot"' in r),
    ("network inet stream", lambda r: 'family="inet" sock_type="stream"' in r and 'operation="create"' in r),
    ("network inet stream bind", lambda r: 'family="inet" sock_type="stream"' in r and 'operation="bind"' in r),
    ("network inet dgram", lambda r: 'family="inet" sock_type="dgram"' in r and 'operation="sendmsg"' in r),
    ("exec ix candidate", lambda r: 'operation="exec"' in r and 'name="/usr/bin/cat"' in r),
    ("exec Px candidate", lambda r: 'operation="exec"' in r and 'name="/usr/local/bin/armada-kinds-peer"' in r),
    ("ptrace read", lambda r: 'operation="ptrace"' in r and 'requested_mask="read"' in r
     and 'peer="unconfined"' in r),
    ("ptrace trace", lambda r: 'operation="ptrace"' in r and 'requested_mask="trace"' in r),
    ("signal", lambda r: 'operation="signal"' in r and "signal=term" in r and 'peer="unconfined"' in r),
    ("mount", lambda r: 'operation="mount"' in r and 'fstype="tmpfs"' in r
     and 'name="/run/armada-kinds/mnt/"' in r),
    ("remount", lambda r: 'operation="mount"' in r and "remount" in r),
    ("pivot_root", lambda r: 'operation="pivotroot"' in r and 'name="/run/armada-kinds/mnt/new/"' in r),
    ("umount", lambda r: 'operation="umount"' in r),
    ("change_profile", lambda r: 'operation="change_profile"' in r and 'target="armada-kinds-peer"' in r),
]

# Event kinds (docs/events.md) the learning run must produce through armada.apparmor.denials.
LEARN_KINDS = {"file", "exec", "capability", "network", "ptrace", "signal", "mount", "remount", "pivot_root",
               "umount", "change_profile"}

# Rules the learned profile must hold, in apparmor.d(5) syntax for ABI 3.0 (the answers: ix for cat, Px for the
# peer, /proc/*/attr/current for the pid paths; everything else allowed as logged).
LEARN_RULES = [
    "capability chown,", "capability net_bind_service,", "capability sys_admin,", "capability sys_chroot,",
    "network inet stream,", "network inet dgram,",
    "/usr/bin/cat mrix,", "/usr/local/bin/armada-kinds-peer Px,",
    "owner /etc/armada-kinds/input.conf r,", "owner /proc/*/attr/current rw,",
    "signal send set=term peer=unconfined,", "ptrace read peer=unconfined,", "ptrace trace peer=unconfined,",
    "mount fstype=tmpfs armada-kinds -> /run/armada-kinds/mnt/,",
    "mount fstype=tmpfs armada-kinds -> /run/armada-kinds/mnt/new/,",
    "pivot_root oldroot=/run/armada-kinds/mnt/new/old/ /run/armada-kinds/mnt/new/,",
    "umount /run/armada-kinds/mnt/old/,",
    "change_profile -> armada-kinds-peer,",
]


def parse_run(text: str) -> Dict:
    """The run task's output: T=start, PROGRAM=json, SOURCE=, PROFILES=, STDERR= and the raw records."""
    out = {"records": []}  # type: Dict
    # split on newlines only: auditd's enriched records hold a \x1d separator str.splitlines() would cut at
    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key in ("T", "PROGRAM", "SOURCE", "PROFILES", "STDERR"):
            out[key] = value
        elif "apparmor=" in line:
            out["records"].append(line)
    out["T"] = float(out["T"])
    out["PROGRAM"] = json.loads(out["PROGRAM"])
    return out


def after(run: Dict) -> List[Tuple[float, str]]:
    """Records of our profiles stamped after the run started (earlier runs on a reused lab are older)."""
    res = []
    for rec in run["records"]:
        m = STAMP.search(rec)
        assert m, "a record without an audit(...) stamp: %s" % rec
        if float(m.group(1)) >= run["T"] - 0.001 and re.search(r'profile="%s[-/"]' % PROFILE, rec):
            res.append((float(m.group(1)), rec))
    return res


@pytest.fixture(scope="module")
def kinds(lab):
    hosts = sorted({lab.first("auditd"), lab.first("kernlog")})
    t0 = time.time()
    res = lab.playbook(PLAYBOOK, limit=hosts)
    print("\nkinds playbook on %s: %.0f s" % (", ".join(hosts), time.time() - t0))
    for r in res.values():
        r["run1"] = parse_run(r["run1"])
        r["run2"] = parse_run(r["run2"])
    return res


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_complain_run_logs_every_kind(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    assert res["complain"]["changed"] and res["complain"]["mode"] == "complain", res["complain"]
    run = res["run1"]
    assert run["SOURCE"] == source
    prog = run["PROGRAM"]
    for name in PLAIN_STEPS:
        assert prog[name] == "ok", (name, prog, run.get("STDERR"))
    assert prog["exec_ix"] == "%s//null-/usr/bin/cat (complain)" % PROFILE, prog
    assert prog["exec_px"] == "%s//null-/usr/local/bin/%s (complain)" % (PROFILE, PEER), prog
    assert prog["ptrace_read"] == "/usr/bin/sleep", prog
    recs = [r for _, r in after(run)]
    missing = [what for what, pred in LEARN_RECORDS if not any(pred(r) for r in recs)]
    assert not missing, "no ALLOWED record for %s; records: %s" % (missing, recs)
    assert all('apparmor="ALLOWED"' in r for r in recs), [r for r in recs if 'apparmor="ALLOWED"' not in r]
    assert not [r for r in recs if 'family="unix"' in r], "an allowed AF_UNIX socket is not logged on 6.1"


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_denials_since_cursor_returns_the_run(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    run = res["run1"]
    events = res["learned_events"]
    assert res["cursor_start"].get("committed"), res["cursor_start"]
    assert {e["kind"] for e in events} >= LEARN_KINDS, sorted({e["kind"] for e in events})
    assert all(e["parent"] == PROFILE for e in events), [e["profile"] for e in events if e["parent"] != PROFILE]
    assert all(e["first_seen"] >= run["T"] - 0.001 for e in events), "the cursor let older records through"
    assert all(e["modes"] == ["ALLOWED"] for e in events)
    # nothing lost between the log and the module: every raw record of the run was read, and each distinct
    # access is either returned or left out because the profile on disk already covers it (skip_covered: the
    # learning children's library reads are in abstractions/base once folded into the parent)
    stats, covered = res["learned_stats"], res["learned_covered"]
    assert stats["records"] == len(after(run)), (stats, len(after(run)))
    assert covered["active"] and covered["deny"] == 0, covered
    assert len(events) + covered["allow"] == stats["events"], (len(events), covered, stats)


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_rules_learned_for_every_kind(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    learned = res["learned"]
    entry = learned["profiles"][PROFILE]
    assert not entry["pending"] and not entry["unsupported"] and not learned["errors"], entry
    texts = {r["text"] for r in entry["rules"]}
    assert [t for t in LEARN_RULES if t not in texts] == [], sorted(texts)
    remount = [t for t in texts if t.startswith("mount options=") and t.endswith(" -> /run/armada-kinds/mnt/,")]
    assert len(remount) == 1, texts
    flags = {f.strip() for f in re.match(r"mount options=\((.*)\) ->", remount[0]).group(1).split(",")}
    assert flags == {"remount", "nosuid", "rw"}, remount   # MS_REMOUNT | MS_NOSUID, not read-only
    assert any(t.startswith("owner /var/tmp/armada-kinds/out.txt ") and "k" in t.split()[-1] for t in texts)
    assert any(t.startswith("owner /var/tmp/armada-kinds/out.link ") and "l" in t.split()[-1] for t in texts)


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_rules_applied_and_enforced(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    applied, enforced = res["applied"], res["enforced"]
    assert applied["changed"] and [k for k in applied["kernel"] if not k["skipped"]], applied
    added = {a["text"] for a in applied["added"]}
    assert "audit deny network unix dgram," in added
    assert [t for t in LEARN_RULES if t not in added] == [], sorted(added)
    assert enforced["changed"] and enforced["mode"] == "enforce", enforced
    loaded = res["run2"]["PROFILES"].split(";")
    assert "%s (enforce)" % PROFILE in loaded and "%s (enforce)" % PEER in loaded, loaded
    body = res["profile_text"]
    assert all(t in body for t in LEARN_RULES), body


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_enforced_run_works_and_only_outside_accesses_are_denied(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    run = res["run2"]
    assert run["SOURCE"] == source
    prog = run["PROGRAM"]
    for name in PLAIN_STEPS:
        assert prog[name] == "ok", (name, prog, run.get("STDERR"))
    assert prog["exec_ix"] == "%s (enforce)" % PROFILE, prog          # ix: cat stays in the caller's profile
    assert prog["exec_px"] == "%s (enforce)" % PEER, prog             # Px: the profile attached to the program
    assert prog["ptrace_read"] == "/usr/bin/sleep", prog
    assert prog["outside"].startswith("EACCES"), prog
    assert prog["outside_unix_dgram"].startswith("EACCES"), prog
    recs = after(run)
    assert recs, "no record at all after the enforce load at %.3f" % run["T"]
    assert all(stamp > run["T"] - 0.001 for stamp, _ in recs)
    texts = [r for _, r in recs]
    not_denied = [r for r in texts if 'apparmor="DENIED"' not in r]
    assert not not_denied, "enforce mode logged other records: %s" % not_denied
    outside = [r for r in texts if 'name="/etc/armada-kinds/outside.txt"' in r]
    unix = [r for r in texts if 'family="unix"' in r]
    assert outside and unix, texts
    for field in ('operation="open"', 'profile="armada-kinds"', 'requested_mask="r"', 'denied_mask="r"'):
        assert field in outside[-1], (field, outside[-1])
    for field in ('operation="create"', 'sock_type="dgram"', 'denied_mask="create"'):
        assert field in unix[-1], (field, unix[-1])
    others = [r for r in texts if r not in outside + unix]
    assert not others, "the learned rules left these accesses denied: %s" % others


@pytest.mark.parametrize("flavour, source", FLAVOURS)
def test_denials_after_enforce_are_exactly_the_outside_accesses(lab, kinds, flavour, source):
    res = kinds[lab.first(flavour)]
    events = res["enforced_events"]
    got = sorted((e["kind"], e.get("path") or e.get("sock_type")) for e in events)
    assert got == [("file", "/etc/armada-kinds/outside.txt"), ("unix", "dgram")], events
    assert all(e["modes"] == ["DENIED"] and e["first_seen"] >= res["run2"]["T"] - 0.001 for e in events), events
