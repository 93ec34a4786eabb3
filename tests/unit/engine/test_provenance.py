"""Forged records (issue 12, item 4): every event says where it was read and whether a local user could forge it.

The forged inputs are what ``logger`` produces: a journal entry whose trusted ``_`` fields are those journald
adds for a ``logger -t dbus-daemon`` run by uid 65534 (``_TRANSPORT=syslog``, ``_COMM=logger``), and a syslog
file line ``HOST kernel: audit: ...`` / ``HOST dbus-daemon[1]: ...`` as rsyslog writes what arrives on /dev/log.
"""
import json

import pytest
from fuzz_support import EXAMPLES, bump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import (
    answers,
    events,
    fleet,
    logsources,
    provenance,
    suggest,
)
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

KERNEL_MSG = ('audit: type=1400 audit(1700000000.100:42): apparmor="DENIED" operation="open" class="file" '
              'profile="/usr/bin/x" name="/etc/shadow" pid=811 comm="x" requested_mask="r" denied_mask="r" '
              'fsuid=0 ouid=0')
AUDIT_LINE = ('type=AVC msg=audit(1700000000.100:42): apparmor="DENIED" operation="open" class="file" '
              'profile="/usr/bin/x" name="/etc/shadow" pid=811 comm="x" requested_mask="r" denied_mask="r" '
              'fsuid=0 ouid=0')
DBUS_MSG = ('apparmor="DENIED" operation="dbus_method_call" bus="system" path="/org/x" interface="org.x.I" '
            'member="M" mask="send" name="org.x" pid=900 label="/usr/bin/x" peer_pid=1 peer_label="unconfined"')
BUS_UID = 101
UIDS = (0, BUS_UID)


def jline(message, **fields):
    obj = {"MESSAGE": message, "__REALTIME_TIMESTAMP": "1700000000100000", "__CURSOR": "s=1"}
    obj.update(fields)
    return (json.dumps(obj) + "\n").encode()


def read_json(*lines, origin="journal"):
    reader = LogReader(host="h", dbus_uids=UIDS)
    reader.feed(b"".join(lines), "journal:all", origin=origin)
    return reader.result()["events"]


LOGGER_DBUS = dict(_TRANSPORT="syslog", _UID="65534", _GID="65534", _COMM="logger", _PID="4242",
                   SYSLOG_IDENTIFIER="dbus-daemon", _EXE="/usr/bin/logger")
BUS_DBUS = dict(_TRANSPORT="syslog", _UID=str(BUS_UID), _COMM="dbus-daemon", _PID="300",
                SYSLOG_IDENTIFIER="dbus-daemon", _EXE="/usr/bin/dbus-daemon")


@pytest.mark.parametrize("fields, origin", [
    ({"_TRANSPORT": "kernel"}, "journal-kernel"),
    ({"_TRANSPORT": "audit"}, "journal-audit"),
    (BUS_DBUS, "journal-dbus"),
    (dict(BUS_DBUS, _UID="0", _COMM="dbus-broker"), "journal-dbus"),
    (LOGGER_DBUS, "journal-unverified"),                          # logger -t dbus-daemon
    (dict(LOGGER_DBUS, _COMM="dbus-daemon"), "journal-unverified"),  # prctl(PR_SET_NAME): still uid 65534
    (dict(BUS_DBUS, _UID="1000"), "journal-unverified"),           # a user's session bus: the user owns it
    (dict(BUS_DBUS, _PID=None), "journal-unverified"),             # no _PID: journald did not vouch for a sender
    ({"_TRANSPORT": "stdout", "_UID": "0", "_COMM": "dbus-daemon", "_PID": "1"}, "journal-unverified"),
    ({"SYSLOG_IDENTIFIER": "kernel"}, "journal-unverified"),        # no trusted field at all (hand-made JSON)
    ({"_TRANSPORT": ["kernel", "syslog"]}, "journal-unverified"),   # a repeated field is not journald's
])
def test_journal_origin_from_trusted_fields_only(fields, origin):
    fields = {k: v for k, v in fields.items() if v is not None}
    assert provenance.journal_origin(fields, UIDS) == origin
    # the same decision for -o export fields (bytes values)
    as_bytes = {k: (v.encode() if isinstance(v, str) else v) for k, v in fields.items()}
    assert provenance.journal_origin(as_bytes, UIDS) == origin


def test_journal_json_forged_dbus_record_is_marked_and_kept_apart_from_the_real_one():
    evs = read_json(jline(DBUS_MSG, **BUS_DBUS), jline(DBUS_MSG, **LOGGER_DBUS), jline(DBUS_MSG, **LOGGER_DBUS))
    assert len(evs) == 2
    real = [e for e in evs if not e["forgeable"]][0]
    forged = [e for e in evs if e["forgeable"]][0]
    assert real["sources"] == ["journal-dbus"] and real["count"] == 1
    assert forged["sources"] == ["journal-unverified"] and forged["count"] == 2
    assert real["id"] != forged["id"]
    # the trusted event's id is the one it always had: the identity without any marker
    unmarked = {k: v for k, v in real.items() if k not in ("sources", "forgeable")}
    assert real["id"] == events.event_id(events.identity(unmarked))


def test_journal_json_kernel_transport_is_trusted_and_a_syslog_kernel_tag_is_not():
    evs = read_json(jline(KERNEL_MSG, _TRANSPORT="kernel"),
                    jline(KERNEL_MSG, _TRANSPORT="syslog", _UID="1000", _COMM="logger", _PID="5",
                          SYSLOG_IDENTIFIER="kernel"))
    assert sorted((e["sources"][0], e["forgeable"], e["count"]) for e in evs) == [
        ("journal-kernel", False, 1), ("journal-unverified", True, 1)]


def test_a_dbus_daemon_vouches_for_dbus_records_only():
    evs = read_json(jline(KERNEL_MSG, **BUS_DBUS))
    assert [(e["kind"], e["sources"], e["forgeable"]) for e in evs] == [("file", ["journal-unverified"], True)]


def test_journal_export_with_and_without_trusted_fields():
    def entry(message, fields):
        out = b"".join(("%s=%s\n" % (k, v)).encode() for k, v in fields.items())
        return b"__CURSOR=s=1\n__REALTIME_TIMESTAMP=1700000000100000\n" + out + b"MESSAGE=" + message.encode() + b"\n\n"

    reader = LogReader(host="h", dbus_uids=UIDS)
    reader.feed_journal_export(entry(DBUS_MSG, BUS_DBUS) + entry(DBUS_MSG, LOGGER_DBUS)
                               + entry(KERNEL_MSG, {"_TRANSPORT": "kernel"}) + entry(KERNEL_MSG, {}))
    got = sorted((e["kind"], e["sources"][0], e["forgeable"]) for e in reader.result()["events"])
    assert got == [("dbus", "journal-dbus", False), ("dbus", "journal-unverified", True),
                   ("file", "journal-kernel", False), ("file", "journal-unverified", True)]


def test_syslog_lines_with_forged_tags_are_forgeable_and_auditd_lines_are_not():
    forged = ("Nov 25 10:00:01 web1 kernel: [  12.345678] %s\n"
              "Nov 25 10:00:02 web1 dbus-daemon[123]: %s\n" % (KERNEL_MSG, DBUS_MSG)).encode()
    reader = LogReader(host="h")
    reader.feed(forged, "file:/var/log/syslog", origin="syslog")
    reader.feed((AUDIT_LINE + "\n").encode(), "file:/var/log/audit/audit.log", origin="auditd")
    evs = reader.result()["events"]
    got = sorted((e["kind"], tuple(e["sources"]), e["forgeable"], e["count"]) for e in evs)
    assert got == [("dbus", ("syslog",), True, 1), ("file", ("auditd",), False, 1), ("file", ("syslog",), True, 1)]
    files = [e for e in evs if e["kind"] == "file"]
    assert files[0]["id"] != files[1]["id"]  # the forged sighting neither hides nor joins the real one


def test_trusted_origins_fold_and_union_their_sources():
    reader = LogReader(host="h")
    reader.feed((AUDIT_LINE + "\n").encode(), "a", origin="auditd")
    reader.feed(("[  12.3] " + KERNEL_MSG + "\n").encode(), "d", origin="dmesg")
    reader.feed((AUDIT_LINE + "\n").encode(), "a", origin="auditd")
    evs = reader.result()["events"]
    assert [(e["sources"], e["forgeable"], e["count"]) for e in evs] == [(["auditd", "dmesg"], False, 3)]


def test_bytes_of_unknown_origin_are_taken_as_given_and_an_unknown_declaration_is_refused():
    reader = LogReader(host="h")
    reader.feed((AUDIT_LINE + "\n").encode())
    assert [(e["sources"], e["forgeable"]) for e in reader.result()["events"]] == [(["unspecified"], False)]
    with pytest.raises(ValueError, match="unknown origin"):
        LogReader().feed(b"x\n", origin="kernel-please-trust-me")


def test_sources_say_what_writes_them(tmp_path):
    root = str(tmp_path)
    (tmp_path / "etc" / "audit").mkdir(parents=True)
    (tmp_path / "etc" / "audit" / "auditd.conf").write_text("log_format = ENRICHED\nlog_file = /srv/audit/a.log\n")
    cases = [(logsources.FileSource(root + "/var/log/audit/audit.log", root=root), "auditd", False),
             (logsources.FileSource(root + "/srv/audit/a.log", root=root), "auditd", False),
             (logsources.FileSource(root + "/var/log/syslog", root=root), "syslog", True),
             (logsources.FileSource(root + "/var/log/syslog", streams="dbus", root=root), "syslog", True),
             (logsources.FileSource(root + "/var/log/kern.log", root=root), "syslog", True),
             (logsources.JournalSource(root=root), "journal", False),
             (logsources.DmesgSource(root=root), "dmesg", False)]
    for src, origin, forgeable in cases:
        assert (src.origin, src.forgeable) == (origin, forgeable), src
        assert src.to_dict()["origin"] == origin and src.to_dict()["forgeable"] is forgeable


# ---- the answers engine ------------------------------------------------------------------------------------

def fevent(forgeable, host="h1", path="/etc/x", kind="file"):
    # a complain-mode access (ALLOWED): a DENIED record of an enforcing profile is never default-allowed anyway
    ev = {"kind": kind, "profile": "/usr/bin/x", "parent": "/usr/bin/x", "host": host, "path": path,
          "mask": {"requested": "r", "denied": "r"}, "owner": False, "operations": ["open"], "modes": ["ALLOWED"],
          "count": 1, "sources": ["syslog" if forgeable else "auditd"], "forgeable": forgeable}
    return events.finish(ev)


def test_to_rules_default_allow_never_allows_a_forgeable_event():
    res = answers.to_rules([fevent(True)], default="allow")
    entry = res["profiles"]["/usr/bin/x"]
    assert entry["rules"] == [] and len(entry["pending"]) == 1
    assert entry["pending"][0]["reason"].startswith("forgeable: read only from syslog")
    assert entry["pending"][0]["forgeable"] is True
    # control: the same access from a trusted source becomes a rule
    res = answers.to_rules([fevent(False)], default="allow")
    assert [r["text"] for r in res["profiles"]["/usr/bin/x"]["rules"]] == ["/etc/x r,"]


def test_to_rules_a_persons_answer_decides_a_forgeable_event():
    allow = [{"profile": "/usr/bin/x", "match": {"kind": "file", "path": "/etc/x"}, "answer": "allow"}]
    res = answers.to_rules([fevent(True)], allow, default="allow")
    assert [r["text"] for r in res["profiles"]["/usr/bin/x"]["rules"]] == ["/etc/x r,"]
    deny = [dict(allow[0], answer="deny")]
    res = answers.to_rules([fevent(True)], deny)
    assert [r["text"] for r in res["profiles"]["/usr/bin/x"]["deny"]] == ["deny /etc/x r,"]


def test_merge_events_keeps_forgeable_and_trusted_sightings_apart():
    merged = fleet.merge_events({"h1": [fevent(False, "h1")], "h2": [fevent(True, "h2")],
                                 "h3": [fevent(True, "h3")]})
    assert sorted((e["forgeable"], sorted(e["hosts"])) for e in merged) == [(False, ["h1"]), (True, ["h2", "h3"])]
    # the trusted sighting still becomes a rule with default allow; the forged ones (2 hosts) stay pending
    res = answers.to_rules(merged, default="allow")
    entry = res["profiles"]["/usr/bin/x"]
    assert [r["text"] for r in entry["rules"]] == ["/etc/x r,"]
    assert [(p["forgeable"], sorted(p["hosts"])) for p in entry["pending"]] == [(True, ["h2", "h3"])]


def test_pending_entry_is_marked_and_pastes_back():
    res = answers.to_rules([fevent(True)])
    entries = suggest.pending_list(res)
    assert entries[0]["forgeable"] is True and entries[0]["sources"] == ["syslog"]
    answers.validate_answers(entries)  # informational keys: accepted as they are pasted back


# ---- the enforce soak ------------------------------------------------------------------------------------

@pytest.mark.parametrize("evs, only_forgeable, action", [
    ([], False, "continue"),
    ([], True, "continue"),
    ([False], False, "rollback"),
    ([False], True, "rollback"),
    ([False, True], False, "rollback"),    # a forged record never hides a real one
    ([True], False, "continue"),           # reported, the trusted source saw nothing
    ([True, True], True, "stop"),          # nothing can verify it: stop after the batch, do not roll back
])
def test_soak_verdict(evs, only_forgeable, action):
    made = [fevent(f, path="/etc/x%d" % i) for i, f in enumerate(evs)]
    verdict = provenance.soak_verdict(made, only_forgeable)
    assert verdict["action"] == action
    assert len(verdict["trusted"]) == evs.count(False) and len(verdict["unverified"]) == evs.count(True)
    if action != "rollback" and True in evs:
        assert "syslog" in verdict["reason"] and "not rolled back" in verdict["reason"]


def test_soak_verdict_takes_unmarked_events_as_trusted():
    ev = fevent(False)
    del ev["forgeable"], ev["sources"]
    assert provenance.soak_verdict([ev], True)["action"] == "rollback"


# ---- fuzz: forged copies mixed into trusted records (make fuzz: ARMADA_FUZZ_EXAMPLES per run) ---------------

FORGED_FIELDS = st.fixed_dictionaries({}, optional={
    "_TRANSPORT": st.sampled_from(["syslog", "journal", "stdout", "driver", "", "Kernel", "kernel ", "audit\n"]),
    "_UID": st.sampled_from(["65534", "1000", "0x0", "-0", "", "101 ", "abc"]),
    "_COMM": st.sampled_from(["logger", "dbus-daemon", "dbus-broker", "kernel", "systemd-journal", ""]),
    "_PID": st.sampled_from(["1", "4242", "", "x"]),
    "SYSLOG_IDENTIFIER": st.sampled_from(["kernel", "dbus-daemon", "dbus-broker", "audit"]),
    "_SYSTEMD_UNIT": st.sampled_from(["dbus.service", "systemd-journald.service"]),
})


def _forged(fields):
    """A field set a local user can get journald to store: never kernel/audit transport, never a bus uid+comm."""
    f = dict(fields)
    if f.get("_TRANSPORT") in ("kernel", "audit"):
        f["_TRANSPORT"] = "syslog"
    if f.get("_UID") in ("0", str(BUS_UID)):
        f["_UID"] = "65534"
    return f


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["kernel", "audit", "dbus"]), st.integers(0, 3), st.booleans(),
                          FORGED_FIELDS), min_size=1, max_size=30),
       st.integers(1, 7))
def test_fuzz_forged_copies_never_join_hide_or_change_trusted_events(items, chunk):
    bump("reader", "forged_cases")
    lines, trusted_lines, n_forged = [], [], 0
    for transport, variant, forged, fields in items:
        msg = (DBUS_MSG if transport == "dbus" else KERNEL_MSG).replace("/usr/bin/x", "/usr/bin/x%d" % variant)
        if forged:
            line = jline(msg, **_forged(fields))
            n_forged += 1
        else:
            real = BUS_DBUS if transport == "dbus" else {"_TRANSPORT": transport}
            line = jline(msg, **real)
            trusted_lines.append(line)
        lines.append(line)
    bump("reader", "forged_lines", n=n_forged)
    reader = LogReader(host="h", dbus_uids=UIDS)
    for i in range(0, len(lines), chunk):
        reader.feed(b"".join(lines[i:i + chunk]), "journal:all", origin="journal")
    evs = reader.result()["events"]
    alone = {e["id"]: e["count"] for e in read_json(*trusted_lines)} if trusted_lines else {}
    assert {e["id"]: e["count"] for e in evs if not e["forgeable"]} == alone
    assert sum(e["count"] for e in evs if e["forgeable"]) == n_forged
    assert all(e["sources"] == ["journal-unverified"] for e in evs if e["forgeable"])
    # a soak that read only the forged ones never rolls back
    verdict = provenance.soak_verdict([e for e in evs if e["forgeable"]], only_forgeable=False)
    assert verdict["action"] == "continue"
    assert provenance.soak_verdict([e for e in evs if e["forgeable"]], only_forgeable=True)["action"] in (
        "stop" if n_forged else "continue",)


def test_a_flood_of_forged_events_cannot_crowd_real_ones_out_of_max_events():
    flood = "".join("Nov 25 10:00:01 web1 kernel: %s\n" % KERNEL_MSG.replace("/etc/shadow", "/f/%d" % i)
                    for i in range(50)).encode()
    reader = LogReader(host="h", max_events=10)
    reader.feed(flood, "file:/var/log/syslog", origin="syslog")
    reader.feed((AUDIT_LINE + "\n").encode(), "file:/var/log/audit/audit.log", origin="auditd")
    res = reader.result()
    assert [e["path"] for e in res["events"] if not e["forgeable"]] == ["/etc/shadow"]
    assert sum(1 for e in res["events"] if e["forgeable"]) == 10 and res["stats"]["dropped"] == 40
