#!/usr/bin/python3
"""Derive the expected .out / .profile of tests/conformance/cases/*.in from AppArmor's own code.

Run with the system python that has python3-libapparmor and python3-apparmor (Debian packages):

    /usr/bin/python3 tests/conformance/upstream_reference.py [--check]

* ``NAME.out``: ``LibAppArmor.parse_record`` (libapparmor's parser) printed with test_multi's labels.
* ``NAME.profile``: aa-logprof's handling: ``apparmor.logparser.ReadLog.parse_event`` then
  ``parse_event_for_tree`` (every profile treated as existing) and the rule building of
  ``apparmor.aa.collapse_log`` (FileRule, CapabilityRule, NetworkRule, PtraceRule, SignalRule,
  DbusRule, ChangeProfileRule), printed as rules per profile; exec events are listed as
  ``# exec NAME -> TARGET`` because aa-logprof asks a question for them instead of writing a rule.

Reference only: used by tests, never imported by product code. ``--check`` compares instead of
writing and exits 1 when a committed file differs (the differential test runs this).
"""
import glob
import os
import sys

import LibAppArmor
from apparmor.logparser import ReadLog
from apparmor.rule.capability import CapabilityRule
from apparmor.rule.change_profile import ChangeProfileRule
from apparmor.rule.dbus import DbusRule
from apparmor.rule.file import FileRule
from apparmor.rule.network import NetworkRule
from apparmor.rule.ptrace import PtraceRule
from apparmor.rule.signal import SignalRule

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
EVENT_NAMES = {0: "AA_RECORD_INVALID", 1: "AA_RECORD_ERROR", 2: "AA_RECORD_AUDIT", 3: "AA_RECORD_ALLOWED",
               4: "AA_RECORD_DENIED", 5: "AA_RECORD_HINT", 6: "AA_RECORD_STATUS"}
ULONG_MAX = (1 << 64) - 1


def render_out(name, line):
    """test_multi.c's output for one record (only the labels it prints for set fields)."""
    r = LibAppArmor.parse_record(line)
    out = ["START", "File: %s.in" % name, "Event type: %s" % EVENT_NAMES[r.event]]
    if r.event == 0:
        return "\n".join(out) + "\n"

    def put(label, value):
        if value is not None and value != "":
            out.append("%s: %s" % (label, value))

    put("Audit ID", r.audit_id)
    put("Operation", r.operation)
    put("Mask", r.requested_mask)
    put("Denied Mask", r.denied_mask)
    if r.fsuid != ULONG_MAX:
        put("fsuid", r.fsuid)
    if r.ouid != ULONG_MAX:
        put("ouid", r.ouid)
    put("Profile", r.profile)
    put("Peer profile", r.peer_profile)
    put("Peer", r.peer)
    put("Name", r.name)
    put("Command", r.comm)
    if r.name2 is not None:
        out.append("Name2: %s" % r.name2)
    put("Namespace", r.namespace)
    put("Attribute", r.attribute)
    put("Task", r.task or None)
    put("Parent", r.parent or None)
    put("Token", r.magic_token or None)
    put("Info", r.info)
    put("ErrorCode", r.error_code or None)
    put("PID", r.pid or None)
    put("Peer PID", r.peer_pid or None)
    put("Network family", r.net_family)
    put("Socket type", r.net_sock_type)
    put("Protocol", r.net_protocol)
    put("Local addr", r.net_local_addr)
    put("Foreign addr", r.net_foreign_addr)
    put("Local port", r.net_local_port or None)
    put("Foreign port", r.net_foreign_port or None)
    put("DBus bus", r.dbus_bus)
    put("DBus path", r.dbus_path)
    put("DBus interface", r.dbus_interface)
    put("DBus member", r.dbus_member)
    put("Signal", r.signal)
    put("FS Type", r.fs_type)
    put("Flags", r.flags)
    put("Src name", r.src_name)
    put("Epoch", r.epoch)
    put("Audit subid", r.audit_sub_id)
    return "\n".join(out) + "\n"


class _Reader(ReadLog):
    def profile_exists(self, program):
        return True  # the cases name profiles that do not exist on this machine


def render_profile(line):
    """aa-logprof's rules for one record: ``PROFILE {`` rules ``}`` per profile, sorted."""
    reader = _Reader("/dev/null", None, "/nonexistent")
    ev = reader.parse_event(line)
    if ev:
        reader.parse_event_for_tree(ev)
    blocks = []
    for aamode in sorted(reader.hashlog):
        for full in sorted(reader.hashlog[aamode]):
            log = reader.hashlog[aamode][full]
            rules = []
            for path in log["path"]:
                for owner in log["path"][path]:
                    mode = set(log["path"][path][owner].keys())
                    if "a" in mode and "w" in mode:
                        mode.remove("a")
                    rules.append(FileRule(path, mode, None, FileRule.ALL, owner=owner, log_event=True))
            rules += [CapabilityRule(cap, log_event=True) for cap in log["capability"]]
            rules += [ChangeProfileRule(None, ChangeProfileRule.ALL, cp, log_event=True)
                      for cp in log["change_profile"]]
            dbus = log["dbus"]
            for access in dbus:
                for bus in dbus[access]:
                    for path in dbus[access][bus]:
                        for name in dbus[access][bus][path]:
                            for iface in dbus[access][bus][path][name]:
                                for member in dbus[access][bus][path][name][iface]:
                                    for peer in dbus[access][bus][path][name][iface][member]:
                                        if access in ("send", "receive"):
                                            rules.append(DbusRule(access, bus, path, DbusRule.ALL, iface, member,
                                                                  DbusRule.ALL, peer, log_event=True))
                                        elif access == "bind":
                                            rules.append(DbusRule(access, bus, DbusRule.ALL, name, DbusRule.ALL,
                                                                  DbusRule.ALL, DbusRule.ALL, DbusRule.ALL,
                                                                  log_event=True))
            for family in log["network"]:
                for sock_type in log["network"][family]:
                    rules.append(NetworkRule(family, sock_type, log_event=True))
            for peer in log["ptrace"]:
                for access in log["ptrace"][peer]:
                    rules.append(PtraceRule(access, peer, log_event=True))
            for peer in log["signal"]:
                for access in log["signal"][peer]:
                    for signal in log["signal"][peer][access]:
                        rules.append(SignalRule(access, signal, peer, log_event=True))
            texts = sorted(r.get_clean() for r in rules)
            texts += sorted("# exec %s -> %s" % (n, t) for n in log["exec"] for t in log["exec"][n])
            if texts:
                blocks.append("%s {\n%s}\n" % (full, "".join("  %s\n" % t for t in texts)))
    return "".join(blocks)


def main(check):
    stale = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.in"))):
        name = os.path.basename(path)[:-3]
        with open(path, encoding="utf-8") as fh:
            line = fh.read().strip("\n")
        for suffix, text in ((".out", render_out(name, line)), (".profile", render_profile(line))):
            target = path[:-3] + suffix
            if check:
                old = None
                if os.path.exists(target):
                    with open(target, encoding="utf-8") as fh:
                        old = fh.read()
                if old != text:
                    stale.append(os.path.basename(target))
            else:
                with open(target, "w", encoding="utf-8") as fh:
                    fh.write(text)
    if stale:
        print("differs from AppArmor 3.0.8's output: " + " ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
