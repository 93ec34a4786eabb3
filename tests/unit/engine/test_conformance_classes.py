"""Record classes of issue 15 whose upstream behaviour libapparmor/aa-logprof 3.0.8 cannot show
(3.0.8 reads no record with class=, tcontext= or execpath=): expectations written from the kernel's
record text and AppArmor's rule syntax (docs/conformance.md, "Record classes")."""
from ansible_collections.armada.apparmor.plugins.module_utils import logparse, logreader
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules

ALLOW = [{"profile": "**", "match": {}, "answer": "allow", "exec_mode": "ix",
          "broad": True}]  # aa-logprof --allow-all: deliberately every event of every profile


def _rules(text, abi="5.0"):
    reader = logreader.LogReader(host="h")
    reader.feed(text.encode() + b"\n")
    result = to_rules(reader.result()["events"], ALLOW, abi=abi, fold_children=False)
    return {name: [r["text"] for r in entry["rules"]] for name, entry in result["profiles"].items()
            if entry["rules"]}, result


def test_io_uring_tcontext_is_the_label():
    rec = ('type=AVC msg=audit(1733480001.1:1): apparmor="DENIED" operation="uring_override" class="io_uring" '
           'profile="/usr/bin/ring" pid=7 comm="ring" requested="override_creds" denied="override_creds" '
           'tcontext="/usr/bin/other"')
    ev = logparse.parse_line(rec.encode())["event"]
    assert ev["peer"] == "/usr/bin/other" and "extra" not in ev
    rules, _ = _rules(rec)
    assert rules == {"/usr/bin/ring": ["io_uring override_creds label=/usr/bin/other,"]}


def test_io_uring_sqpoll_with_tcontext_keeps_the_label():
    rec = ('type=AVC msg=audit(1733480001.1:2): apparmor="DENIED" operation="uring_sqpoll" class="io_uring" '
           'profile="/usr/bin/ring" pid=7 comm="ring" requested="sqpoll" denied="sqpoll" tcontext="ringer"')
    rules, _ = _rules(rec)
    assert rules == {"/usr/bin/ring": ["io_uring sqpoll label=ringer,"]}


def test_userns_transition_of_unconfined_goes_to_the_executable():
    rec = ('type=AVC msg=audit(1733480001.1:3): apparmor="AUDIT" operation="userns_create" class="namespace" '
           'info="Userns create - transitioning profile" profile="unconfined" pid=8 comm="chrome" '
           'requested="userns_create" target="unprivileged_userns" execpath="/opt/chrome/chrome"')
    ev = logparse.parse_line(rec.encode())["event"]
    assert ev["execpath"] == "/opt/chrome/chrome" and ev["profile"] == "unconfined"
    rules, result = _rules(rec)
    assert rules == {"/opt/chrome/chrome": ["audit userns create,"]}
    assert "unconfined" not in result["profiles"]


def test_userns_of_a_confined_profile_stays_there():
    rec = ('type=AVC msg=audit(1733480001.1:4): apparmor="DENIED" operation="userns_create" class="namespace" '
           'profile="/usr/bin/box" pid=8 comm="box" requested="userns_create" denied="userns_create" '
           'execpath="/usr/bin/box-helper"')
    rules, _ = _rules(rec)
    assert rules == {"/usr/bin/box": ["userns create,"]}


def test_records_aa_logprof_ignores_say_why():
    recs = "\n".join((
        'type=AVC msg=audit(1733480001.1:5): apparmor="DENIED" operation="change_onexec" info="label not found" '
        'error=-2 profile="/usr/bin/a" name="missing" pid=9 comm="a"',
        'type=AVC msg=audit(1733480001.1:6): apparmor="AUDIT" operation="ptrace" profile="/usr/bin/a" pid=9 '
        'comm="a" requested_mask="read" peer="/usr/bin/b"',
    ))
    rules, result = _rules(recs)
    assert rules == {}
    reasons = sorted(i["reason"] for i in result["profiles"]["/usr/bin/a"]["ignored"])
    assert reasons[0].startswith("ptrace record without a denied mask")
    assert reasons[1].startswith("the change_profile/change_onexec target does not exist")


def test_dbus_record_in_a_kernel_syslog_line_keeps_its_names_through_the_reader():
    line = ("Dec  6 10:00:00 u kernel: [   31.020000] audit: type=1107 audit(1733480001.100:7): pid=750 uid=101 "
            "auid=4294967295 ses=4294967295 subj=unconfined msg='apparmor=\"DENIED\" operation=\"dbus_method_call\""
            "  bus=\"system\" path=\"/org/freedesktop/login1\" interface=\"org.freedesktop.login1.Manager\" "
            "member=\"PowerOff\" mask=\"send\" name=\"org.freedesktop.login1\" pid=4101 label=\"/usr/bin/a\" "
            "peer_label=\"unconfined\" exe=\"/usr/bin/dbus-daemon\" sauid=101 hostname=? addr=? terminal=?'")
    reader = logreader.LogReader(host="h")
    reader.feed(((line + "\n") * 3).encode())
    (ev,) = reader.result()["events"]
    assert (ev["kind"], ev["dbus_name"], ev["member"], ev["count"]) == ("dbus", "org.freedesktop.login1",
                                                                       "PowerOff", 3)


_SPLIT_DBUS = ("Jan 11 09:03:45 vivid kernel: [   26.624111] audit: type=1107 audit(1431438270.142:2): pid=775 "
               "uid=102 auid=4294967295 ses=4294967295 msg='apparmor=\"DENIED\" operation=\"dbus_method_call\"  "
               "bus=\"system\" path=\"/org/freedesktop/DBus\" interface=\"org.freedesktop.DBus\" member=\"Hello\" "
               "mask=\"send\" name=\"org.freedesktop.DBus\" pid=1512 label=\"/usr/bin/a\" peer_label=\"unconfined\"")
_SPLIT_TAIL = " exe=\"/bin/dbus-daemon\" sauid=102 hostname=? addr=? terminal=?'"


def test_dbus_record_split_at_its_newline_in_kern_log_is_read():
    """kern.log writes dbus-daemon's USER_AVC on two lines (a newline before `exe=`); libapparmor 3.0.8's
    parse_record reads the first line as a DENIED dbus_method_call with every dbus field (checked with
    LibAppArmor.parse_record); the second line holds no record."""
    reader = logreader.LogReader(host="h")
    reader.feed((_SPLIT_DBUS + "\n" + _SPLIT_TAIL + "\n").encode())
    res = reader.result()
    (ev,) = res["events"]
    assert (ev["kind"], ev["modes"], ev["bus"], ev["dbus_path"], ev["interface"], ev["member"],
            ev["dbus_name"], ev["profile"], ev["peer"]) == (
        "dbus", ["DENIED"], "system", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello",
        "org.freedesktop.DBus", "/usr/bin/a", "unconfined")
    assert res["stats"]["skipped"] == {}
    alone = logparse.parse_line(_SPLIT_DBUS.encode())  # the one-line parser agrees with the reader
    assert alone["skip"] is None and alone["event"]["member"] == "Hello"


def test_a_cut_inside_a_value_is_still_truncated():
    cut = _SPLIT_DBUS[:-5]  # ends inside peer_label="uncon
    assert logparse.parse_line(cut.encode())["skip"] == "truncated"
