"""Reader fuzzing: hostile log bytes through ``logreader.LogReader`` and through ``logsources`` + the cursor.

Hostile input: random bytes, truncated records, 1 MB lines (with and without an AppArmor marker),
invalid UTF-8, NUL bytes, records split over two lines, two records interleaved in one line, bad JSON,
bad hex. What must hold, whatever the input:

* nothing raises (feed, feed_stream, feed_journal_export, result, parse_line, read_all);
* ``stats.lines`` is the number of lines fed;
* every line that looks like AppArmor (carries one of the reader's markers) or is longer than 64 KiB
  (never read, so counted as ``too_long`` whatever it holds) is accounted for exactly once: a record,
  or ``skipped[reason]``, or ``ignored`` (a line that only mentions AppArmor);
  reasons come from the documented list; samples are short and printable;
* undamaged records among the garbage are all still read (their events are all there);
* read through a file, in appends cut at random byte offsets, with a cursor committed after every
  read and a rotation now and then: the same lines and records as one read of everything - nothing
  lost, nothing read twice.

Expectations are written from docs/events.md (the stats contract) and from how the input was built.
"""
import io
import json
import os
import random
import re

from fuzz_support import EXAMPLES, bump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import cursor, logparse, logsources
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# docs/events.md lists these; old_format (pre-2.1 free-text records the reader does not read) is the
# reader's one extra reason
REASONS = {"malformed", "truncated", "binary", "too_long", "bad_json", "bad_hex", "old_format"}
# the reader's markers for "this line is about AppArmor" (logreader._LINE_MARKERS, spelled out here)
MARKERS = (b"apparmor=", b"type=150", b"type=APPARMOR", b"UNKNOWN[150", b'"MESSAGE":[')


# ---- valid records of every format the reader knows -------------------------------------------

def avc(i, r):
    return ('type=AVC msg=audit(1700000000.%03d:%d): apparmor="%s" operation="open" profile="/usr/bin/p%d" '
            'name="/tmp/f%d" pid=%d comm="c%d" requested_mask="r" denied_mask="r" fsuid=0 ouid=0'
            % (i % 1000, i, r.choice(["DENIED", "ALLOWED"]), r.randrange(4), r.randrange(6), 100 + i, i % 3)).encode()


def syslog_cap(i, r):
    return ('Nov 25 10:00:%02d host kernel: [  12.%06d] audit: type=1400 audit(1700000000.%03d:%d): '
            'apparmor="DENIED" operation="capable" profile="/usr/sbin/d%d" pid=%d comm="d" capability=12 '
            'capname="net_admin"' % (i % 60, i, i % 1000, i, r.randrange(3), 200 + i)).encode()


def journal_json(i, r):
    msg = ('audit: type=1400 audit(1700000000.%03d:%d): apparmor="DENIED" operation="signal" profile="/usr/bin/s" '
           'pid=%d comm="s" requested_mask="send" denied_mask="send" signal=term peer="p%d"'
           % (i % 1000, i, 300 + i, r.randrange(3)))
    return json.dumps({"MESSAGE": msg, "__REALTIME_TIMESTAMP": "1700000000000000", "__CURSOR": "s=%d" % i,
                       "_TRANSPORT": "kernel"}).encode()


def user_avc(i, r):
    return ("type=USER_AVC msg=audit(1700000000.%03d:%d): pid=1 uid=103 auid=4294967295 ses=4294967295 "
            "subj=unconfined msg='apparmor=\"DENIED\" operation=\"dbus_method_call\" bus=\"system\" "
            "path=\"/org/x%d\" interface=\"org.x\" member=\"M\" mask=\"send\" name=\"org.x\" pid=%d "
            "label=\"/usr/bin/b\" peer_pid=3 peer_label=\"unconfined\" exe=\"/usr/bin/dbus-daemon\" sauid=103 "
            "hostname=? addr=? terminal=?'" % (i % 1000, i, r.randrange(3), 400 + i)).encode()


def hex_name(i, r):
    name = "/tmp/a b\"c%d" % r.randrange(3)
    return ('type=AVC msg=audit(1700000000.%03d:%d): apparmor="DENIED" operation="open" profile="/usr/bin/h" '
            'name=%s pid=%d comm="h" requested_mask="w" denied_mask="w" fsuid=0 ouid=0'
            % (i % 1000, i, name.encode().hex().upper(), 500 + i)).encode()


VALID = [avc, syslog_cap, journal_json, user_avc, hex_name]


def noise(r):
    """A line that is not about AppArmor (random printable text without any marker)."""
    words = ["kernel:", "systemd[1]:", "Started", "session", "audit(", "type=1300", "msg=", "x" * r.randrange(50)]
    return " ".join(r.choice(words) for _ in range(r.randrange(1, 8))).encode()


def damage(line, r, other):
    """One hostile change to a record line; may produce several lines (split) or one huge line."""
    how = r.choice(["truncate", "nul", "invalid_utf8", "random", "split", "interleave", "huge", "huge_plain",
                    "bad_hex", "bad_json", "cr", "binary_tail", "stamps", "nested_json", "digits", "name_run"])
    cut = r.randrange(1, max(2, len(line)))
    if how == "truncate":
        out = [line[:cut]]
    elif how == "nul":
        out = [line[:cut] + b"\x00" + line[cut:]]
    elif how == "invalid_utf8":
        out = [line[:cut] + r.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + line[cut:]]
    elif how == "random":
        out = [bytes(r.randrange(256) for _ in range(r.randrange(1, 300))).replace(b"\n", b"")]
    elif how == "split":
        out = [line[:cut], line[cut:]]
    elif how == "interleave":
        out = [line[:cut] + other + line[cut:]]
    elif how == "huge":
        out = [line[:cut] + b"A" * (1 << 20) + line[cut:]]
    elif how == "huge_plain":
        out = [b"B" * (1 << 20)]
    elif how == "bad_hex":
        out = [line.replace(b'name="/tmp/', b"name=2F746D70FF", 1) if b'name="/tmp/' in line
               else line + b" name=FFFE"]
    elif how == "bad_json":
        out = [b'{"MESSAGE": "apparmor=\\"DENIED\\" ' + line[:cut].replace(b'"', b"'")]
    elif how == "stamps":  # many stamps without pid= (was quadratic), under or over the line limit
        out = [line[:cut] + b'audit(1700000000.1:2): apparmor="DENIED" ' * r.choice([2, 100, 1500, 3000])]
    elif how == "nested_json":  # json.loads raised RecursionError
        depth = r.choice([10, 5000, 30000])
        out = [b'{"MESSAGE":"apparmor=","x":' + b"[" * depth + b"]" * depth + b"}"]
    elif how == "digits":  # int() of 4300+ digits raises ValueError
        out = [re.sub(rb"(pid|fsuid|ouid)=\d+", lambda m: m.group(1) + b"=" + b"9" * 5000, line, count=1)]
    elif how == "name_run":  # a long run of name characters without "=" (key scan was quadratic)
        out = [line + b" " + b"a-" * r.choice([10, 20000])]
    elif how == "cr":
        out = [line[:cut] + b"\r" + line[cut:]]
    else:
        out = [line + b" \x01\x02\x7f"]
    return how, [x.replace(b"\n", b" ") for x in out]


def build(seed, n_valid, n_noise, n_damaged):
    """(lines, the undamaged record lines, damage kinds used), shuffled deterministically by ``seed``."""
    r = random.Random(seed)
    valid = [r.choice(VALID)(i, r) for i in range(n_valid)]
    lines = list(valid) + [noise(r) for _ in range(n_noise)]
    kinds = []
    for j in range(n_damaged):
        base = r.choice(VALID)(10000 + j, r)
        how, out = damage(base, r, r.choice(VALID)(20000 + j, r))
        kinds.append(how)
        lines.extend(out)
    r.shuffle(lines)
    return lines, valid, kinds


def candidates(lines):
    return sum(1 for ln in lines if len(ln) > logparse.MAX_LINE or any(m in ln for m in MARKERS))


def check_stats(res, lines):
    st_ = res["stats"]
    assert st_["lines"] == len(lines)
    for reason, n in st_["skipped"].items():
        assert reason in REASONS and n > 0, (reason, n)
    for reason, samples in st_["samples"].items():
        assert reason in st_["skipped"] and len(samples) <= 3
        for s in samples:
            # docs/events.md says "at most 200 chars": the reader cuts 200 source characters and then
            # escapes non-printables as \xNN, so the bound is 4 x 200 (+ "..."); reported to the owner
            assert len(s) <= 4 * 200 + 3 and s.isprintable(), s
    accounted = st_["records"] + sum(st_["skipped"].values()) + st_["ignored"]
    assert accounted == candidates(lines), (
        "AppArmor-looking lines %d, accounted %d (records %d, skipped %r, ignored %d)"
        % (candidates(lines), accounted, st_["records"], st_["skipped"], st_["ignored"]))
    assert sum(e["count"] for e in res["events"]) == st_["records"] - st_["filtered"] - st_["dropped"]
    json.dumps(res)  # plain JSON: it crosses the network as module output


def events_by_id(res):
    return {e["id"]: e["count"] for e in res["events"]}


@SETTINGS
@given(st.integers(0, 2 ** 32), st.integers(0, 40), st.integers(0, 20), st.integers(0, 25),
       st.sampled_from(["feed", "stream", "pieces"]))
def test_fuzz_reader_hostile_lines_are_counted_and_good_records_kept(seed, n_valid, n_noise, n_damaged, how):
    lines, valid, kinds = build(seed, n_valid, n_noise, n_damaged)
    bump("reader", "cases")
    bump("reader", "lines", n=len(lines))
    bump("reader", "damaged_lines", n=len(kinds))
    data = b"".join(ln + b"\n" for ln in lines)
    r = LogReader()
    if how == "feed":
        r.feed(data)
    elif how == "stream":
        r.feed_stream(io.BytesIO(data), block=random.Random(seed).choice([64, 4096, 1 << 16]))
    else:  # whole lines in several feeds
        rnd = random.Random(seed)
        i = 0
        while i < len(lines):
            k = rnd.randrange(1, 6)
            r.feed(b"".join(ln + b"\n" for ln in lines[i:i + k]))
            i += k
    res = r.result()
    check_stats(res, lines)
    # every undamaged record is still read: its event is there with at least its own count
    alone = LogReader()
    alone.feed(b"".join(ln + b"\n" for ln in valid))
    good = alone.result()
    assert good["stats"]["records"] == len(valid) and not good["stats"]["skipped"]
    mixed = events_by_id(res)
    for eid, n in events_by_id(good).items():
        assert mixed.get(eid, 0) >= n, "a good record was lost among hostile lines"
    for reason, n in res["stats"]["skipped"].items():
        bump("reader", "skipped_" + reason, n=n)


@SETTINGS
@given(st.binary(max_size=4096), st.binary(max_size=300))
def test_fuzz_reader_random_bytes_never_raise(blob, tail):
    bump("reader", "cases")
    data = blob + b"apparmor=" + tail  # at least one AppArmor-looking line
    r = LogReader(raw_samples=True)
    r.feed(data)
    r.feed_journal_export(data)  # the export framing, same hostile bytes
    res = r.result()
    assert res["stats"]["lines"] >= 1
    for reason in res["stats"]["skipped"]:
        assert reason in REASONS
    for line in data.split(b"\n"):
        logparse.parse_line(line)  # the one-line API must not raise either
    json.dumps(res)


def test_fuzz_reader_one_megabyte_lines():
    """1 MB lines, one with a record inside, one without: both too_long (the reader does not look inside
    a line over 64 KiB, so it cannot tell); the records around them are read."""
    bump("reader", "cases")
    r = random.Random(7)
    good = [avc(i, r) for i in range(3)]
    lines = [good[0], b"x" * (1 << 20), good[1], avc(99, r)[:40] + b"y" * (1 << 20) + b' apparmor="DENIED"', good[2]]
    res = LogReader()
    res.feed(b"".join(ln + b"\n" for ln in lines))
    out = res.result()
    assert out["stats"]["records"] == 3 and out["stats"]["skipped"] == {"too_long": 2}
    check_stats(out, lines)


# ---- through logsources and the cursor ----------------------------------------------------------

def _read_once(store, name, path, reader):
    srcs, _notes = logsources.resolve_sources([path])
    positions = store.load(name)
    new, reports = logsources.read_all(srcs, positions, reader.feed)
    assert all(rep["status"] == "ok" for rep in reports), reports
    store.commit(name, cursor.make_token(name, positions, new))
    return reports


@settings(max_examples=max(10, EXAMPLES // 10), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32), st.lists(st.integers(1, 4000), min_size=1, max_size=8),
       st.lists(st.sampled_from(["none", "rename", "copytruncate"]), min_size=8, max_size=8))
def test_fuzz_reader_through_cursor_in_random_appends(tmp_path_factory, seed, cuts, rotations):
    """Appends cut at arbitrary byte offsets (mid-line, mid-UTF-8 sequence), a cursor commit after each
    read, rotations between reads: the total equals one read of the whole content."""
    bump("reader", "cases")
    top = tmp_path_factory.mktemp("fz")
    lines, _valid, _kinds = build(seed, 30, 10, 12)
    lines = [ln for ln in lines if len(ln) < 100000]  # keep the file small; 1 MB lines are tested above
    data = b"".join(ln + b"\n" for ln in lines)
    path = str(top / "audit.log")
    store = cursor.CursorStore(str(top / "cursors"))
    open(path, "wb").close()
    offsets = sorted(set(c * len(data) // 4001 for c in cuts))
    total = LogReader()
    pos = 0
    for k, off in enumerate(offsets + [len(data)]):
        with open(path, "ab") as fh:
            fh.write(data[pos:off])
        pos = max(pos, off)
        _read_once(store, "fz", path, total)
        action = rotations[k % len(rotations)]
        if pos and data[pos - 1:pos] != b"\n":
            # a half-written line: logrotate would split it between two files (copytruncate), or the
            # writer would finish it in the renamed file; neither is one line any more, so rotate only
            # between whole lines here (the half line itself is carried over by the reads above)
            action = "none"
        if action == "rename":
            n = 1
            while os.path.exists("%s.%d" % (path, n)):
                n += 1
            for i in range(n - 1, 0, -1):
                os.rename("%s.%d" % (path, i), "%s.%d" % (path, i + 1))
            os.rename(path, path + ".1")
            open(path, "wb").close()
        elif action == "copytruncate":
            n = 1
            while os.path.exists("%s.%d" % (path, n)):
                n += 1
            for i in range(n - 1, 0, -1):
                os.rename("%s.%d" % (path, i), "%s.%d" % (path, i + 1))
            with open(path, "rb") as src, open(path + ".1", "wb") as dst:
                dst.write(src.read())
            with open(path, "r+b") as fh:
                fh.truncate(0)
    _read_once(store, "fz", path, total)  # nothing new: must add nothing
    once = LogReader()
    once.feed(data)
    a, b = total.result(), once.result()
    for key in ("lines", "records", "ignored", "skipped"):
        assert a["stats"][key] == b["stats"][key], (key, a["stats"][key], b["stats"][key])
    assert events_by_id(a) == events_by_id(b)
