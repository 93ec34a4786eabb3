"""The reader cannot be stalled, blown up or stopped by one hostile line (issue 12, item 5).

Each case was measured before the fix (docs/security.md, *Reader bounds*): a 256 KiB line of
``audit(...): apparmor="DENIED"`` stamps took 24 s (the block regex restarted at every stamp and ran
to the end of the line), a rotated .gz holding one 256 MiB line without a newline took 75 s and
534 MiB RSS (the unfinished line was kept and copied whole), and a deeply nested JSON line raised
RecursionError out of the reader. Time is shown linear in ``make bench`` (bench_reader_bounds.py);
these tests assert what can be asserted without a clock: counts, skip reasons, the records after the
bad line, and memory through an address-space limit in a child process (MemoryError is deterministic).
"""
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import logparse, logreader, logsources
from ansible_collections.armada.apparmor.plugins.module_utils.logparse import MAX_LINE
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

GOOD = (b'type=AVC msg=audit(1700000000.123:42): apparmor="DENIED" operation="open" profile="/usr/bin/p" '
        b'name="/etc/x" pid=7 comm="c" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
STAMP = b'audit(1700000000.123:42): apparmor="DENIED" '


def read(data, how="feed"):
    r = LogReader()
    if how == "feed":
        r.feed(data)
    else:
        r.feed_stream(io.BytesIO(data), block=4096)
    return r.result()


@pytest.mark.parametrize("how", ["feed", "stream"])
@pytest.mark.parametrize("size,reason", [(60 * 1024, "truncated"), (256 * 1024, "too_long")])
def test_a_line_of_repeated_stamps_is_one_skip_and_the_next_record_is_read(how, size, reason):
    line = STAMP * (size // len(STAMP))
    res = read(GOOD + b"\n" + line + b"\n" + GOOD + b"\n", how)
    st = res["stats"]
    assert st["skipped"] == {reason: 1} and st["records"] == 2 and st["lines"] == 3
    assert res["events"][0]["count"] == 2


@pytest.mark.parametrize("how", ["feed", "stream"])
def test_a_run_of_name_characters_without_equals_is_parsed_once(how):
    # parse_fields tried a key at every position of the run (quadratic); now at its start only
    line = b'type=AVC msg=audit(1.1:1): apparmor="DENIED" operation="open" profile="/p" name="/x" ' + \
        b"a-" * 30000 + b" pid=3"
    res = read(line + b"\n" + GOOD + b"\n", how)
    assert res["stats"]["records"] == 2 and not res["stats"]["skipped"]
    assert logparse.parse_fields("x a9-b=1 9-c=2 -_d=3 e=4")[0] == {"a9-b": "1", "c": "2", "_d": "3", "e": "4"}


def test_deeply_nested_json_is_bad_json_and_the_next_entry_is_read():
    nested = b'{"MESSAGE":"apparmor=","x":' + b"[" * 30000 + b"]" * 30000 + b"}"
    good = json.dumps({"MESSAGE": GOOD.decode(), "__REALTIME_TIMESTAMP": "1700000000000000"}).encode()
    res = read(nested + b"\n" + good + b"\n")
    assert res["stats"]["skipped"] == {"bad_json": 1} and res["stats"]["records"] == 1
    assert logparse.parse_line(nested)["skip"] == "bad_json"


@pytest.mark.parametrize("field", [b"pid", b"fsuid", b"error", b"serial", b"journal_time"])
def test_numbers_of_thousands_of_digits_do_not_raise(field):
    digits = b"9" * 5000
    if field == b"serial":
        line = GOOD.replace(b":42)", b":" + digits + b")")
    elif field == b"journal_time":
        line = json.dumps({"MESSAGE": GOOD.decode().split("msg=")[1],
                           "__REALTIME_TIMESTAMP": digits.decode()}).encode()
    else:
        line = GOOD + b" " + field + b"=" + digits if field != b"pid" else GOOD.replace(b"pid=7", b"pid=" + digits)
    for how in ("feed", "stream"):
        res = read(line + b"\n" + GOOD + b"\n", how)
        assert res["stats"]["records"] + sum(res["stats"]["skipped"].values()) == 2
        assert res["events"] and res["events"][0]["count"] >= 1
    logparse.parse_line(line)


def test_an_over_long_line_is_cut_by_the_line_cutter_and_memory_stays_bounded():
    got = []
    cut = logsources.LineCutter(got.append)
    done = cut.push(GOOD + b"\n" + b"A" * 1000)
    held = []
    for _ in range(64):  # 64 MiB of one line, 1 MiB at a time
        done += cut.push(b"B" * (1 << 20))
        held.append(len(cut.carry))
    done += cut.push(b"C\n" + GOOD + b"\n")
    assert max(held) == MAX_LINE + 1
    assert b"".join(got) == GOOD + b"\n" + (b"A" * 1000 + b"B" * MAX_LINE)[:MAX_LINE + 1] + b"\n" + GOOD + b"\n"
    assert done == len(GOOD) * 2 + 2 + 1000 + 64 * (1 << 20) + 2


CHILD = textwrap.dedent("""
    import json, resource, sys
    from ansible_collections.armada.apparmor.plugins.module_utils import logsources
    from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader
    import gzip
    def vm():
        with open("/proc/self/status") as fh:
            return [int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:")][0]
    limit = vm() + 48 * 1024 * 1024  # what the reader may allocate on top of the interpreter
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    r = LogReader()
    _state, info = logsources.read_file(sys.argv[1], None, r.feed, include_rotated=True)
    out["read_file"] = r.result()["stats"]
    out["status"] = info["status"]
    r = LogReader()
    with gzip.open(sys.argv[1] + ".1.gz", "rb") as fh:
        r.feed_stream(fh)
    out["feed_stream"] = r.result()["stats"]
    print(json.dumps(out))
""")


def test_a_rotated_gz_with_one_huge_line_is_read_in_bounded_memory(tmp_path):
    """128 MiB in one line without a newline, then a good record in the live file: read under a 48 MiB
    address-space allowance (before: the unfinished line was kept whole and copied, MemoryError)."""
    log = tmp_path / "audit.log"
    with gzip.open(str(log) + ".1.gz", "wb", compresslevel=1) as fh:
        fh.write(GOOD + b"\n")
        block = b'audit(1.1:1): apparmor="DENIED" ' + b"A" * ((1 << 20) - 32)
        for _ in range(128):
            fh.write(block)
    log.write_bytes(GOOD + b"\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(log)], capture_output=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "ok"
    rf = out["read_file"]
    assert rf["records"] == 2 and rf["skipped"] == {"too_long": 1} and rf["lines"] == 3
    fs = out["feed_stream"]
    assert fs["records"] == 1 and fs["skipped"] == {"too_long": 1} and fs["lines"] == 2
    assert fs["bytes"] == len(GOOD) + 1 + 128 * (1 << 20)


@pytest.mark.parametrize("shape", ["fast", "general"])
def test_the_cache_of_distinct_bodies_is_folded_at_its_byte_budget(monkeypatch, shape):
    """Distinct records up to 64 KiB each: the cache is folded away at MAX_TEMPLATE_BYTES, nothing is lost."""
    monkeypatch.setattr(logreader, "MAX_TEMPLATE_BYTES", 20000)
    r = LogReader()
    most = 0
    for i in range(60):
        rec = GOOD.replace(b"/etc/x", b"/etc/" + (b"%02d" % i) * 500)
        if shape == "general":
            rec = b"Nov 25 10:00:01 host dbus-daemon[1]: " + rec.split(b"): ", 1)[1]
        for _ in range(2):
            r.feed(rec + b"\n")
            r._drain()
            most = max(most, r._tmpl_bytes)
    res = r.result()
    assert most <= 20000
    assert res["stats"]["records"] == 120 and len(res["events"]) == 60
    assert all(e["count"] == 2 for e in res["events"])
