"""Exactly-once reading through any interleaving of writes, rotations, compression and reads.

A simulated writer behaves like auditd / rsyslog under logrotate: it appends whole lines through an
open descriptor, keeps writing into the renamed file until it reopens, and logrotate shifts
``NAME.N`` to ``NAME.N+1``, compresses old rotations, or copies-and-truncates. Whatever the order,
reading through the cursor after each step must return every line written exactly once, in order.
"""
# ruff: noqa: SIM115 - log writers keep their descriptor open across rotations on purpose
import gzip
import os
import re
import shutil
import tempfile
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import logsources as ls

EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "60"))


class World:
    """A log directory, a writer, and a reader that commits after every read."""

    def __init__(self, top):
        self.top = top
        self.log = os.path.join(top, "audit.log")
        self.writer = open(self.log, "a")
        self.writer_on_live = True
        self.partial = None
        self.n = 0
        self.written = []
        self.got = []
        self.state = None
        self.read()  # the cursor starts at the (empty) beginning, as a first run would

    def write(self, k):
        self.finish_half()  # a writer never interleaves two lines
        for _ in range(k):
            text = "type=AVC msg=audit(1700000000.000:%d): apparmor=\"DENIED\" n=%d\n" % (self.n, self.n)
            self.n += 1
            self.written.append(text.rstrip("\n"))
            self.writer.write(text)
        self.writer.flush()

    def write_half(self):
        if self.partial is None:
            text = "type=AVC msg=audit(1700000000.000:%d): apparmor=\"ALLOWED\" n=%d\n" % (self.n, self.n)
            self.n += 1
            self.partial = text
            self.writer.write(text[:17])
            self.writer.flush()

    def finish_half(self):
        if self.partial is not None:
            self.writer.write(self.partial[17:])
            self.writer.flush()
            self.written.append(self.partial.rstrip("\n"))
            self.partial = None

    def rotations(self):
        out = []
        for name in os.listdir(self.top):
            m = re.match(r"^audit\.log\.(\d+)(\.gz)?$", name)
            if m:
                out.append((int(m.group(1)), bool(m.group(2))))
        return sorted(out)

    def _shift(self):
        for num, gz in sorted(self.rotations(), reverse=True):
            suffix = ".gz" if gz else ""
            os.rename("%s.%d%s" % (self.log, num, suffix), "%s.%d%s" % (self.log, num + 1, suffix))

    def rotate_rename(self):
        if not self.writer_on_live or not os.path.exists(self.log):
            return
        self._shift()
        os.rename(self.log, self.log + ".1")
        self.writer_on_live = False  # keeps writing into .1 until reopen

    def reopen(self):
        if self.writer_on_live:
            return
        self.finish_half()
        self.writer.close()
        self.writer = open(self.log, "a")
        self.writer_on_live = True

    def copytruncate(self):
        if not self.writer_on_live or self.partial is not None:
            return
        self._shift()
        shutil.copyfile(self.log, self.log + ".1")
        with open(self.log, "r+") as fh:
            fh.truncate(0)

    def compress(self):
        held = 1 if not self.writer_on_live else 0
        plain = [num for num, gz in self.rotations() if not gz and num > held]
        if not plain:
            return
        num = max(plain)
        src = "%s.%d" % (self.log, num)
        with open(src, "rb") as fin, gzip.open(src + ".gz", "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.unlink(src)

    def read(self):
        chunks = []
        new, info = ls.read_file(self.log, self.state, chunks.append)
        assert info["status"] in ("ok", "missing"), info
        assert not info["cursor_lost"], info
        self.got.extend(b"".join(chunks).decode().splitlines())
        self.state = new


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 4)),
        st.tuples(st.sampled_from(["write_half", "finish_half", "rotate_rename", "reopen", "copytruncate",
                                   "compress", "read", "read"]), st.just(0)),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_every_line_exactly_once_in_order(ops):
    top = tempfile.mkdtemp(prefix="armada-rot-")
    try:
        w = World(top)
        for op, arg in ops:
            if op == "write":
                w.write(arg)
            else:
                getattr(w, op)()
        w.finish_half()
        w.read()
        w.read()
        w.writer.close()
        assert w.got == w.written
    finally:
        shutil.rmtree(top)


def test_concurrent_writer_rotating_while_reader_reads():
    """A real writer thread rotating by rename while another thread reads and commits in a loop."""
    top = tempfile.mkdtemp(prefix="armada-rotthread-")
    try:
        log = os.path.join(top, "audit.log")
        open(log, "a").close()
        total = 6000
        done = threading.Event()
        expected = ["type=AVC msg=audit(1.0:%d): n=%d" % (n, n) for n in range(total)]

        reads = [0]

        def wait_for_a_read():
            seen = reads[0]
            deadline = time.time() + 2
            while reads[0] == seen and time.time() < deadline:
                time.sleep(0.001)

        def writer():
            fh = open(log, "a")
            n = 0
            while n < total:
                fh.write(expected[n] + "\n")
                fh.flush()
                n += 1
                if n % 700 == 0:
                    for k in range(9, 0, -1):
                        if os.path.exists("%s.%d" % (log, k)):
                            os.rename("%s.%d" % (log, k), "%s.%d" % (log, k + 1))
                    os.rename(log, log + ".1")
                    # like auditd before it reopens: lines still go to the renamed file, before and
                    # after the reader has looked at the directory without the live file
                    for _ in range(2):
                        wait_for_a_read()
                        for _ in range(5):
                            if n < total:
                                fh.write(expected[n] + "\n")
                                n += 1
                        fh.flush()
                    fh.close()
                    fh = open(log, "a")
                    wait_for_a_read()
            fh.close()
            done.set()

        got = []
        state, info = ls.read_file(log, None, got.append)  # position at the (empty) start
        assert info["status"] == "ok" and got == []
        t = threading.Thread(target=writer)
        t.start()
        while not done.is_set():
            chunks = []
            state, info = ls.read_file(log, state, chunks.append)
            assert not info["cursor_lost"], info
            got.extend(b"".join(chunks).decode().splitlines())
            reads[0] += 1
            time.sleep(0.001)
        t.join()
        chunks = []
        state, info = ls.read_file(log, state, chunks.append)
        got.extend(b"".join(chunks).decode().splitlines())
        assert reads[0] > 3
        assert got == expected
    finally:
        shutil.rmtree(top)
