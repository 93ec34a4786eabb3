"""Privacy: raw log text reaches the controller only when asked for (``raw_samples``), and the pending
answers file holds only what a review needs (issue 8).

The fixture log carries user data in places a review does not need: the audit records around an AVC
(SYSCALL ``comm``/``exe``, PROCTITLE with a password on a command line, CWD, PATH), auditd's ENRICHED
tail (user names), the dbus USER_AVC wrapper (``hostname``, ``terminal``), a syslog header's host name,
and an AppArmor line too damaged to read (its text would only travel as a skip sample). Each secret is
a unique marker string; the test searches the complete module result (every key, as JSON) for them.
The positive control (``raw_samples: true``) proves the search would see them.
"""
import json

from aa_playbook import run_tasks

SECRETS = {
    "syscall comm": "secret_syscall_comm",
    "syscall exe": "/home/privuser/bin/secret-exe",
    "proctitle password": "HUNTER2SECRET",
    "cwd": "private-cwd-dir",
    "path record": "diary-path-record",
    "enriched user name": "privuser_enriched",
    "dbus hostname": "secret-dbus-hostname",
    "dbus terminal": "secret-tty-name",
    "syslog header host": "secret-syslog-host",
    "unreadable line": "HUNTER3INBADLINE",
}
# the ones that sit on AppArmor record lines (so raw_samples=true must show them: the positive control)
ON_RECORD_LINES = ("enriched user name", "dbus hostname", "dbus terminal", "unreadable line", "syslog header host")

AUDIT = (
    'type=SYSCALL msg=audit(1700000000.100:42): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c '
    'ppid=1 pid=811 auid=1000 uid=1000 gid=1000 comm="secret_syscall_comm" exe="/home/privuser/bin/secret-exe" '
    'subj=unconfined key=(null)\n'
    'type=PROCTITLE msg=audit(1700000000.100:42): proctitle=%s\n'
    'type=CWD msg=audit(1700000000.100:42): cwd="/home/privuser/private-cwd-dir"\n'
    'type=PATH msg=audit(1700000000.100:42): item=0 name="/home/privuser/diary-path-record" inode=1 dev=fd:00 '
    'mode=0100600 ouid=1000 ogid=1000 rdev=00:00 nametype=NORMAL\n'
    'type=AVC msg=audit(1700000000.100:42): apparmor="DENIED" operation="open" class="file" profile="/usr/bin/x" '
    'name="/etc/shadow" pid=811 comm="x" requested_mask="r" denied_mask="r" fsuid=1000 ouid=0'
    '\x1dFSUID="privuser_enriched" OUID="root"\n'
    "type=USER_AVC msg=audit(1700000000.200:43): pid=700 uid=103 auid=4294967295 ses=4294967295 "
    "subj=unconfined msg='apparmor=\"DENIED\" operation=\"dbus_method_call\" bus=\"system\" path=\"/org/x\" "
    "interface=\"org.x.I\" member=\"M\" mask=\"send\" name=\"org.x\" pid=811 label=\"/usr/bin/x\" peer_pid=1 "
    "peer_label=\"unconfined\" exe=\"/usr/bin/dbus-daemon\" sauid=103 hostname=secret-dbus-hostname "
    "addr=? terminal=secret-tty-name'\n"
    'type=AVC msg=audit(1700000000.300:44): apparmor="DENIED" operation="open" profile="/usr/bin/x" '
    'name="/tmp/HUNTER3INBADLINE\n'
) % b"mysql -pHUNTER2SECRET".hex().upper()
KERN = ('Nov 25 10:00:00 secret-syslog-host kernel: [   12.345678] audit: type=1400 audit(1700000000.400:45): '
        'apparmor="DENIED" operation="capable" class="cap" profile="/usr/bin/x" pid=811 comm="x" capability=12 '
        'capname="net_admin"\n')


def _logs(tmp_path):
    (tmp_path / "audit.log").write_text(AUDIT)
    (tmp_path / "kern.log").write_text(KERN)
    return [str(tmp_path / "audit.log"), str(tmp_path / "kern.log")]


def _found(result):
    text = json.dumps(result, ensure_ascii=False)
    return {what for what, marker in SECRETS.items() if marker in text}


def test_no_raw_text_without_raw_samples_and_pending_file_is_minimal(tmp_path):
    sources = _logs(tmp_path)
    pending = ("{{ r0.events | armada.apparmor.to_rules([]) | armada.apparmor.pending_answers("
               "abstractions_dir='') }}")
    pending_list = ("{{ r1.events | armada.apparmor.to_rules([]) | armada.apparmor.pending_answers("
                    "abstractions_dir='', format='list') }}")
    r = run_tasks(tmp_path, [
        {"armada.apparmor.denials": {"sources": sources, "host": "web1", "skip_covered": False}},
        {"armada.apparmor.denials": {"sources": sources, "host": "web1", "skip_covered": False,
                                     "raw_samples": True}},
        {"ansible.builtin.set_fact": {"pending_text": pending}},
        {"ansible.builtin.set_fact": {"pending_entries": pending_list}},
    ], name="privacy")
    plain, raw = r[0], r[1]
    assert not plain.get("failed") and not raw.get("failed"), (plain.get("msg"), raw.get("msg"))
    # the records themselves were read (otherwise "no secret" would prove nothing)
    kinds = sorted(e["kind"] for e in plain["events"])
    assert kinds == ["capability", "dbus", "file"], kinds
    assert plain["stats"]["skipped"] == {"truncated": 1}
    # nothing but parsed fields left the host
    assert _found(plain) == set(), "user data reached the controller without raw_samples"
    assert all("raw_sample" not in e for e in plain["events"])
    assert plain["stats"]["samples"] == {}
    # positive control: with raw_samples the same search sees the raw text of the AppArmor lines
    seen = _found(raw)
    assert set(ON_RECORD_LINES) <= seen, seen
    # ...and still never the non-AppArmor records around them (they are not even kept as samples)
    assert not seen & {"syscall comm", "syscall exe", "proctitle password", "cwd", "path record"}

    # the pending file: only answer-schema keys, the match fields, suggestions, hosts and counts
    text = r[2]["ansible_facts"]["pending_text"]
    entries = r[3]["ansible_facts"]["pending_entries"]
    assert _found(text) == set() and _found(entries) == set(), "user data in the pending file"
    assert "raw_sample" not in text and "811" not in text, "pids or raw lines in the pending file"
    # issue 14 added, deliberately, what a reviewer needs to judge a question: the rule an allow writes, DENIED
    # or ALLOWED, first/last seen and the program: the AVC's own comm= (the task name of the process, what
    # aa-logprof shows too) - never the SYSCALL record's comm/exe or the command line (docs/security.md).
    allowed = {"profile", "match", "answer", "owner", "suggestions", "hosts", "counts", "reason", "id", "rule",
               "logged", "comm", "first_seen", "last_seen",
               # forgeable/sources: the fixture is a plain file (origin syslog): its events are marked forgeable,
               # with the origin names (a fixed vocabulary, no log text)
               "forgeable", "sources",
               "possible_intrusion"}  # engine flag for records DENIED by an enforcing profile
    assert len(entries) == 3
    for entry in entries:
        assert set(entry) <= allowed, set(entry) - allowed
        assert entry["answer"] == "pending" and entry["hosts"] == ["web1"]
        assert "comms" not in entry["match"] and "pids" not in entry["match"]
    assert sorted(str(e.get("comm")) for e in entries) == ["None", "['x']", "['x']"]  # the USER_AVC has no comm=
