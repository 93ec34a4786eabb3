"""LogReader behaviour: folding, filters, caps, bad input, and agreement of the fast and general paths."""
import gzip
import io
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import events as ev_mod
from ansible_collections.armada.apparmor.plugins.module_utils import logparse, logreader
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "200"))


def avc(serial, mode="DENIED", op="open", profile="/usr/bin/foo", name="/etc/shadow", pid=1234, comm="foo",
        req="r", den="r", fsuid=1000, ouid=0, t=1700000000):
    return ('type=AVC msg=audit(%d.%03d:%d): apparmor="%s" operation="%s" profile="%s" name="%s" pid=%d comm="%s" '
            'requested_mask="%s" denied_mask="%s" fsuid=%d ouid=%d\n'
            % (t + serial // 1000, serial % 1000, serial, mode, op, profile, name, pid, comm, req, den, fsuid, ouid))


def read(data, **kw):
    r = LogReader(**kw)
    r.feed(data if isinstance(data, bytes) else data.encode())
    return r.result()


def test_identical_accesses_fold_with_unions():
    lines = [avc(1, pid=10, comm="a", t=100), avc(2, op="getattr", pid=11, comm="b", t=200),
             avc(3, mode="ALLOWED", pid=12, den="", t=300), avc(4, t=50)]
    res = read("".join(lines))
    assert len(res["events"]) == 1
    ev = res["events"][0]
    assert ev["count"] == 4
    assert ev["operations"] == ["getattr", "open"]
    assert ev["modes"] == ["ALLOWED", "DENIED"]
    assert ev["pids"] == [10, 11, 12, 1234] and ev["comms"] == ["a", "b", "foo"]
    assert ev["first_seen"] == pytest.approx(50.004) and ev["last_seen"] == pytest.approx(300.003)
    assert ev["mask"] == {"requested": "r", "denied": "r"}
    assert res["stats"]["records"] == 4 and res["stats"]["events"] == 1


def test_different_identity_does_not_fold():
    lines = [avc(1), avc(2, req="w", den="w"), avc(3, name="/etc/passwd"), avc(4, ouid=1000),
             avc(5, profile="/usr/bin/foo//null-/bin/x")]
    res = read("".join(lines))
    assert len(res["events"]) == 5
    assert len({e["id"] for e in res["events"]}) == 5


def test_ids_are_stable_across_readers_and_order():
    lines = [avc(i, name="/f%d" % (i % 7), pid=i) for i in range(50)]
    a = {e["id"]: e["path"] for e in read("".join(lines))["events"]}
    b = {e["id"]: e["path"] for e in read("".join(reversed(lines)))["events"]}
    assert a == b and len(a) == 7


def test_pids_are_bounded():
    res = read("".join(avc(i, pid=1000 + i) for i in range(100)))
    ev = res["events"][0]
    assert ev["count"] == 100 and 1 <= len(ev["pids"]) <= ev_mod.MAX_PIDS


def test_many_small_feeds_equal_one_feed():
    lines = [avc(i, name="/f%d" % (i % 13), mode="DENIED" if i % 3 else "ALLOWED") for i in range(300)]
    one = read("".join(lines))
    r = LogReader()
    for ln in lines:
        r.feed(ln.encode())
    many = r.result()
    strip = lambda res: sorted((e["id"], e["count"], tuple(e["modes"])) for e in res["events"])  # noqa: E731
    assert strip(one) == strip(many)
    assert one["stats"]["records"] == many["stats"]["records"] == 300


def test_fast_path_and_general_path_agree(monkeypatch):
    """The same records read in a fast-shape block and in a mixed block give the same events."""
    rng = random.Random(7)
    lines = []
    for i in range(400):
        lines.append(avc(i, name=rng.choice(["/a", "/b c", "/d"]), pid=rng.randint(1, 99999),
                         mode=rng.choice(["DENIED", "ALLOWED"]), comm=rng.choice(["x", "y"])))
    fast = read("".join(lines))
    # a USER_AVC line forces the mixed path; the general path handles it and the AVC lines come by position
    extra = ("type=USER_AVC msg=audit(1.0:1): pid=1 uid=0 auid=1 ses=1 subj=? msg='apparmor=\"DENIED\" "
             "operation=\"dbus_bind\" bus=\"system\" name=\"a.b\" mask=\"bind\" pid=5 label=\"/p\" exe=\"/d\"'\n")
    mixed = read("".join(lines) + extra)
    raw = read("".join(lines), raw_samples=True)  # raw samples always take the mixed path
    key = lambda e: (e["id"], e["count"], e["first_seen"], e["last_seen"], tuple(e["modes"]))  # noqa: E731
    want = sorted(key(e) for e in fast["events"])
    assert sorted(key(e) for e in mixed["events"] if e["kind"] != "dbus") == want
    assert sorted(key(e) for e in raw["events"]) == want
    assert all(e["raw_sample"].startswith("type=AVC msg=audit(") for e in raw["events"])
    assert all("raw_sample" not in e for e in fast["events"])
    # and the general path alone, one line at a time, through parse_line
    one_by_one = {}
    for ln in lines:
        e = logparse.parse_line(ln.encode())["event"]
        one_by_one[e["id"]] = one_by_one.get(e["id"], 0) + 1
    assert {e["id"]: e["count"] for e in fast["events"]} == one_by_one


def test_template_cache_is_bounded_and_folding_is_exact(monkeypatch):
    monkeypatch.setattr(logreader, "MAX_TEMPLATES", 5)
    monkeypatch.setattr(logreader, "BLOCK", 2000)
    lines = [avc(i, name="/f%d" % (i % 40), comm="c%d" % (i % 3)) for i in range(600)]
    r = LogReader()
    for i in range(0, 600, 20):
        r.feed("".join(lines[i:i + 20]).encode())
        assert len(r._tmpl) <= 5 + 20 * 3  # emptied after every block beyond the bound
    res = r.result()
    assert len(res["events"]) == 40 and sum(e["count"] for e in res["events"]) == 600
    assert all(sorted(e["comms"]) == ["c0", "c1", "c2"] for e in res["events"])


def test_profile_and_mode_filters():
    lines = [avc(1, profile="/usr/bin/foo"), avc(2, profile="/usr/sbin/bar", mode="ALLOWED"),
             avc(3, profile="/usr/bin/foo//hat"), avc(4, profile="/opt/x", mode="AUDIT")]
    res = read("".join(lines), profiles=["/usr/bin/*"])
    assert sorted(e["profile"] for e in res["events"]) == ["/usr/bin/foo", "/usr/bin/foo//hat"]
    assert res["stats"]["filtered"] == 2 and res["stats"]["records"] == 4
    res = read("".join(lines), modes=["denied", "ALLOWED"])
    assert sorted(e["profile"] for e in res["events"]) == ["/usr/bin/foo", "/usr/bin/foo//hat", "/usr/sbin/bar"]
    res = read("".join(lines), profiles=["/{opt,usr/sbin}/**"])
    assert sorted(e["profile"] for e in res["events"]) == ["/opt/x", "/usr/sbin/bar"]


def test_max_events_caps_distinct_events_and_counts_drops():
    lines = [avc(i, name="/f%d" % i) for i in range(10)] + [avc(100, name="/f0")]
    res = read("".join(lines), max_events=3)
    assert len(res["events"]) == 3
    assert res["stats"]["max_events_reached"] is True and res["stats"]["dropped"] == 7
    assert sum(e["count"] for e in res["events"]) == 4


@pytest.mark.parametrize("line,reason", [
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" operation="open" profile="/p" name="/etc/pa', "truncated"),
    (b'type=AVC msg=audit(17000=====0.1:2): apparmor="DENIED" operation="open" profile="/p" pid=1', "malformed"),
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" operation="open" profile="/p\xff\xfe" pid=1', "binary"),
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" operation="open" profile="/p\x00" pid=1', "binary"),
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" operation="ptrace" profile="/p" pid=1 target=8022C0FF81',
     "bad_hex"),
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" operation="open" name="' + b"a" * 70000 + b'" pid=1',
     "too_long"),
    (b'{"MESSAGE": "apparmor=\\"DENIED\\" operation=\\"open\\"", "__REALTIME', "bad_json"),
    (b'type=AVC msg=audit(1700000000.1:2): apparmor="DENIED" pid=1', "truncated"),
])
def test_bad_lines_are_counted_per_reason_with_sanitised_samples(line, reason):
    good = avc(5).encode()
    res = read(good + line + b"\n" + good)
    assert res["stats"]["skipped"] == {reason: 1}, res["stats"]
    assert res["stats"]["records"] == 2 and len(res["events"]) == 1 and res["events"][0]["count"] == 2
    sample = res["stats"]["samples"][reason][0]
    assert len(sample) <= logparse.SAMPLE_LEN + 3
    assert all(ch >= " " for ch in sample) and "\x00" not in sample


def test_samples_per_reason_are_few():
    bad = b"".join(b'type=AVC msg=audit(1.%d:2): apparmor="DENIED" operation="open" name="/x%d\n' % (i, i)
                   for i in range(50))
    res = read(bad)
    assert res["stats"]["skipped"] == {"truncated": 50}
    assert len(res["stats"]["samples"]["truncated"]) == logreader.MAX_SAMPLES


def test_stats_shape():
    res = read(avc(1) + "unrelated line\n" + avc(2, op="capable"))
    st = res["stats"]
    assert st["lines"] == 3 and st["records"] == 2 and st["bytes"] == len((avc(1) + "unrelated line\n" + avc(2,
                                                                            op="capable")).encode())
    assert st["kinds"] == {"file": 1, "capability": 1} and st["modes"] == {"DENIED": 2}
    assert 0 < st["apparmor_bytes"] <= st["bytes"] and st["seconds"] >= 0


def test_feed_stream_reads_plain_and_gz_files_with_a_line_split_over_blocks(tmp_path):
    lines = "".join(avc(i, name="/f%d" % (i % 5)) for i in range(200)).encode()
    r = LogReader()
    r.feed_stream(io.BytesIO(lines), block=1000)  # tiny blocks: lines cross block borders
    res = r.result()
    assert res["stats"]["records"] == 200 and len(res["events"]) == 5 and res["stats"]["lines"] == 200
    gz = tmp_path / "audit.log.2.gz"
    with gzip.open(str(gz), "wb") as fh:
        fh.write(lines)
    r = LogReader()
    with gzip.open(str(gz), "rb") as fh:
        r.feed_stream(fh, block=4096)
    assert r.result()["stats"]["records"] == 200


def test_last_line_without_newline_is_read():
    res = read(avc(1).rstrip("\n"))
    assert res["stats"]["records"] == 1


def test_result_events_are_plain_json():
    import json
    res = read(avc(1) + avc(2, op="capable"))
    assert json.loads(json.dumps(res)) == res


LINE_PARTS = st.sampled_from([
    b"type=AVC msg=audit(1700000000.1:2): ", b"apparmor=", b'"DENIED"', b' operation="open"', b' profile="/p"',
    b" pid=", b"12", b' name="/x y"', b" name=2F78", b"msg='", b"'", b'"', b"\x1d", b"\x00", b"\xff", b"node=h ",
    b"type=1503 ", b"type=APPARMOR_DENIED ", b"audit(", b"): ", b"{", b'"MESSAGE":[', b"]", b"}", b"\n", b" ",
    b"Nov 25 10:00:00 h kernel: ", b"[  1.0] ", b"=", b"requested_mask=", b"fsuid=1 ouid=1",
])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE_PARTS, max_size=40), st.binary(max_size=200))
def test_fuzz_hostile_input_never_raises(parts, noise):
    data = b"".join(parts) + noise
    r = LogReader()
    r.feed(data)
    r.feed_journal_export(data)
    res = r.result()
    st_ = res["stats"]
    assert st_["records"] >= sum(e["count"] for e in res["events"])
    for e in res["events"]:
        assert e["kind"] in ev_mod.KINDS and e["count"] >= 1
    for line in data.split(b"\n"):
        one = logparse.parse_line(line)
        assert (one["event"] is None) == (one["skip"] is not None or one["record"] is None)


def test_node_on_every_line_across_blocks_and_a_change_inside_a_block(monkeypatch):
    """auditd writes node= on every line or none (name_format); a change inside a block is seen."""
    monkeypatch.setattr(logreader, "BLOCK", 4096)
    monkeypatch.setattr(logreader, "_EDGE", 512)
    plain = [avc(i, name="/p%d" % (i % 3)) for i in range(40)]
    noded = ["node=web%d %s" % (i % 2, avc(100 + i, name="/p%d" % (i % 3))) for i in range(40)]
    r = LogReader(host="inv")
    r.feed_stream(io.BytesIO("".join(plain + noded + plain).encode()), block=4096)
    res = r.result()
    by_host = {}
    for e in res["events"]:
        by_host[e["host"]] = by_host.get(e["host"], 0) + e["count"]
    assert by_host == {"inv": 80, "web0": 20, "web1": 20}


def test_feed_stream_line_longer_than_the_block():
    long_name = "/x" * 3000
    data = (avc(1) + avc(2, name=long_name) + avc(3)).encode()
    r = LogReader()
    r.feed_stream(io.BytesIO(data), block=1024)
    res = r.result()
    assert res["stats"]["records"] == 3
    assert sorted(e["path"] for e in res["events"]) == sorted(["/etc/shadow", long_name])


def test_ephemeral_ports_fold_and_are_parsed_once(monkeypatch):
    calls = []
    real = logreader.parse_record
    monkeypatch.setattr(logreader, "parse_record", lambda *a, **k: calls.append(1) or real(*a, **k))
    lines = ''.join(
        'type=AVC msg=audit(1700000000.%03d:%d): apparmor="DENIED" operation="sendmsg" profile="/p" pid=%d comm="x" '
        'laddr=10.0.0.1 lport=%d faddr=10.0.0.2 fport=443 family="inet" sock_type="stream" protocol=6 '
        'requested_mask="send" denied_mask="send"\n' % (i, i, 100 + i, 40000 + i) for i in range(500))
    res = read(lines)
    assert len(res["events"]) == 1 and len(calls) == 1
    ev = res["events"][0]
    assert ev["count"] == 500 and ev["lport"] == 40000 and ev["fport"] == 443  # the first record's
    assert ev["first_seen"] == pytest.approx(1700000000.0) and ev["last_seen"] == pytest.approx(1700000000.499)


def test_record_without_pid_in_a_block_of_fast_records():
    status = ('type=AVC msg=audit(1700000001.000:9): apparmor="STATUS" operation="profile_load" profile="unconfined" '
              'name="/usr/bin/x" comm="apparmor_parser"\n')
    res = read("".join(avc(i) for i in range(50)) + status + avc(60))
    assert res["stats"]["records"] == 52
    kinds = {e["kind"]: e for e in res["events"]}
    assert kinds["status"]["name"] == "/usr/bin/x" and kinds["status"]["pids"] == []
    assert kinds["file"]["count"] == 51


def test_pid_inside_a_quoted_value_is_not_taken_for_the_record_pid():
    """The record's pid is the ``pid=`` field, not a ``pid=`` inside a quoted value after it.

    Every record here comes from process 10; the quoted info names other pids. The block scan splits a
    record at its last " pid=", so such a block must take the path that splits at the first one.
    """
    lines = []
    for i, other in enumerate([10, 11, 12, 11, 13]):
        lines.append('type=AVC msg=audit(1700000000.%03d:%d): apparmor="DENIED" operation="open" '
                     'profile="/usr/bin/foo" name="/etc/shadow" pid=10 comm="foo" requested_mask="r" denied_mask="r" '
                     'fsuid=1000 ouid=0 '
                     'info="held by pid=%d"\n' % (i, i + 1, other))
    res = read("".join(lines))
    assert [(e["count"], e["pids"]) for e in res["events"]] == [(5, [10])]
    assert res["events"][0]["first_seen"] == 1700000000.0 and res["events"][0]["last_seen"] == 1700000000.004
    for ln in lines:  # each line alone agrees on the pid
        assert logparse.parse_line(ln.encode())["event"]["pids"] == [10]
