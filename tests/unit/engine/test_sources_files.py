"""File sources: reading from a position, rotation (rename, copy-and-truncate, .gz), truncation.

Expectations come from what logrotate and auditd do to files (rename to NAME.1, compress older
rotations, copytruncate), not from the reader's output: every test writes known unique lines and
checks that each comes back exactly once, in order.
"""
# ruff: noqa: SIM115 - log writers keep their descriptor open across rotations on purpose
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import logsources as ls


class Collect:
    """A sink remembering every chunk it is given."""

    def __init__(self):
        self.chunks = []

    def __call__(self, data):
        assert data.endswith(b"\n"), "sources must hand on whole lines only"
        self.chunks.append(data)

    @property
    def lines(self):
        return b"".join(self.chunks).decode().splitlines()


def line(n):
    # Shaped like an audit.log record; serial n makes every line unique, as in real logs.
    return "type=AVC msg=audit(1700000000.%03d:%d): apparmor=\"DENIED\" operation=\"open\" n=%d\n" % (n % 1000, n, n)


def append(path, first, last):
    with open(path, "a") as fh:
        for n in range(first, last):
            fh.write(line(n))


def expect(first, last):
    return [line(n).rstrip("\n") for n in range(first, last)]


def read(path, state, **kw):
    sink = Collect()
    new, info = ls.read_file(str(path), state, sink, **kw)
    return sink, new, info


def test_first_read_live_only_then_nothing_new(tmp_path):
    log = tmp_path / "audit.log"
    append(tmp_path / "audit.log.1", 0, 5)
    append(log, 5, 10)
    sink, st, info = read(log, None)
    assert sink.lines == expect(5, 10)
    assert info["status"] == "ok" and info["bytes"] == log.stat().st_size
    sink, st2, info = read(log, st)
    assert sink.lines == [] and info["bytes"] == 0
    assert st2 == st


def test_include_rotated_reads_oldest_first_with_gz(tmp_path):
    log = tmp_path / "audit.log"
    with gzip.open(str(tmp_path / "audit.log.3.gz"), "wt") as fh:
        fh.writelines(line(n) for n in range(0, 3))
    with gzip.open(str(tmp_path / "audit.log.2.gz"), "wt") as fh:
        fh.writelines(line(n) for n in range(3, 6))
    append(tmp_path / "audit.log.1", 6, 9)
    append(log, 9, 12)
    (tmp_path / "audit.log.bak").write_text("not a rotation\n")
    sink, st, info = read(log, None, include_rotated=True)
    assert sink.lines == expect(0, 12)
    assert [os.path.basename(f["path"]) for f in info["files"]] == [
        "audit.log.3.gz", "audit.log.2.gz", "audit.log.1", "audit.log"]


def test_dateext_rotations_ordered_by_date(tmp_path):
    log = tmp_path / "syslog"
    append(tmp_path / "syslog-20240102", 3, 6)
    with gzip.open(str(tmp_path / "syslog-20240101.gz"), "wt") as fh:
        fh.writelines(line(n) for n in range(0, 3))
    append(log, 6, 8)
    sink, _, _ = read(log, None, include_rotated=True)
    assert sink.lines == expect(0, 8)


def test_unfinished_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 2)
    with open(log, "a") as fh:
        fh.write(line(2)[:20])
    sink, st, _ = read(log, None)
    assert sink.lines == expect(0, 2)
    with open(log, "a") as fh:
        fh.write(line(2)[20:])
    sink, st, _ = read(log, st)
    assert sink.lines == expect(2, 3)


def test_rename_rotation_with_lines_written_while_rotating(tmp_path):
    log = tmp_path / "audit.log"
    writer = open(log, "a")
    for n in range(0, 5):
        writer.write(line(n))
    writer.flush()
    sink, st, _ = read(log, None)
    assert sink.lines == expect(0, 5)
    for n in range(5, 8):
        writer.write(line(n))
    writer.flush()
    os.rename(log, tmp_path / "audit.log.1")
    # the writer has not reopened yet: these lines land in the renamed file
    for n in range(8, 10):
        writer.write(line(n))
    writer.flush()
    sink, st, info = read(log, st)  # live file does not exist at this instant
    assert sink.lines == expect(5, 10)
    writer.close()
    writer = open(log, "a")
    for n in range(10, 13):
        writer.write(line(n))
    writer.flush()
    sink, st, _ = read(log, st)
    assert sink.lines == expect(10, 13)
    writer.close()


def test_late_writes_to_the_renamed_file_after_reading_the_new_one(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 3)
    _, st, _ = read(log, None)
    old = open(log, "a")
    os.rename(log, tmp_path / "audit.log.1")
    append(log, 3, 5)  # new file already gets lines
    sink, st, _ = read(log, st)
    assert sink.lines == expect(3, 5)
    old.write(line(100))  # a line the old writer still flushes into the renamed file
    old.close()
    sink, st, _ = read(log, st)
    assert sink.lines == expect(100, 101)
    sink, st, _ = read(log, st)
    assert sink.lines == []


def test_rotation_then_compression_before_next_read(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 4)
    _, st, _ = read(log, None)
    append(log, 4, 6)
    # two rotations and compression (no delaycompress) before we look again
    os.rename(log, tmp_path / "audit.log.1")
    append(log, 6, 8)
    os.rename(tmp_path / "audit.log.1", tmp_path / "audit.log.2")
    with open(tmp_path / "audit.log.2", "rb") as src, gzip.open(str(tmp_path / "audit.log.2.gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(tmp_path / "audit.log.2")
    os.rename(log, tmp_path / "audit.log.1")
    append(log, 8, 10)
    sink, st, info = read(log, st)
    assert sink.lines == expect(4, 10)
    assert not info["restarted"] and not info["cursor_lost"]


def test_copytruncate(tmp_path):
    log = tmp_path / "syslog"
    append(log, 0, 4)
    _, st, _ = read(log, None)
    append(log, 4, 6)
    shutil.copyfile(log, tmp_path / "syslog.1")
    with open(log, "r+") as fh:
        fh.truncate(0)
    append(log, 6, 9)
    sink, st, info = read(log, st)
    assert sink.lines == expect(4, 9)


def test_truncated_in_place_restarts_from_zero_and_says_so(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 10)
    _, st, _ = read(log, None)
    with open(log, "r+") as fh:
        fh.truncate(0)
    append(log, 10, 12)  # shorter than before
    sink, st, info = read(log, st)
    assert sink.lines == expect(10, 12)
    assert info["restarted"] is True
    assert any("shrank" in n for n in info["notes"])


def test_rewritten_same_size_is_detected(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 3)
    _, st, _ = read(log, None)
    with open(log, "r+") as fh:  # same inode, same length, different bytes
        fh.seek(0)
        fh.write(line(7))
    sink, _, info = read(log, st)
    assert info["restarted"] is True
    assert sink.lines[0] == line(7).rstrip("\n")


def test_cursor_lost_when_rotated_away(tmp_path):
    log = tmp_path / "audit.log"
    append(log, 0, 3)
    _, st, _ = read(log, None)
    held = open(log)  # keeps the old inode alive so the new file cannot reuse its number
    os.unlink(log)
    append(log, 3, 5)
    sink, _, info = read(log, st)
    held.close()
    assert info["cursor_lost"] is True
    assert sink.lines == expect(3, 5)
    assert any("not found" in n for n in info["notes"])


def test_plain_rotation_preferred_over_gz_being_written(tmp_path):
    log = tmp_path / "audit.log"
    append(tmp_path / "audit.log.1", 0, 3)
    with gzip.open(str(tmp_path / "audit.log.1.gz"), "wt") as fh:
        fh.write(line(0))  # logrotate half way through compressing .1
    append(log, 3, 4)
    sink, _, _ = read(log, None, include_rotated=True)
    assert sink.lines == expect(0, 4)


def test_explicit_gz_path_and_its_cursor(tmp_path):
    gz = tmp_path / "old.log.gz"
    with gzip.open(str(gz), "wt") as fh:
        fh.writelines(line(n) for n in range(0, 3))
        fh.write("no newline at the end")
    sink, st, info = read(gz, None)
    assert sink.lines == expect(0, 3) + ["no newline at the end"]
    sink, _, _ = read(gz, st)
    assert sink.lines == []


def test_damaged_gz_is_reported_not_fatal(tmp_path):
    log = tmp_path / "audit.log"
    (tmp_path / "audit.log.2.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    append(log, 0, 2)
    sink, _, info = read(log, None, include_rotated=True)
    assert sink.lines == expect(0, 2)
    assert info["status"] == "error" and any("audit.log.2.gz" in n for n in info["notes"])


def test_missing_source(tmp_path):
    sink, st, info = read(tmp_path / "nope.log", None)
    assert st is None and info["status"] == "missing" and sink.lines == []


def test_unreadable_source():
    """A log the reading user may not open is reported as unreadable, with the state kept."""
    top = tempfile.mkdtemp(prefix="armada-unreadable-")
    try:
        os.chmod(top, 0o755)
        log = os.path.join(top, "audit.log")
        append(log, 0, 1)
        os.chmod(log, 0o600)
        code = (
            "import json,sys; from ansible_collections.armada.apparmor.plugins.module_utils import logsources as ls;"
            "st, info = ls.read_file(sys.argv[1], {'files': []}, lambda d: None); print(json.dumps([st, info]))"
        )
        # the unprivileged child needs an interpreter it may run: the system one (the engine is stdlib only)
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        cmd = [python, "-c", code, log]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                pytest.skip("running as root without setpriv: cannot drop privileges to test EACCES")
            cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
        coll_root = ls.__file__
        for _ in range(6):  # .../<root>/ansible_collections/armada/apparmor/plugins/module_utils/logsources.py
            coll_root = os.path.dirname(coll_root)
        env = dict(os.environ, PYTHONPATH=coll_root)
        out = subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=top)
        st, info = json.loads(out.stdout)
        assert info["status"] == "unreadable"
        assert st == {"files": []}
        assert any("audit.log" in n for n in info["notes"])
    finally:
        shutil.rmtree(top)


def test_second_read_over_unchanged_large_file_is_fast(tmp_path):
    log = tmp_path / "audit.log"
    with open(log, "w") as fh:
        chunk = "".join(line(n) for n in range(1000))
        for _ in range(200):  # ~20 MB
            fh.write(chunk)
    append(tmp_path / "audit.log.1", 0, 1000)
    _, st, _ = read(log, None, include_rotated=True)
    t0 = time.perf_counter()
    sink, st2, info = read(log, st)
    elapsed = time.perf_counter() - t0
    assert info["bytes"] == 0 and sink.lines == [] and st2 == st
    assert elapsed < 0.1, "second read took %.3fs" % elapsed
