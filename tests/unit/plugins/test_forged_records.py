"""Forged records through the public interfaces: the ``denials`` module and the ``to_rules`` / ``soak_verdict``
filters in real ansible-playbook runs (issue 12, item 4).

The journal is written by systemd-journal-remote from an export stream, so its entries carry exactly the
trusted fields journald gives the senders named: the kernel (``_TRANSPORT=kernel``), the system bus daemon
running as root (``_UID=0 _COMM=dbus-daemon``) and ``logger -t dbus-daemon`` run by uid 65534. The syslog file
holds what rsyslog writes for ``logger -t kernel ...``.
"""
import os

import pytest
from aa_playbook import run_tasks, write_journal

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT = "d" * 32
FILE_REC = ('audit: type=1400 audit(1700000000.100:9): apparmor="DENIED" operation="open" class="file" '
            'profile="/usr/bin/x" name="/etc/shadow" pid=5 comm="x" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
DBUS_REC = ('apparmor="DENIED" operation="dbus_method_call"  bus="system" path="/org/freedesktop/DBus" '
            'interface="org.freedesktop.DBus" member="Hello" mask="send" name="org.freedesktop.DBus" pid=7 '
            'label="/usr/bin/x" peer_label="unconfined"')


def entry(n, message, **fields):
    e = {"__REALTIME_TIMESTAMP": "17000000%02d000000" % n, "__MONOTONIC_TIMESTAMP": str(5 + n), "_BOOT_ID": BOOT,
         "MESSAGE": message}
    e.update(fields)
    return e




@pytest.mark.skipif(not os.path.exists(JOURNAL_REMOTE),
                    reason="systemd-journal-remote (apt package systemd-journal-remote) writes the test journal")
def test_denials_module_marks_every_event_with_its_origin(tmp_path):
    jdir = str(tmp_path / "journal")
    write_journal(jdir, [
        entry(1, FILE_REC, _TRANSPORT="kernel", SYSLOG_IDENTIFIER="kernel"),
        entry(2, DBUS_REC, _TRANSPORT="syslog", SYSLOG_IDENTIFIER="dbus-daemon", _UID="0", _GID="0",
              _COMM="dbus-daemon", _PID="300", _EXE="/usr/bin/dbus-daemon"),
        entry(3, DBUS_REC, _TRANSPORT="syslog", SYSLOG_IDENTIFIER="dbus-daemon", _UID="65534", _GID="65534",
              _COMM="logger", _PID="4242", _EXE="/usr/bin/logger"),
    ])
    syslog = tmp_path / "syslog"
    syslog.write_text("Nov 25 10:00:01 web1 kernel: [   12.000000] %s\n" % FILE_REC)
    args = {"journal_directory": jdir, "skip_covered": False}
    journal_only, both, syslog_only = run_tasks(tmp_path, [
        {"armada.apparmor.denials": dict(args, sources=["journal"])},
        {"armada.apparmor.denials": dict(args, sources=["journal", str(syslog)])},
        {"armada.apparmor.denials": dict(args, sources=[str(syslog)])},
    ])
    for r in (journal_only, both, syslog_only):
        assert not r.get("failed"), r.get("msg")
    got = sorted((e["kind"], e["sources"], e["forgeable"], e["count"]) for e in both["events"])
    assert got == [("dbus", ["journal-dbus"], False, 1), ("dbus", ["journal-unverified"], True, 1),
                   ("file", ["journal-kernel"], False, 1), ("file", ["syslog"], True, 1)]
    assert [(s["origin"], s["forgeable"]) for s in both["sources"]] == [("journal", False), ("syslog", True)]
    assert both["source_trust"] == {"trusted": ["journal:all:%s" % jdir], "forgeable": ["file:%s" % syslog],
                                    "only_forgeable": False}
    assert journal_only["source_trust"]["only_forgeable"] is False
    assert syslog_only["source_trust"] == {"trusted": [], "forgeable": ["file:%s" % syslog], "only_forgeable": True}


def fev(forgeable, path="/etc/x"):
    return {"kind": "file", "profile": "/usr/bin/x", "parent": "/usr/bin/x", "host": "h1", "path": path,
            "mask": {"requested": "r", "denied": "r"}, "owner": False, "operations": ["open"], "modes": ["DENIED"],
            "count": 1, "pids": [], "comms": [], "first_seen": 1.0, "last_seen": 1.0,
            "sources": ["syslog" if forgeable else "auditd"], "forgeable": forgeable}


def test_to_rules_and_soak_verdict_filters(tmp_path):
    events = [fev(True, "/etc/forged"), fev(False, "/etc/real")]
    # learning reads complain-mode (ALLOWED) records; the soak reads DENIED ones (an enforce-mode denial is never
    # default-allowed anyway, issue 17)
    learned = [dict(e, modes=["ALLOWED"]) for e in events]
    rules, pending, rollback, stop, go_on = run_tasks(tmp_path, [
        {"ansible.builtin.debug": {"msg": "{{ evs | armada.apparmor.to_rules(default='allow') }}"},
         "vars": {"evs": learned}},
        {"ansible.builtin.debug": {"msg": "{{ evs | armada.apparmor.to_rules(default='allow') "
                                          "| armada.apparmor.pending_answers }}"}, "vars": {"evs": learned}},
        {"ansible.builtin.debug": {"msg": "{{ {'events': evs, 'source_trust': {'only_forgeable': false}} "
                                          "| armada.apparmor.soak_verdict }}"}, "vars": {"evs": events}},
        {"ansible.builtin.debug": {"msg": "{{ {'events': evs[:1], 'source_trust': {'only_forgeable': true}} "
                                          "| armada.apparmor.soak_verdict }}"}, "vars": {"evs": events}},
        {"ansible.builtin.debug": {"msg": "{{ {'events': evs[:1], 'source_trust': {'only_forgeable': false}} "
                                          "| armada.apparmor.soak_verdict }}"}, "vars": {"evs": events}},
    ])
    entry = rules["msg"]["profiles"]["/usr/bin/x"]
    assert [r["text"] for r in entry["rules"]] == ["/etc/real r,"]
    assert [(p["path"], p["forgeable"]) for p in entry["pending"]] == [("/etc/forged", True)]
    assert "forgeable: read only from syslog" in entry["pending"][0]["reason"]
    assert "forgeable: true" in pending["msg"] and "/etc/forged" in pending["msg"]
    assert rollback["msg"]["action"] == "rollback"
    assert stop["msg"]["action"] == "stop"
    assert go_on["msg"]["action"] == "continue" and go_on["msg"]["unverified"][0]["path"] == "/etc/forged"
