"""The log is rotated between reading and committing the cursor (issue 8, fault "log rotated").

Real files, real renames and truncations in a tmp directory, the real reader: a read issues a token,
the writer appends and logrotate rotates (rename + new file; copytruncate; compression of the
rotated file), only then is the token committed, and the next read must return exactly the records
written after the first read - nothing lost, nothing twice. Every record has its own name, so
"exactly once" is checked record by record.
"""
import gzip
import os
import shutil

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import cursor, logsources
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader


def rec(i):
    return ('type=AVC msg=audit(1700000000.%03d:%d): apparmor="DENIED" operation="open" profile="/usr/bin/w" '
            'name="/srv/r%04d" pid=1 comm="w" requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n'
            % (i % 1000, i, i)).encode()


class Log:
    def __init__(self, top):
        self.path = str(top / "audit.log")
        self.store = cursor.CursorStore(str(top / "cursors"))
        self.fh = open(self.path, "ab")  # noqa: SIM115 - a daemon's long-lived log descriptor

    def write(self, *ids):
        for i in ids:
            self.fh.write(rec(i))
        self.fh.flush()

    def read(self):
        """One read: (record ids seen, token). The cursor is NOT moved."""
        srcs, _ = logsources.resolve_sources([self.path])
        base = self.store.load("c")
        reader = LogReader()
        new, reports = logsources.read_all(srcs, base, reader.feed)
        assert [r["status"] for r in reports] == ["ok"], reports
        ids = []
        for ev in reader.result()["events"]:
            ids.extend([int(ev["path"][6:])] * ev["count"])
        return sorted(ids), cursor.make_token("c", base, new), reports

    def commit(self, token):
        return self.store.commit("c", token)

    def rename_rotate(self, keep_writing_old=False):
        """logrotate without copytruncate: NAME -> NAME.1, new empty NAME (the daemon reopens)."""
        if os.path.exists(self.path + ".1"):
            os.rename(self.path + ".1", self.path + ".2")
        os.rename(self.path, self.path + ".1")
        if not keep_writing_old:
            self.reopen()

    def reopen(self):
        self.fh.close()
        self.fh = open(self.path, "ab")  # noqa: SIM115 - a daemon's long-lived log descriptor

    def copytruncate(self):
        if os.path.exists(self.path + ".1"):
            os.rename(self.path + ".1", self.path + ".2")
        shutil.copyfile(self.path, self.path + ".1")
        with open(self.path, "r+b") as fh:
            fh.truncate(0)
        # the daemon's O_APPEND descriptor goes on writing at the new end

    def compress(self, name):
        src = self.path + name
        with open(src, "rb") as fh, gzip.open(src + ".gz", "wb") as gz:
            gz.write(fh.read())
        os.unlink(src)


@pytest.fixture
def log(tmp_path):
    lg = Log(tmp_path)
    yield lg
    lg.fh.close()


def test_rename_rotation_between_read_and_commit(log):
    log.write(*range(0, 5))
    ids, token, _ = log.read()
    assert ids == list(range(0, 5))
    log.write(5, 6)               # after the read, into the file that is about to be rotated
    log.rename_rotate()
    log.write(7, 8, 9)            # into the new file
    assert log.commit(token)["changed"]
    ids, token, _ = log.read()
    assert ids == [5, 6, 7, 8, 9]
    log.commit(token)
    assert log.read()[0] == []


def test_copytruncate_between_read_and_commit(log):
    log.write(*range(0, 5))
    ids, token, _ = log.read()
    log.write(5, 6)
    log.copytruncate()
    log.write(7, 8)
    log.commit(token)
    ids, token, reports = log.read()
    assert ids == [5, 6, 7, 8], reports
    log.commit(token)
    assert log.read()[0] == []


def test_rotation_and_compression_before_commit(log):
    log.write(*range(0, 4))
    _ids, token, _ = log.read()
    log.write(4)
    log.rename_rotate()
    log.write(5)
    log.rename_rotate()           # audit.log.1 -> .2, then compressed as logrotate's delaycompress does
    log.compress(".2")
    log.write(6, 7)
    log.commit(token)
    ids, token, reports = log.read()
    assert ids == [4, 5, 6, 7], reports
    log.commit(token)
    assert log.read()[0] == []


def test_late_writes_into_the_renamed_file_before_commit(log):
    """The daemon has not reopened yet: it goes on appending to audit.log.1 after the rename."""
    log.write(0, 1)
    _ids, token, _ = log.read()
    log.rename_rotate(keep_writing_old=True)
    log.write(2, 3)               # still the old descriptor: lands in audit.log.1
    log.reopen()
    log.write(4)
    log.commit(token)
    ids, token, _ = log.read()
    assert ids == [2, 3, 4]
    log.commit(token)
    assert log.read()[0] == []


def test_second_read_before_commit_returns_the_same_records_again(log):
    """A play that failed between reading and committing: the next run gets everything again, even
    across a rotation. (The cursor holds a position: a cursor that never committed reads like a first
    read, i.e. the live file only unless include_rotated - docs/cursor.md.)"""
    log.write(0)
    log.commit(log.read()[1])
    log.write(1, 2)
    first, _token, _ = log.read()       # not committed: the play failed
    log.rename_rotate()
    log.write(3)
    again, token, _ = log.read()
    assert first == [1, 2] and again == [1, 2, 3]
    log.commit(token)
    assert log.read()[0] == []
