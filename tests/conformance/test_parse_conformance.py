"""Parse conformance: every case of the libapparmor corpus read by logparse and compared field by field.

For each NAME.in we render our reading with libapparmor's labels (``render``; the mapping is in
docs/conformance.md) and compare it with NAME.out: every label must match, and we must not print a
label libapparmor does not. N counts every case, INVALID ones included. An INVALID case passes when
we produce no event, or when DIVERGENCES documents that we read a real record libapparmor misses;
then the event we produce is checked against expectations written from the record text.
"""
import glob
import os

import pytest
from armada_corpus import corpus_dir

from ansible_collections.armada.apparmor.plugins.module_utils import logparse

#: IP protocol numbers as libapparmor prints them: its own table (generated from the kernel's
#: IPPROTO_* names, not /etc/protocols); any other number prints as ``unknown(N)``. Measured with
#: python3-libapparmor 3.0.8 for every protocol number 0..1023 (docs/conformance.md).
PROTOCOLS = {0: "ip", 1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 8: "egp", 12: "pup", 17: "udp", 22: "idp",
             29: "tp", 33: "dccp", 41: "ipv6", 43: "routing", 44: "fragment", 46: "rsvp", 47: "gre", 50: "esp",
             51: "ah", 58: "icmpv6", 59: "none", 60: "dstopts", 92: "mtp", 94: "beetph", 98: "encap", 103: "pim",
             108: "comp", 132: "sctp", 135: "mh", 136: "udplite", 137: "mpls", 143: "ethernet", 255: "raw",
             262: "mptcp"}


def protocol_name(proto):
    # type: (Any) -> Any
    """libapparmor's rendering of a ``protocol=`` value: its name, else ``unknown(N)``."""
    if isinstance(proto, int):
        return PROTOCOLS.get(proto, "unknown(%d)" % proto)
    return proto


#: what libapparmor calls our record classes
EVENT_TYPES = {"ALLOWED": "AA_RECORD_ALLOWED", "DENIED": "AA_RECORD_DENIED", "AUDIT": "AA_RECORD_AUDIT",
               "HINT": "AA_RECORD_HINT", "STATUS": "AA_RECORD_STATUS", "ERROR": "AA_RECORD_ERROR",
               "KILLED": "AA_RECORD_DENIED"}


def render(parsed):
    # type: (Dict[str, Any]) -> Dict[str, str]
    """{label: value} for one ``logparse.parse_line`` result, as libapparmor would print it."""
    rec, ev = parsed["record"], parsed["event"]
    if rec is None or ev is None:
        return {"Event type": "AA_RECORD_INVALID"}
    f = rec["fields"]
    out = {"Event type": EVENT_TYPES.get(rec["mode"], "AA_RECORD_" + rec["mode"])}  # type: Dict[str, str]

    def put(label, value):
        # type: (str, Optional[Any]) -> None
        if value is not None and value != "":
            out[label] = str(value)

    if rec["stamp"]:
        epoch, serial = rec["stamp"]
        put("Audit ID", "%s:%d" % (epoch, serial))
        put("Epoch", epoch.split(".")[0])
        put("Audit subid", serial)
    if ev["operations"]:
        put("Operation", ev["operations"][0])
    mask = ev.get("mask") or {}
    if ev["kind"] == "dbus":
        put("Denied Mask", mask.get("requested"))  # libapparmor stores dbus mask= as the denied mask
    else:
        put("Mask", mask.get("requested"))
        put("Denied Mask", mask.get("denied"))
    put("fsuid", ev.get("fsuid"))
    put("ouid", ev.get("ouid"))
    put("Profile", ev.get("profile"))
    if ev["kind"] == "dbus" or "tcontext" in f:
        put("Peer profile", ev.get("peer"))  # libapparmor files tcontext= as the peer profile
    else:
        put("Peer", ev.get("peer"))
    if ev["kind"] == "dbus":
        put("Name", ev.get("dbus_name"))
    elif ev["kind"] == "capability":
        put("Name", ev.get("capname"))
    elif "path" in ev:
        put("Name", ev.get("path"))
    else:
        put("Name", ev.get("name"))
    put("Command", f.get("comm", f.get("exe")))
    if "target" in f or "name2" in f:
        out["Name2"] = ev.get("target") or ""
    put("Namespace", ev.get("namespace"))
    put("Attribute", ev.get("attribute"))
    for label, key in (("Task", "task"), ("Parent", "parent"), ("Token", "magic_token")):
        if key in f:
            put(label, int(f[key]) if f[key].isdigit() else f[key])
    put("Info", ev.get("info"))
    if isinstance(ev.get("error"), int):
        put("ErrorCode", abs(ev["error"]))
    put("PID", f.get("pid"))
    put("Peer PID", f.get("peer_pid"))
    put("Net Addr", ev.get("addr"))
    put("Peer Addr", ev.get("peer_addr"))
    put("Network family", ev.get("family"))
    put("Socket type", ev.get("sock_type"))
    proto = ev.get("protocol")
    put("Protocol", protocol_name(proto))
    put("Local addr", ev.get("laddr"))
    put("Foreign addr", ev.get("faddr"))
    put("Local port", ev.get("lport"))
    put("Foreign port", ev.get("fport"))
    put("DBus bus", ev.get("bus"))
    put("DBus path", ev.get("dbus_path"))
    put("DBus interface", ev.get("interface"))
    put("DBus member", ev.get("member"))
    put("Signal", ev.get("signal"))
    put("FS Type", ev.get("fstype"))
    put("Flags", ev.get("flags"))
    put("Src name", ev.get("srcname"))
    put("Class", ev.get("class"))
    put("Execpath", ev.get("execpath"))
    return out


def read_out(path):
    # type: (str) -> Dict[str, str]
    """{label: value} of one ``.out`` file (``START`` and ``File:`` lines dropped)."""
    out = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh.read().splitlines():
            if line in ("START", "") or line.startswith("File: "):
                continue
            label, _sep, value = line.partition(": ")
            if not _sep and line.endswith(":"):
                label, value = line[:-1], ""
            out[label] = value
    return out


# case -> (why we differ, expectations on our event written from the .in text)
DIVERGENCES = {
    "status-filesystem-enabled": (
        "the line is `grep` output (`audit.log:` before `type=AVC`); libapparmor rejects the prefix, the "
        "record after it is a real STATUS record written at boot, and we read it",
        {"kind": "status", "modes": ["STATUS"], "info": "AppArmor Filesystem Enabled", "pids": [1],
         "comms": ["swapper/0"], "first_seen": 1630913351.586, "profile": None},
    ),
}


def cases():
    # type: () -> List[str]
    """Every case name of the corpus (a missing corpus raises: an error, not a skip)."""
    return sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(corpus_dir(), "*.out")))


def read_case(name):
    # type: (str) -> bytes
    """The record of NAME.in; a record wrapped onto an indented second line is joined (as the reader does)."""
    with open(os.path.join(corpus_dir(), name + ".in"), "rb") as fh:
        lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
    if len(lines) > 1 and lines[1][:1] in (b" ", b"\t"):
        return lines[0] + b" " + lines[1].strip()
    return lines[0] if lines else b""


def compare(name, parsed=None, expected=None):
    # type: (str, Optional[Dict[str, Any]], Optional[Dict[str, str]]) -> Optional[str]
    """None when case ``name`` conforms, else a description of every differing label."""
    if parsed is None:
        parsed = logparse.parse_line(read_case(name))
    if expected is None:
        expected = read_out(os.path.join(corpus_dir(), name + ".out"))
    if expected.get("Event type") == "AA_RECORD_INVALID":
        if parsed["event"] is None:
            return None
        if name in DIVERGENCES:
            want = DIVERGENCES[name][1]
            wrong = {k: (parsed["event"].get(k), v) for k, v in want.items() if parsed["event"].get(k) != v}
            return None if not wrong else "documented divergence, but our event differs: %r" % wrong
        return "libapparmor: INVALID, we produced %r" % parsed["event"]
    got = render(parsed)
    diffs = ["%s: ours %r, libapparmor %r" % (k, got.get(k), expected.get(k))
             for k in sorted(set(got) | set(expected)) if got.get(k) != expected.get(k)]
    return "; ".join(diffs) or None


_RESULTS = {}  # type: Dict[str, bool]


@pytest.mark.parametrize("name", cases())
def test_case_conforms(name):
    problem = compare(name)
    _RESULTS[name] = problem is None
    assert problem is None, problem


def test_conformance_summary(conformance_report):
    names = cases()
    passed = 0
    for name in names:
        if name not in _RESULTS:
            _RESULTS[name] = compare(name) is None
        passed += 1 if _RESULTS[name] else 0
    conformance_report("parse", passed, len(names),
                       note="%d INVALID read on purpose (docs/conformance.md)" % len(DIVERGENCES))
    assert len(names) > 100
    assert passed == len(names), "conformance parse: %d/%d" % (passed, len(names))


def test_comparison_catches_an_altered_field():
    """The comparison is not vacuous: one changed field of a conforming case is reported."""
    name = "testcase_network_09"
    parsed = logparse.parse_line(read_case(name))
    assert compare(name, parsed) is None
    altered = dict(parsed, event=dict(parsed["event"], lport=3458))
    problem = compare(name, altered)
    assert problem is not None and "Local port" in problem
    expected = read_out(os.path.join(corpus_dir(), name + ".out"))
    expected["Profile"] = "/not/the/profile"
    assert "Profile" in (compare(name, parsed, expected) or "")
    # a label we would print that libapparmor does not is caught too
    extra = dict(parsed, event=dict(parsed["event"], signal="term"))
    assert "Signal" in (compare(name, extra) or "")


def test_invalid_cases_are_really_read_as_invalid_or_documented():
    """Each INVALID case passes for a stated reason: no event, or a documented divergence."""
    invalid = [n for n in cases()
               if read_out(os.path.join(corpus_dir(), n + ".out")).get("Event type") == "AA_RECORD_INVALID"]
    assert invalid
    for name in invalid:
        parsed = logparse.parse_line(read_case(name))
        assert (parsed["event"] is None) != (name in DIVERGENCES), name
        if parsed["event"] is None:
            assert parsed["skip"], name


def test_divergences_are_needed():
    for name in DIVERGENCES:
        assert name in cases()
        assert read_out(os.path.join(corpus_dir(), name + ".out"))["Event type"] == "AA_RECORD_INVALID"
