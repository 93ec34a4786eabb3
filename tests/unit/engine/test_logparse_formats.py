"""Every log format the reader must understand, with expectations written from the formats' documentation.

Sources used for the expected values (not our parser's output):
- auditd: audit.log record layout ``type=T msg=audit(EPOCH.MS:SERIAL): k=v ...``; ENRICHED format appends
  auditd's interpretations after a 0x1d (GS) byte in upper case (auditd.conf(5) ``log_format``).
- aggregated logs (audisp-remote / ``name_format``): ``node=HOST`` before ``type=``.
- kernel printk of audit records: ``audit: type=1400 audit(EPOCH.MS:SERIAL): ...`` behind a syslog header
  (RFC 3164 ``Mmm dd hh:mm:ss host``, RFC 5424/rsyslog ISO 8601 ``YYYY-MM-DDThh:mm:ss[.frac]±hh:mm``) and an
  optional dmesg ``[seconds.micro]`` stamp.
- journald: ``journalctl -o json`` (one JSON object per line, ``MESSAGE``, ``__REALTIME_TIMESTAMP`` in us),
  ``-o export`` (systemd Journal Export Format: ``FIELD=value`` lines, binary fields as ``FIELD\\n`` +
  little-endian 64-bit size + data + ``\\n``, entries separated by an empty line), and the text renderings
  of the audit transport (``host audit[PID]: AVC apparmor=...``).
- dbus-daemon / dbus-broker: AppArmor decisions sent as USER_AVC (1107) with the record inside ``msg='...'``,
  ``subj=?`` when the daemon has no label.
- AppArmor kernel: name-like values are hex-encoded when they contain spaces, quotes or non-printables;
  ``apparmor="..."`` is ALLOWED, DENIED, AUDIT, KILLED, HINT, STATUS or ERROR; the old types 1501-1506 /
  APPARMOR_* carry the class in the type.
"""
import calendar
import json

import pytest
from armada_corpus import vendored_file
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import logparse
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

AVC = ('apparmor="DENIED" operation="open" profile="/usr/bin/foo" name="/etc/shadow" pid=1234 comm="foo" '
       'requested_mask="r" denied_mask="r" fsuid=1000 ouid=0')


def read(data, **kw):
    r = LogReader(**kw)
    r.feed(data)
    return r.result()


def only_event(data, **kw):
    res = read(data, **kw)
    assert len(res["events"]) == 1, res
    return res["events"][0]


def check_shadow_open(ev, when=1700000000.123, host=None):
    """The facts of the AVC record above, as AppArmor documents the fields."""
    assert ev["kind"] == "file"
    assert ev["profile"] == "/usr/bin/foo" and ev["parent"] == "/usr/bin/foo" and ev["child"] is None
    assert ev["path"] == "/etc/shadow"
    assert ev["operations"] == ["open"] and ev["modes"] == ["DENIED"]
    assert ev["mask"] == {"requested": "r", "denied": "r"}
    assert ev["owner"] is False  # fsuid 1000 != ouid 0
    assert ev["pids"] == [1234] and ev["comms"] == ["foo"]
    assert ev["count"] == 1
    assert ev["host"] == host
    if when is not None:
        assert ev["first_seen"] == pytest.approx(when) and ev["last_seen"] == pytest.approx(when)
    assert len(ev["id"]) == 16


def test_auditd_raw():
    check_shadow_open(only_event(("type=AVC msg=audit(1700000000.123:45): %s\n" % AVC).encode()))


def test_auditd_enriched_separator_and_uppercase_fields():
    line = 'type=AVC msg=audit(1700000000.123:45): %s\x1dFSUID="alice" OUID="root"\n' % AVC
    ev = only_event(line.encode())
    check_shadow_open(ev)
    assert "extra" not in ev  # auditd's interpretations are not record keys


def test_node_prefix_is_the_origin():
    ev = only_event(("node=web-7.example type=AVC msg=audit(1700000000.123:45): %s\n" % AVC).encode(), host="inv")
    check_shadow_open(ev, host="web-7.example")
    # audispd's syslog plugin: the same record behind a syslog header
    ev3 = only_event(("Nov 25 10:00:00 collector audispd: node=web-7.example type=AVC msg=audit(1700000000.123:45): "
                      "%s\n" % AVC).encode(), host="inv")
    check_shadow_open(ev3, host="web-7.example")
    ev2 = only_event(("type=AVC msg=audit(1700000000.123:45): %s\n" % AVC).encode(), host="inv")
    assert ev2["host"] == "inv" and ev2["id"] != ev["id"]


@pytest.mark.parametrize("header", [
    b"Nov 25 10:00:00 myhost kernel: [12345.678901] audit: ",
    b"Nov  5 10:00:00 myhost kernel: audit: ",
    b"2026-11-25T10:00:00.123456+01:00 myhost kernel: [  12.000001] audit: ",
    b"2026-11-25T10:00:00+0100 myhost kernel: audit: ",
    b"2026-11-25 10:00:00 myhost kernel: ",
    b"[ 1597.774866] audit: ",  # dmesg
    b"[Tue Nov 25 10:00:00 2026] audit: ",  # dmesg -T
    b"",
])
def test_kernel_lines_syslog_and_dmesg(header):
    line = header + ("type=1400 audit(1700000000.123:45): %s\n" % AVC).encode()
    check_shadow_open(only_event(line))


def test_syslog_time_used_when_the_record_has_no_audit_stamp():
    # dbus-daemon writes through syslog: no audit(...) stamp, the header carries the time
    line = (b'2026-02-11T17:49:21.719707+01:00 host dbus-daemon[3217]: apparmor="DENIED" operation="dbus_method_call"'
            b'  bus="session" name="org.freedesktop.DBus" path="/org/freedesktop/DBus" interface="org.freedesktop.DBus"'
            b' member="Hello" mask="send" pid=1234 label="random_test" peer_label="unconfined"\n')
    ev = only_event(line)
    want = calendar.timegm((2026, 2, 11, 16, 49, 21, 0, 0, 0)) + 0.719707
    assert ev["first_seen"] == pytest.approx(want)
    assert ev["kind"] == "dbus" and ev["bus"] == "session" and ev["dbus_path"] == "/org/freedesktop/DBus"
    assert ev["interface"] == "org.freedesktop.DBus" and ev["member"] == "Hello"
    assert ev["dbus_name"] == "org.freedesktop.DBus" and ev["mask"]["requested"] == "send"
    assert ev["profile"] == "random_test" and ev["peer"] == "unconfined" and ev["pids"] == [1234]
    # same record, time zone without colon and UTC "Z"
    for stamp in (b"2026-02-11T17:49:21.719707+0100", b"2026-02-11T16:49:21.719707Z"):
        ev2 = only_event(stamp + line[len(b"2026-02-11T17:49:21.719707+01:00"):])
        assert ev2["first_seen"] == pytest.approx(want)


def test_bsd_header_time_without_year_is_not_in_the_future():
    line = (b'Dec 31 23:59:59 host dbus-daemon[1]: apparmor="DENIED" operation="dbus_bind" bus="system" '
            b'name="x.y" mask="bind" pid=5 label="p"\n')
    ev = only_event(line)
    import time
    assert ev["first_seen"] is not None and ev["first_seen"] <= time.time() + 2 * 86400


def test_journald_json_corpus():
    """Real ``journalctl -o json`` records of dbus-daemon: 13 AppArmor records, 3 unrelated messages."""
    path = vendored_file("formats", "journald-json.log")
    with open(path, "rb") as fh:
        data = fh.read()
    objs = [json.loads(x) for x in data.splitlines() if x.strip()]
    aa = [o for o in objs if "apparmor=" in o["MESSAGE"]]
    res = read(data, host="ubuntu-box")
    assert res["stats"]["records"] == len(aa) == 13
    assert res["stats"]["kinds"] == {"dbus": 13}
    assert sum(e["count"] for e in res["events"]) == 13
    assert not res["stats"]["skipped"]
    for e in res["events"]:
        assert e["host"] == "ubuntu-box" and e["kind"] == "dbus" and e["modes"] == ["ALLOWED"]
        assert e["profile"] and e["bus"] == "session"
    # times come from the journal (source realtime, microseconds)
    first = min(int(o.get("_SOURCE_REALTIME_TIMESTAMP") or o["__REALTIME_TIMESTAMP"]) for o in aa) / 1e6
    assert min(e["first_seen"] for e in res["events"]) == pytest.approx(first)
    bind = [e for e in res["events"] if e["operations"] == ["dbus_bind"]]
    assert len(bind) == 1 and bind[0]["dbus_name"] == "org.gtk.vfs.Metadata" and bind[0]["mask"]["requested"] == "bind"


def test_journald_json_kernel_record_and_binary_message():
    msg = "audit: type=1400 audit(1700000000.123:45): %s" % AVC
    obj = {"MESSAGE": msg, "__REALTIME_TIMESTAMP": "1700000999000000", "_TRANSPORT": "kernel"}
    check_shadow_open(only_event((json.dumps(obj) + "\n").encode()))  # the audit stamp wins
    # journalctl writes a MESSAGE with control characters as an array of bytes
    obj = {"MESSAGE": list(msg.encode()), "__REALTIME_TIMESTAMP": "1700000999000000"}
    check_shadow_open(only_event((json.dumps(obj, separators=(",", ":")) + "\n").encode()))
    # the audit transport stores the type name apart and no stamp in MESSAGE
    obj = {"MESSAGE": AVC, "_AUDIT_TYPE_NAME": "AVC", "_TRANSPORT": "audit",
           "_SOURCE_REALTIME_TIMESTAMP": "1700000000123000"}
    check_shadow_open(only_event((json.dumps(obj) + "\n").encode()))


def export_entry(fields):
    out = b""
    for k, v in fields:
        if isinstance(v, bytes) and b"\n" in v:
            out += k.encode() + b"\n" + len(v).to_bytes(8, "little") + v + b"\n"
        else:
            out += k.encode() + b"=" + (v if isinstance(v, bytes) else v.encode()) + b"\n"
    return out + b"\n"


def test_journald_export_format():
    msg = ("audit: type=1400 audit(1700000000.123:45): %s" % AVC).encode()
    data = export_entry([("__CURSOR", "s=1;i=1"), ("__REALTIME_TIMESTAMP", "1700000000200000"), ("MESSAGE", msg),
                         ("_TRANSPORT", "kernel")])
    # a binary-encoded MESSAGE (contains a newline, so export must use the sized form)
    msg2 = (b'apparmor="DENIED" operation="dbus_bind" bus="system" name="a.b" mask="bind" pid=77 label="p"\nx')
    data += export_entry([("__REALTIME_TIMESTAMP", "1700000001000000"), ("MESSAGE", msg2),
                          ("SYSLOG_IDENTIFIER", "dbus-daemon")])
    data += export_entry([("MESSAGE", "Started Session 3 of user alice."), ("__REALTIME_TIMESTAMP", "1")])
    r = LogReader()
    r.feed_journal_export(data)
    res = r.result()
    assert res["stats"]["records"] == 2 and res["stats"]["lines"] == 3
    file_ev = [e for e in res["events"] if e["kind"] == "file"][0]
    check_shadow_open(file_ev)
    dbus = [e for e in res["events"] if e["kind"] == "dbus"][0]
    assert dbus["dbus_name"] == "a.b" and dbus["first_seen"] == pytest.approx(1700000001.0) and dbus["pids"] == [77]


def test_journald_export_truncated_binary_field_is_counted():
    data = b"__REALTIME_TIMESTAMP=1\nMESSAGE\n" + (500).to_bytes(8, "little") + b"apparmor=\"DENIED\""
    r = LogReader()
    r.feed_journal_export(data)
    res = r.result()
    assert res["stats"]["skipped"] == {"truncated": 1} and res["events"] == []


def test_journald_text_renderings():
    avc_line = ('Nov 25 10:00:00 host audit[1234]: AVC %s\n' % AVC).encode()
    ev = only_event(avc_line)
    check_shadow_open(ev, when=None)
    assert ev["first_seen"] is not None
    kern = ('Nov 25 10:00:00 host kernel: audit: type=1400 audit(1700000000.123:45): %s\n' % AVC).encode()
    check_shadow_open(only_event(kern))
    bare = ('audit: type=1400 audit(1700000000.123:45): %s\n' % AVC).encode()
    check_shadow_open(only_event(bare))


USER_AVC = ("type=USER_AVC msg=audit(1700000000.500:77): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=? "
            "msg='apparmor=\"DENIED\" operation=\"dbus_method_call\" bus=\"system\" path=\"/org/freedesktop/DBus\" "
            "interface=\"org.freedesktop.DBus\" member=\"Hello\" mask=\"send\" name=\"org.freedesktop.DBus\" "
            "pid=2222 label=\"/usr/bin/foo\" peer_label=\"unconfined\"  exe=\"/usr/bin/dbus-daemon\" sauid=102 "
            "hostname=? addr=? terminal=?'")


def check_hello(ev):
    assert ev["kind"] == "dbus" and ev["modes"] == ["DENIED"] and ev["operations"] == ["dbus_method_call"]
    assert ev["profile"] == "/usr/bin/foo" and ev["peer"] == "unconfined"
    assert (ev["bus"], ev["dbus_path"], ev["interface"], ev["member"]) == (
        "system", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
    assert ev["dbus_name"] == "org.freedesktop.DBus" and ev["mask"]["requested"] == "send"
    assert ev["pids"] == [2222]  # the client inside msg='...', not dbus-daemon's pid=1
    assert ev["first_seen"] == pytest.approx(1700000000.5)
    assert "extra" not in ev  # exe/sauid/hostname/addr/terminal are known USER_AVC trailer keys


def test_user_avc_with_subj_question_mark():
    check_hello(only_event((USER_AVC + "\n").encode()))


def test_user_avc_type_1107_in_kern_log_and_wrapped_over_two_lines():
    body = USER_AVC.split("): ", 1)[1]
    line = ("Jun 20 17:57:06 ns1 kernel: [4835959.046111] audit: type=1107 audit(1700000000.500:77): %s\n" % body)
    check_hello(only_event(line.encode()))
    cut = body.index(" exe=")
    wrapped = "type=USER_AVC msg=audit(1700000000.500:77): %s\n                  %s\n" % (body[:cut], body[cut + 1:])
    check_hello(only_event(wrapped.encode()))


@pytest.mark.parametrize("typ,mode", [
    ("APPARMOR_DENIED", "DENIED"), ("APPARMOR_ALLOWED", "ALLOWED"), ("APPARMOR_AUDIT", "AUDIT"),
    ("APPARMOR_HINT", "HINT"), ("APPARMOR_STATUS", "STATUS"), ("APPARMOR_ERROR", "ERROR"),
    ("1503", "DENIED"), ("1502", "ALLOWED"), ("1501", "AUDIT"), ("1504", "HINT"), ("1505", "STATUS"),
    ("1506", "ERROR"), ("UNKNOWN[1503]", "DENIED"),
])
def test_old_types_carry_the_class(typ, mode):
    body = ('operation="open" pid=4 profile="/bin/x" requested_mask="r::" denied_mask="r::" fsuid=0 ouid=0 '
            'name="/etc/hosts"')
    res = read(("type=%s msg=audit(1200000000.000:1): %s\n" % (typ, body)).encode())
    assert res["stats"]["records"] == 1
    ev = res["events"][0]
    assert ev["modes"] == [mode]
    if mode != "STATUS":
        assert ev["kind"] == "file" and ev["path"] == "/etc/hosts" and ev["mask"]["requested"] == "r::"
    else:
        assert ev["kind"] == "status"


@pytest.mark.parametrize("mode,kind", [("KILLED", "file"), ("HINT", "file"), ("AUDIT", "file"),
                                       ("STATUS", "status"), ("ERROR", "file"), ("ALLOWED", "file")])
def test_every_record_class_is_kept_and_classified(mode, kind):
    ev = only_event(("type=AVC msg=audit(1700000000.123:45): %s\n" % AVC.replace("DENIED", mode)).encode())
    assert ev["modes"] == [mode] and ev["kind"] == kind


def test_status_records_are_classified_not_dropped():
    line = (b'[ 2143.902340] audit: type=1400 audit(1283989336.064:272335): apparmor="STATUS" '
            b'info="failed to unpack profile" error=-71 pid=4958 comm="apparmor_parser" name="/x/net_raw" offset=159\n')
    ev = only_event(line)
    assert ev["kind"] == "status" and ev["info"] == "failed to unpack profile" and ev["error"] == -71
    assert ev["name"] == "/x/net_raw"


@pytest.mark.parametrize("encoded", ["2F746D702F6120622227", "2f746d702f6120622227"])
def test_hex_values_upper_and_lower_case(encoded):
    # the kernel hex-encodes a name holding a space or a quote: "/tmp/a b\"'"
    line = ('type=AVC msg=audit(1700000000.1:2): apparmor="ALLOWED" operation="open" profile=74657374207370616365 '
            'name=%s pid=3 comm=4143504920506F6C6C6572 requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n' % encoded)
    ev = only_event(line.encode())
    assert ev["path"] == "/tmp/a b\"'"
    assert ev["profile"] == "test space"
    assert ev["comms"] == ["ACPI Poller"]


def test_unknown_keys_are_kept():
    line = ('type=AVC msg=audit(1700000000.1:2): %s brand_new="v1" other=42\n' % AVC).encode()
    ev = only_event(line)
    assert ev["extra"] == {"brand_new": "v1", "other": "42"}
    check_shadow_open(ev, when=1700000000.1)


def test_fields_of_each_kind():
    recs = [
        'apparmor="DENIED" operation="capable" class="cap" profile="/p" pid=1 comm="c" capability=12 '
        'capname="net_admin"',
        'apparmor="DENIED" operation="sendmsg" class="net" profile="/p" pid=1 comm="c" laddr=127.0.0.1 lport=3457 '
        'saddr=127.0.0.1 src=3457 daddr=127.0.97.3 dest=3456 family="inet" sock_type="dgram" protocol=17 '
        'requested="send" denied="send"',
        'apparmor="DENIED" operation="connect" class="net" profile="/p" pid=1 comm="c" family="unix" '
        'sock_type="stream" protocol=0 requested="send receive connect" denied="send receive connect" addr=none '
        'peer_addr="@sock" peer="/q"',
        'apparmor="DENIED" operation="signal" profile="/p" pid=1 comm="c" requested_mask="send" denied_mask="send" '
        'signal=term peer="/q"',
        'apparmor="DENIED" operation="ptrace" class="ptrace" profile="/p" pid=1 comm="c" requested_mask="read" '
        'denied_mask="read" peer="/q"',
        'apparmor="DENIED" operation="mount" class="mount" info="failed flags match" error=-13 profile="/p" '
        'name="/mnt/" pid=1 comm="mount" fstype="ext4" srcname="/dev/sdb1" flags="rw, nosuid"',
        'apparmor="DENIED" operation="mount" class="mount" profile="/p" name="/tmp/foo/" pid=1 comm="c" '
        'flags="ro, remount"',
        'apparmor="DENIED" operation="umount" class="mount" profile="/p" name="/mnt/" pid=1 comm="c"',
        'apparmor="DENIED" operation="pivotroot" profile="/p" name="/new/" pid=1 comm="c" srcname="/new/old/"',
        'apparmor="DENIED" operation="change_profile" profile="/p" name="/p//x" pid=1 comm="c" target="/p//x"',
        'apparmor="ALLOWED" operation="change_hat" profile="/p" pid=1 comm="c" target="/p//HAT"',
        'apparmor="DENIED" operation="userns_create" class="namespace" profile="/p" pid=1 comm="c" '
        'requested="userns_create" denied="userns_create"',
        'apparmor="DENIED" operation="uring_override" class="io_uring" profile="/p" pid=1 comm="c" '
        'requested="override_creds" denied="override_creds" tcontext="/q"',
        'apparmor="DENIED" operation="open" class="posix_mqueue" profile="/p" name="/queue" pid=1 comm="c" '
        'requested="read create" denied="read" fsuid=0 ouid=0',
        'apparmor="DENIED" operation="exec" class="file" profile="/p" name="/bin/x" pid=1 comm="c" '
        'requested_mask="x" denied_mask="x" fsuid=0 ouid=0 target="/p//null-/bin/x"',
        'apparmor="DENIED" operation="link" class="file" profile="/p" name="/a" pid=1 comm="c" requested_mask="l" '
        'denied_mask="l" fsuid=0 ouid=0 target="/b"',
    ]
    data = "".join("type=AVC msg=audit(1700000000.1:%d): %s\n" % (i, r) for i, r in enumerate(recs)).encode()
    evs = {e["kind"] + (":" + e["operations"][0] if e["kind"] == "file" else ""): e for e in read(data)["events"]}
    assert sorted(evs) == sorted(["capability", "network", "unix", "signal", "ptrace", "mount", "remount", "umount",
                                  "pivot_root", "change_profile", "change_hat", "userns", "io_uring", "mqueue",
                                  "exec", "file:link"])
    assert evs["capability"]["capability"] == 12 and evs["capability"]["capname"] == "net_admin"
    n = evs["network"]
    assert (n["family"], n["sock_type"], n["protocol"]) == ("inet", "dgram", 17)
    assert (n["laddr"], n["lport"], n["faddr"], n["fport"]) == ("127.0.0.1", 3457, "127.0.97.3", 3456)
    u = evs["unix"]
    assert u["peer_addr"] == "@sock" and "addr" not in u and u["peer"] == "/q"
    assert u["mask"] == {"requested": "send receive connect", "denied": "send receive connect"}
    assert evs["signal"]["signal"] == "term" and evs["signal"]["peer"] == "/q"
    assert evs["ptrace"]["peer"] == "/q" and evs["ptrace"]["mask"]["requested"] == "read"
    m = evs["mount"]
    assert (m["path"], m["fstype"], m["srcname"], m["flags"], m["error"]) == ("/mnt/", "ext4", "/dev/sdb1",
                                                                             "rw, nosuid", -13)
    assert evs["remount"]["flags"] == "ro, remount"
    assert evs["pivot_root"]["path"] == "/new/" and evs["pivot_root"]["srcname"] == "/new/old/"
    assert evs["change_profile"]["target"] == "/p//x"
    assert evs["change_hat"]["target"] == "/p//HAT"
    assert evs["userns"]["mask"]["requested"] == "userns_create"
    assert evs["io_uring"]["peer"] == "/q" and "extra" not in evs["io_uring"]  # tcontext= is the target label
    q = evs["mqueue"]
    assert q["path"] == "/queue" and q["class"] == "posix_mqueue" and q["mask"] == {"requested": "read create",
                                                                                   "denied": "read"}
    x = evs["exec"]
    assert x["path"] == "/bin/x" and x["target"] == "/p//null-/bin/x" and x["owner"] is True
    assert evs["file:link"]["target"] == "/b"


def test_child_profile_label_is_kept_whole():
    line = AVC.replace('profile="/usr/bin/foo"', 'profile="/usr/bin/x//null-/usr/bin/y"')
    ev = only_event(("type=AVC msg=audit(1.0:1): %s\n" % line).encode())
    assert ev["profile"] == "/usr/bin/x//null-/usr/bin/y"
    assert ev["parent"] == "/usr/bin/x" and ev["child"] == "null-/usr/bin/y"


def test_kernel_command_line_mentioning_apparmor_is_not_a_record():
    data = (b"Nov 25 10:00:00 host kernel: Command line: BOOT_IMAGE=/vmlinuz root=/dev/sda1 apparmor=1 "
            b"security=apparmor\n")
    res = read(data)
    assert res["events"] == [] and res["stats"]["skipped"] == {} and res["stats"]["ignored"] == 1


def test_old_free_text_records_are_counted_not_read():
    data = (b"type=APPARMOR msg=audit(1167188680.127:54): REJECTING r access to /bin/x (bash(23415) profile /bin/x "
            b"active /bin/x)\n")
    res = read(data)
    assert res["events"] == [] and res["stats"]["skipped"] == {"old_format": 1}


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1970, max_value=2200), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
       st.integers(0, 59), st.integers(0, 60))
def test_timegm_matches_the_standard_library(y, mo, d, h, mi, s):
    import calendar

    tup = (y, mo, d, h, mi, s, 0, 0, 0)
    assert logparse._timegm(tup) == calendar.timegm(tup)
