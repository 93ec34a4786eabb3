# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where AppArmor records come from on a host, and reading them from a remembered position.

Three kinds of source:

* ``file`` (FileSource): a log file plus its rotated siblings (``audit.log.1``, ``audit.log.2.gz``,
  ``syslog-20240101.gz``). The position is a list of per-file entries (inode, offset, and
  sha256 of the first and the last 4 KiB before the offset), so a read follows rotation by
  rename, by copy-and-truncate, and into ``.gz``, reads nothing twice and skips nothing.
* ``journal`` (JournalSource): ``journalctl -o json`` over the kernel transport and/or the dbus daemons'
  syslog identifiers; the position is the journal's own cursor string.
* ``dmesg`` (DmesgSource): the kernel ring buffer; the position is the boot id plus the last kernel timestamp
  (and how many lines carried it).

Only whole lines are ever handed on: a line the writer has not finished stays unread until the
next run. Every reader reports what it did (``info``) instead of raising on a missing or
unreadable source, so the caller can say so in its result and decide whether that is fatal.

Standard library only: this file runs on managed hosts.
"""


import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils.logparse import MAX_LINE

Sink = Callable[[bytes], None]

#: Size of the head and tail windows hashed to recognise a file again.
WINDOW = 4096
#: Read size: large buffers keep the per-call overhead of the parser low.
CHUNK = 1 << 20

AUDIT_LOG = "/var/log/audit/audit.log"
AUDITD_CONF = "/etc/audit/auditd.conf"
SYSLOG_FILES = ("/var/log/kern.log", "/var/log/syslog", "/var/log/messages")
#: Files that also carry user-space (dbus) records, in preference order.
DBUS_SYSLOG_FILES = ("/var/log/syslog", "/var/log/messages")
JOURNAL_DIRS = ("/run/log/journal", "/var/log/journal")
AUDITD_PIDFILES = ("/run/auditd.pid", "/var/run/auditd.pid")
#: syslog identifiers under which dbus-daemon / dbus-broker log their AppArmor decisions.
DBUS_IDENTIFIERS = ("dbus-daemon", "dbus-broker", "dbus-broker-launch")

_ROT_NUM = re.compile(r"^\.(\d+)(\.gz)?$")
_ROT_DATE = re.compile(r"^-(\d{8}(?:\d{2,6})?)(\.gz)?$")
_DMESG_TS = re.compile(rb"^\[\s*(\d+)\.(\d+)\]")
#: the __CURSOR key of a journalctl JSON line (a quote inside a JSON string is always escaped, so this
#: unescaped form is the key itself, wherever journalctl put it)
_JSON_CURSOR = re.compile(rb'[{,]"__CURSOR":"([^"\\\n]{1,512})"')
#: A syslog line written by a dbus daemon (program tag), used when a file is read for dbus only.
#: BSD ("Nov 25 10:00:01 host tag[pid]: ") or ISO ("2024-01-01T10:00:01+01:00 host tag[pid]: ") timestamp.
_DBUS_LINE = re.compile(
    rb"^[^\s\n]+(?:[ \t]+\d+[ \t]+\d\d:\d\d:\d\d)?[ \t]+[^\s\n]+[ \t]+"
    rb"(?:dbus-daemon|dbus-broker(?:-launch)?)(?:\[\d+\])?: [^\n]*\n", re.M)


#: prefix of a ``sources`` entry naming a file that auditd writes (the inventory vouches for it)
VOUCHED_AUDITD = "auditd:"


class Source:
    """One stream to read: what it is, where it is, and which records it is read for.

    ``streams`` is ``"all"`` (everything in it), ``"kernel"`` or ``"dbus"``. Each kind of stream is a
    subclass (FileSource, JournalSource, DmesgSource) that knows its cursor ``key``, who writes it
    (``origin``) and how to ``read`` it from a position.
    """

    #: the ``kind`` of the module result (and of the stored position)
    kind = ""
    #: how the bytes are framed: ``journal_json`` (one JSON object a line) or ``text``
    fmt = "text"

    def __init__(self, streams: str = "all", reason: str = "", root: str = "/") -> None:
        self.streams = streams
        self.reason = reason
        self.root = root

    @property
    def key(self) -> str:
        """Stable name of this source inside a cursor (independent of ``reason``)."""
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """What writes this stream (provenance.DECLARED): decides whether its records are forgeable."""
        raise NotImplementedError

    @property
    def forgeable(self) -> bool:
        """True when every record of this stream could have been written by a local user."""
        return self.origin == "syslog"

    def lines_for(self, sink: Sink) -> Sink:
        """``sink`` behind the filter that keeps only the lines this source is read for."""
        return sink

    def read(self, state: Optional[Dict[str, Any]], sink: Sink,
             include_rotated: bool = False) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        """Hand every whole line after ``state`` to ``sink``, unfiltered; return (new state, info).

        Never raises for I/O problems: ``info["status"]`` and ``info["notes"]`` say what went wrong.
        """
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        """Plain description for module results."""
        return {"name": self.key, "kind": self.kind, "streams": self.streams, "reason": self.reason,
                "origin": self.origin, "forgeable": self.forgeable}

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, self.key)


# --------------------------------------------------------------------------------------------
# Host probing: which sources exist


def _under(root: str, path: str) -> str:
    """``path`` inside an alternative root (``/`` means the real one)."""
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def auditd_logs(root: str = "/") -> Tuple[str, ...]:
    """Paths of auditd's log: the default one and the ``log_file`` of auditd.conf (inside ``root``)."""
    paths = [_under(root, AUDIT_LOG)]
    try:
        with open(_under(root, AUDITD_CONF), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition("=")
                if sep and key.strip() == "log_file" and value.strip().startswith("/"):
                    paths.append(_under(root, value.strip()))
    except OSError:
        pass
    return tuple(paths)


def auditd_active(root: str = "/") -> bool:
    """True when an auditd process is running (its pidfile names a live process called auditd).

    When auditd runs, the kernel sends AppArmor audit records to it only, so audit.log is then
    the one kernel stream to read.
    """
    for pidfile in AUDITD_PIDFILES:
        try:
            with open(_under(root, pidfile)) as fh:
                pid = int(fh.read().strip() or "0")
        except (OSError, ValueError):
            continue
        if pid <= 0:
            continue
        try:
            with open("/proc/%d/comm" % pid) as fh:
                if fh.read().strip() == "auditd":
                    return True
        except OSError:
            continue
    return False


def journal_available(root: str = "/", journal_directory: Optional[str] = None) -> bool:
    """True when journalctl exists and there is at least one journal file to read."""
    if not shutil.which("journalctl"):
        return False
    dirs = [journal_directory] if journal_directory else [_under(root, d) for d in JOURNAL_DIRS]
    for top in dirs:
        for _dirpath, _dirs, files in os.walk(top):
            if any(f.endswith((".journal", ".journal~")) for f in files):
                return True
    return False


def resolve_sources(requested: Sequence[str], root: str = "/",
                    journal_directory: Optional[str] = None) -> Tuple[List[Source], List[str]]:
    """Turn the ``sources`` option into Source objects; return them and notes on the choice.

    ``auto`` picks ONE kernel stream (so no record is counted twice) and adds the dbus records:
    auditd active -> audit.log, dbus from the journal (else from syslog/messages);
    otherwise journal -> kernel transport plus dbus identifiers in one query;
    otherwise the first of kern.log / syslog / messages (plus dbus lines of syslog/messages when
    the kernel stream is kern.log); otherwise dmesg. Other entries: ``journal``, ``dmesg``, an
    absolute file path, or ``auditd:`` and an absolute path for a file the caller vouches auditd writes
    (an auditd ``log_file`` this host's auditd.conf does not name, such as a copy kept by a collector).
    """
    out: List[Source] = []
    notes: List[str] = []
    seen = set()

    def add(src: Source) -> None:
        if src.key not in seen:
            seen.add(src.key)
            out.append(src)

    for item in requested:
        if item == "auto":
            for src in _auto(root, journal_directory, notes):
                add(src)
        elif item == "journal":
            add(JournalSource(streams="all", reason="requested", root=root, journal_directory=journal_directory))
        elif item == "dmesg":
            add(DmesgSource(reason="requested", root=root))
        elif isinstance(item, str) and item.startswith("/"):
            add(FileSource(item, reason="requested", root=root))
        elif isinstance(item, str) and item.startswith(VOUCHED_AUDITD + "/"):
            add(FileSource(item[len(VOUCHED_AUDITD):], reason="requested; written by auditd (inventory)",
                           root=root, vouched=True))
        else:
            raise ValueError("unknown source %r: use auto, journal, dmesg, an absolute file path or auditd:PATH"
                             % (item,))
    return out, notes


def _auto(root: str, journal_directory: Optional[str], notes: List[str]) -> List[Source]:
    """The ``auto`` choice; see resolve_sources."""
    has_journal = journal_available(root, journal_directory)
    audit_log = _under(root, AUDIT_LOG)
    if auditd_active(root):
        notes.append("auditd is running: kernel AppArmor records are read from %s only" % audit_log)
        srcs = [FileSource(audit_log, reason="auditd is running")]
        if has_journal:
            srcs.append(JournalSource(streams="dbus", root=root, journal_directory=journal_directory,
                                      reason="dbus records that dbus-daemon/dbus-broker send via syslog"))
        else:
            for cand in DBUS_SYSLOG_FILES:
                if os.path.exists(_under(root, cand)):
                    srcs.append(FileSource(_under(root, cand), streams="dbus",
                                           reason="dbus records sent via syslog (no journal)"))
                    break
        return srcs
    if has_journal:
        notes.append("auditd is not running: kernel and dbus records are read from the journal")
        return [JournalSource(streams="all", root=root, journal_directory=journal_directory,
                              reason="auditd is not running; journal present")]
    for cand in SYSLOG_FILES:
        path = _under(root, cand)
        if os.path.exists(path):
            notes.append("no auditd and no journal: kernel records are read from %s" % path)
            srcs = [FileSource(path, streams="all", reason="no auditd and no journal")]
            if cand.endswith("kern.log"):
                for dcand in DBUS_SYSLOG_FILES:
                    if os.path.exists(_under(root, dcand)):
                        srcs.append(FileSource(_under(root, dcand), streams="dbus",
                                               reason="dbus records sent via syslog; kernel lines come from kern.log"))
                        break
            return srcs
    notes.append("no auditd, no journal and no syslog file: reading the kernel ring buffer (dmesg)")
    return [DmesgSource(reason="no auditd, journal or syslog file", root=root)]


# --------------------------------------------------------------------------------------------
# Filters applied to whole-line chunks


class MarkFilter:
    """Drop everything up to and including the first line that contains ``mark`` (like aa-genprof).

    aa-genprof writes ``GenProf: <random>`` to syslog and reads from there on; the same works
    here with any string (for audit.log write it with ``auditctl -m``). Once the mark is seen,
    chunks pass straight through, so no memory is held.
    """

    def __init__(self, sink: Sink, mark: bytes) -> None:
        self.sink = sink
        self.mark = mark
        self.found = False
        self.dropped = 0

    def __call__(self, data: bytes) -> None:
        if self.found:
            self.sink(data)
            return
        i = data.find(self.mark)
        if i < 0:
            self.dropped += len(data)
            return
        end = data.find(b"\n", i + len(self.mark))
        end = len(data) if end < 0 else end + 1
        self.found = True
        self.dropped += end
        if end < len(data):
            self.sink(data[end:])


def dbus_only(sink: Sink) -> Sink:
    """Wrap ``sink`` so only lines written by dbus-daemon / dbus-broker are handed on."""

    def _filter(data: bytes) -> None:
        kept = b"".join(m.group(0) for m in _DBUS_LINE.finditer(data))
        if kept:
            sink(kept)

    return _filter


# --------------------------------------------------------------------------------------------
# Whole lines from chunks, in bounded memory


class LineCutter:
    """Hand whole lines of a stream read in chunks to ``sink``, holding at most MAX_LINE + 1 bytes.

    A line longer than MAX_LINE is handed on cut to its first MAX_LINE + 1 bytes (the reader counts
    it as ``too_long`` without reading it) and the rest of it is dropped as it arrives, so neither
    memory nor copying grows with the line (docs/benchmarks.md, *Reader on hostile input*).
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.carry = b""  # start of the unfinished line, at most MAX_LINE + 1 bytes
        self.carried = 0  # real length of the unfinished line so far

    def push(self, buf: bytes) -> int:
        """Take the next chunk and hand on the lines it ends; return their real length in bytes."""
        done = 0
        cut = b""
        if self.carried > MAX_LINE:  # inside a too-long line: drop it up to its newline
            nl = buf.find(b"\n")
            if nl < 0:
                self.carried += len(buf)
                return 0
            cut = self.carry + b"\n"
            done = self.carried + nl + 1
            buf = buf[nl + 1:]
            self.carry, self.carried = b"", 0
        data = self.carry + buf if self.carry else buf
        nl = data.rfind(b"\n")
        whole, rest = data[:nl + 1], data[nl + 1:]
        done += len(whole)
        self.carried = len(rest)
        self.carry = rest[:MAX_LINE + 1]
        whole = cut + whole if cut else whole
        if whole:
            self.sink(whole)
        return done

    def finish(self) -> int:
        """Hand on the unfinished last line (cut if too long) as a whole line; return its real length."""
        size = self.carried
        if size:
            self.sink(self.carry + b"\n")
        self.carry, self.carried = b"", 0
        return size


# --------------------------------------------------------------------------------------------
# Files and their rotations


class _Cand:
    """A file that belongs to a source (the live file or a rotation), held open.

    Holding the descriptor means a rotation that renames files while we read cannot make us
    read a different file than the one whose identity we checked.
    """

    def __init__(self, path: str, gz: bool, fh, order: Tuple) -> None:
        self.path = path
        self.gz = gz
        self.fh = fh
        self.st = os.fstat(fh.fileno())
        self.order = order

    def stream(self):
        """A reader positioned at the start of the (decompressed) content."""
        self.fh.seek(0)
        if self.gz:
            return gzip.GzipFile(fileobj=self.fh, mode="rb")
        return self.fh

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass


def _rotation_order(base: str, name: str, live_gz: bool) -> Optional[Tuple[Tuple, bool]]:
    """Sort key and compression of ``name`` if it is ``base`` or one of its rotations, else None."""
    if not name.startswith(base):
        return None
    rest = name[len(base):]
    if rest == "":
        return (2, 0, ""), live_gz
    m = _ROT_NUM.match(rest)
    if m:
        return (0, -int(m.group(1)), ""), bool(m.group(2))
    m = _ROT_DATE.match(rest)
    if m:
        return (1, 0, m.group(1)), bool(m.group(2))
    return None


def _snapshot(directory: str, base: str, live_gz: bool) -> Dict[str, Tuple[int, Tuple, bool]]:
    """name -> (inode, order, gz) of the live file and its rotations, as they are right now."""
    snap = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return snap
    for name in names:
        ro = _rotation_order(base, name, live_gz)
        if ro is None:
            continue
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        if not os.path.isfile(os.path.join(directory, name)):
            continue
        snap[name] = (st.st_ino, ro[0], ro[1])
    return snap


def rotated_candidates(path: str, attempts: int = 5) -> List[_Cand]:
    """The live file and its rotations, opened, oldest first (live last).

    Recognised: ``NAME.N`` / ``NAME.N.gz`` (higher N is older) and ``NAME-YYYYMMDD[.gz]`` (dateext).
    When both ``NAME.N`` and ``NAME.N.gz`` exist, logrotate is compressing right now: the plain
    file is the complete one, so the ``.gz`` is ignored to avoid reading the same lines twice.
    The directory is listed before and after opening; if a rotation happened in between, the
    files are opened again so the set is consistent. Unreadable files raise OSError.
    """
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    live_gz = path.endswith(".gz")
    for _attempt in range(attempts):
        before = _snapshot(directory, base, live_gz)
        opened: Dict[Tuple, _Cand] = {}
        consistent = True
        try:
            for name, (ino, order, gz) in before.items():
                prev = opened.get(order)
                if prev is not None and not prev.gz:
                    continue  # keep the plain file over a .gz being written
                try:
                    fh = open(os.path.join(directory, name), "rb")  # noqa: SIM115 - held open on purpose
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        consistent = False
                        break
                    raise
                cand = _Cand(os.path.join(directory, name), gz, fh, order)
                if cand.st.st_ino != ino:
                    cand.close()
                    consistent = False
                    break
                if prev is not None:
                    prev.close()
                opened[order] = cand
            if consistent and _snapshot(directory, base, live_gz) == before:
                return [opened[k] for k in sorted(opened)]
        except BaseException:
            for c in opened.values():
                c.close()
            raise
        for c in opened.values():
            c.close()
    raise OSError(errno.EAGAIN, "%s kept being rotated while it was opened" % path)


def _fingerprint_plain(fh, offset: int) -> Tuple[str, str]:
    """sha256 of the first min(offset, WINDOW) bytes and of the WINDOW bytes before ``offset``."""
    fh.seek(0)
    head = fh.read(min(offset, WINDOW))
    start = max(0, offset - WINDOW)
    if start == 0:
        tail = head
    else:
        fh.seek(start)
        tail = fh.read(offset - start)
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


def _fingerprint_stream(fh, offset: int) -> Optional[Tuple[str, str]]:
    """Like _fingerprint_plain for a stream that cannot seek cheaply (gzip); None if too short."""
    head = fh.read(min(offset, WINDOW))
    if len(head) < min(offset, WINDOW):
        return None
    pos = len(head)
    tail = head[-WINDOW:]
    while pos < offset:
        buf = fh.read(min(CHUNK, offset - pos))
        if not buf:
            return None
        pos += len(buf)
        tail = (tail + buf)[-WINDOW:]
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail[-(offset - max(0, offset - WINDOW)):]).hexdigest()


def _matches(cand: _Cand, entry: Dict[str, Any]) -> bool:
    """True when ``cand`` holds, at ``entry["offset"]``, the very bytes the entry was taken over."""
    offset = int(entry.get("offset", 0))
    if cand.gz and entry.get("compressed") and (cand.st.st_ino, cand.st.st_size, cand.st.st_mtime_ns) == (
            entry.get("ino"), entry.get("size"), entry.get("mtime_ns")):
        return True  # a compressed rotation never changes; renaming keeps inode, size and mtime
    try:
        if not cand.gz:
            if cand.st.st_size < offset:
                return False
            fp: Optional[Tuple[str, str]] = _fingerprint_plain(cand.stream(), offset)
        else:
            fp = _fingerprint_stream(cand.stream(), offset)
    except (OSError, EOFError, zlib.error):
        return False
    return fp is not None and fp == (entry.get("head"), entry.get("tail"))


def _entry(cand: _Cand, offset: int) -> Dict[str, Any]:
    """Position entry for ``cand`` read up to ``offset``."""
    fp = _fingerprint_plain(cand.stream(), offset) if not cand.gz else _fingerprint_stream(cand.stream(), offset)
    head, tail = fp if fp else ("", "")
    return {"ino": cand.st.st_ino, "dev": cand.st.st_dev, "offset": offset, "head": head, "tail": tail,
            "mtime_ns": cand.st.st_mtime_ns, "size": cand.st.st_size, "name": os.path.basename(cand.path),
            "compressed": cand.gz}


def _read_from(cand: _Cand, start: int, sink: Sink, final: bool) -> Tuple[int, int]:
    """Hand whole lines of ``cand`` from byte ``start`` to ``sink``; return (end offset, bytes given).

    ``final`` (a compressed rotation, complete by definition) also hands on a last line without
    a newline; otherwise an unfinished last line is left for the next read.
    """
    given = 0
    fh = cand.stream()
    if start:
        if cand.gz:
            left = start
            while left:
                skipped = fh.read(min(CHUNK, left))
                if not skipped:
                    return start, 0
                left -= len(skipped)
        else:
            fh.seek(start)
    lines = LineCutter(sink)
    while True:
        buf = fh.read(CHUNK)
        if not buf:
            break
        given += lines.push(buf)
    if final:
        given += lines.finish()
    return start + given, given


def read_file(src_path: str, state: Optional[Dict[str, Any]], sink: Sink,
              include_rotated: bool = False) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
    """Read a file source from ``state`` (None: first read) and return (new state, info).

    First read: the live file only, or all rotations oldest first with ``include_rotated``.
    With a state: find the file holding the remembered position (same inode and same bytes
    before the offset; or, after copy-and-truncate or compression, any rotation with the same
    bytes), read it from the offset, then every newer file from its start. A file whose inode
    matches but whose bytes do not was truncated or rewritten: it is read from 0 and ``info``
    says so. When the position is found nowhere (rotated away), the files modified since the
    position was taken are read from 0 and ``info["cursor_lost"]`` is set.
    On an I/O problem the old state is returned unchanged with ``info["status"]`` saying why.
    """
    info: Dict[str, Any] = {"status": "ok", "bytes": 0, "files": [], "notes": [], "restarted": False,
                            "cursor_lost": False}
    try:
        cands = rotated_candidates(src_path)
    except OSError as exc:
        info["status"] = "unreadable" if exc.errno in (errno.EACCES, errno.EPERM) else "error"
        info["notes"].append("cannot open %s: %s" % (exc.filename or src_path, exc.strerror or exc))
        return state, info
    try:
        return _read_cands(src_path, cands, state, sink, include_rotated, info)
    finally:
        for c in cands:
            c.close()


def _find_secondary(cands: List[_Cand], sec: Dict[str, Any], taken) -> Optional[int]:
    """Index of the file an older entry (a rotation that may still get late writes) is in now.

    By inode among plain files first; if it was compressed since, by content among ``.gz``.
    """
    for i, c in enumerate(cands):
        if i not in taken and not c.gz and c.st.st_ino == sec.get("ino"):
            if _matches(c, sec):
                return i
            break  # inode number reused by another file: look for the content instead
    if int(sec.get("offset", 0)) > 0:
        for i, c in enumerate(cands):
            if i not in taken and c.gz and _matches(c, sec):
                return i
    return None


def _plan(cands: List[_Cand], entries: List[Dict[str, Any]], include_rotated: bool,
          info: Dict[str, Any]) -> Dict[int, int]:
    """Which candidates to read and from which offset: {index: start offset}."""
    starts: Dict[int, int] = {}
    if not entries:
        if include_rotated:
            return {i: 0 for i in range(len(cands))}
        return {len(cands) - 1: 0}
    primary, secondaries = entries[0], entries[1:]
    since = int(primary.get("mtime_ns", 0))
    if int(primary.get("offset", 0)) == 0:
        # Nothing had been read: no bytes to recognise the file by. Everything written since the
        # position was taken is new, and the kernel stamps every write, so read the files
        # modified since (this also catches a copy-and-truncate of the empty file).
        starts = {i: 0 for i, c in enumerate(cands)
                  if c.st.st_mtime_ns >= since or (not c.gz and c.st.st_ino == primary.get("ino"))}
        for sec in secondaries:
            i = _find_secondary(cands, sec, ())
            if i is not None:
                starts[i] = int(sec["offset"])
        return starts
    found = None
    same_inode = None
    if not primary.get("compressed"):
        for i in range(len(cands) - 1, -1, -1):
            c = cands[i]
            if not c.gz and c.st.st_ino == primary.get("ino"):
                same_inode = i
                if _matches(c, primary):
                    found = i
                break
    if found is None:
        for i in range(len(cands) - 1, -1, -1):
            if i != same_inode and _matches(cands[i], primary):
                found = i
                break
    if found is not None:
        starts[found] = int(primary["offset"])
    elif same_inode is not None:
        starts[same_inode] = 0
        info["restarted"] = True
        info["notes"].append(
            "%s shrank or was rewritten since the last read (truncated?): reading it again from the start"
            % cands[same_inode].path
        )
    for sec in secondaries:
        i = _find_secondary(cands, sec, starts)
        if i is not None:
            starts[i] = int(sec["offset"])
    if starts:
        for i in range(min(starts) + 1, len(cands)):
            starts.setdefault(i, 0)
        return starts
    info["cursor_lost"] = True
    info["restarted"] = True
    info["notes"].append(
        "the remembered position was not found in any rotation (rotated away?): reading the files "
        "changed since then from the start; records may have been missed"
    )
    return {i: 0 for i, c in enumerate(cands) if c.st.st_mtime_ns >= since}


def _read_cands(src_path: str, cands: List[_Cand], state: Optional[Dict[str, Any]], sink: Sink,
                include_rotated: bool, info: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
    """Body of read_file once the candidates are open."""
    if not cands:
        info["status"] = "missing"
        info["notes"].append("%s does not exist" % src_path)
        return state, info
    entries = list((state or {}).get("files") or [])
    starts = _plan(cands, entries, include_rotated, info)
    read: List[Tuple[_Cand, int]] = []
    for i in sorted(starts):
        c = cands[i]
        try:
            end, given = _read_from(c, starts[i], sink, final=c.gz)
        except (OSError, EOFError, zlib.error) as exc:
            # A damaged or half-written .gz: say so; its lines cannot be read now.
            info["notes"].append("cannot read %s: %s" % (c.path, getattr(exc, "strerror", None) or exc))
            if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
                info["status"] = "unreadable"
            else:
                info["status"] = "error"
            continue
        info["bytes"] += given
        info["files"].append({"path": c.path, "start": starts[i], "end": end, "compressed": c.gz})
        read.append((c, end))
    if not read:
        return state, info
    # Remember the newest files read: the live one, and the previous one(s) because a writer
    # that has not reopened yet may still append to a renamed file. Empty files carry no bytes to
    # recognise them by, so they do not count towards the two kept with content.
    new_entries = []
    with_content = 0
    for c, end in reversed(read):
        try:
            c.st = os.fstat(c.fh.fileno())
            new_entries.append(_entry(c, end))
        except (OSError, EOFError, zlib.error):
            continue
        with_content += 1 if end > 0 else 0
        if with_content >= 2 or len(new_entries) >= 8:
            break
    if not new_entries:
        return state, info
    return {"kind": "file", "path": src_path, "files": new_entries}, info


class FileSource(Source):
    """A log file plus its rotated siblings; a syslog file read for ``dbus`` hands on only the dbus
    daemons' lines, because its kernel lines are already read from another stream and must not be
    counted twice."""

    kind = "file"

    def __init__(self, path: str, streams: str = "all", reason: str = "", root: str = "/",
                 vouched: bool = False) -> None:
        super().__init__(streams, reason, root)
        self.path = path
        self.vouched = vouched

    @property
    def key(self) -> str:
        return "file:%s" % self.path + ("" if self.streams == "all" else "#" + self.streams)

    @property
    def origin(self) -> str:
        """Only auditd's own log is trusted among files: any other text file is written by a syslog
        daemon that stores whatever a local user sends to /dev/log (``logger -t kernel ...``), unless
        the inventory vouches that auditd writes it (``auditd:PATH``)."""
        return "auditd" if self.vouched or self.path in auditd_logs(self.root) else "syslog"

    def lines_for(self, sink: Sink) -> Sink:
        return dbus_only(sink) if self.streams == "dbus" else sink

    def read(self, state: Optional[Dict[str, Any]], sink: Sink,
             include_rotated: bool = False) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        return read_file(self.path, state, sink, include_rotated)

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        d["path"] = self.path
        return d


# --------------------------------------------------------------------------------------------
# journal


class JournalSource(Source):
    """``journalctl -o json`` over the kernel transport and/or the dbus daemons' syslog identifiers.

    Entries are judged one by one by their trusted fields (provenance.py), hence the origin ``journal``.
    """

    kind = "journal"
    fmt = "journal_json"

    def __init__(self, streams: str = "all", reason: str = "", root: str = "/",
                 journal_directory: Optional[str] = None) -> None:
        super().__init__(streams, reason, root)
        self.journal_directory = journal_directory

    @property
    def key(self) -> str:
        where = self.journal_directory or ("" if self.root == "/" else "root=" + self.root)
        return "journal:%s%s" % (self.streams, (":" + where) if where else "")

    @property
    def origin(self) -> str:
        return "journal"

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        if self.journal_directory:
            d["journal_directory"] = self.journal_directory
        return d

    def command(self, state: Optional[Dict[str, Any]], include_rotated: bool) -> List[str]:
        """journalctl argv for this source from ``state``."""
        cmd = ["journalctl", "--no-pager", "-q", "-o", "json"]
        if self.journal_directory:
            cmd += ["--directory", self.journal_directory]
        elif self.root not in ("", "/"):
            cmd += ["--root", self.root]
        cursor = (state or {}).get("cursor")
        if cursor:
            cmd += ["--after-cursor", cursor]
        elif not include_rotated:
            cmd += ["--boot"]
        dbus = []
        for ident in DBUS_IDENTIFIERS:
            dbus.append("SYSLOG_IDENTIFIER=%s" % ident)
        if self.streams == "kernel":
            cmd += ["_TRANSPORT=kernel"]
        elif self.streams == "dbus":
            cmd += dbus
        else:
            cmd += ["_TRANSPORT=kernel", "+"] + dbus
        return cmd

    def read(self, state: Optional[Dict[str, Any]], sink: Sink,
             include_rotated: bool = False) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        """Stream ``journalctl -o json`` output to ``sink``; the new state holds the last ``__CURSOR``.

        First read: the current boot only, or the whole journal with ``include_rotated``. Later reads
        use ``--after-cursor``. Kernel records are matched by ``_TRANSPORT=kernel`` rather than
        ``-k``, because ``-k`` also limits the read to the current boot and would skip records
        written before a reboot that the cursor has not seen yet.
        """
        info = {"status": "ok", "bytes": 0, "files": [], "notes": [], "restarted": False, "cursor_lost": False}
        if not shutil.which("journalctl"):
            info["status"] = "missing"
            info["notes"].append("journalctl is not installed")
            return state, info
        cmd = self.command(state, include_rotated)
        info["command"] = cmd
        last_cursor = None
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            info["status"] = "error"
            info["notes"].append("cannot run journalctl: %s" % exc)
            return state, info
        cursors: List[str] = []

        def hand(whole: bytes) -> None:
            sink(whole)
            prev = whole.rfind(b"\n", 0, len(whole) - 1)
            cur = _cursor_of(whole[prev + 1:])
            if cur:
                cursors[:] = [cur]

        lines = LineCutter(hand)
        assert proc.stdout is not None
        while True:
            buf = proc.stdout.read(CHUNK)
            if not buf:
                break
            info["bytes"] += lines.push(buf)
        if lines.carry.strip():
            info["bytes"] += lines.finish()
        last_cursor = cursors[0] if cursors else None
        err = proc.stderr.read() if proc.stderr else b""
        rc = proc.wait()
        if rc != 0:
            msg = err.decode("utf-8", "replace").strip()
            if b"No journal boot entry found" in err or b"Specifying boot ID or boot offset has no effect" in err:
                info["notes"].append("journal: %s" % msg)
            else:
                info["status"] = "error"
                info["notes"].append("journalctl exited with %d: %s" % (rc, msg[:500]))
                return state, info
        if last_cursor is None:
            return state, info
        return {"kind": "journal", "cursor": last_cursor}, info


def _cursor_of(line: bytes) -> Optional[str]:
    """``__CURSOR`` of one journal JSON line, or None.

    A line cut for being too long (LineCutter) gives its cursor when the key is in the part kept;
    if not, the entry before stays the position and the cut entry is read (and counted) again.
    """
    if len(line) > MAX_LINE:
        m = _JSON_CURSOR.search(line)
        return m.group(1).decode("utf-8", "replace") if m else None
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    cur = obj.get("__CURSOR") if isinstance(obj, dict) else None
    return cur if isinstance(cur, str) else None


# --------------------------------------------------------------------------------------------
# dmesg


def boot_id() -> str:
    """This boot's id (changes at every boot; the ring buffer restarts with it)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def filter_dmesg(data: bytes, state: Optional[Dict[str, Any]], current_boot: str,
                 sink: Sink) -> Tuple[Dict[str, Any], int, bool]:
    """Hand on the ``dmesg`` lines after the position in ``state``; return (new state, bytes, restarted).

    The position is (boot id, last kernel timestamp, how many lines had that timestamp). Lines
    without a timestamp belong to the previous stamped line (continuations). A different boot id
    means a new ring buffer: everything is new.
    """
    restarted = False
    if state and state.get("boot_id") == current_boot:
        last = (int(state.get("sec", -1)), int(state.get("usec", -1)))
        at_last = int(state.get("count", 0))
    else:
        restarted = bool(state)
        last = (-1, -1)
        at_last = 0
    out = []
    seen_at_last = 0
    cur = (-1, -1)
    cur_count = 0
    keep = last == (-1, -1)
    for line in data.splitlines(True):
        m = _DMESG_TS.match(line)
        if m:
            ts = (int(m.group(1)), int(m.group(2)))
            if ts == cur:
                cur_count += 1
            else:
                cur, cur_count = ts, 1
            if ts > last:
                keep = True
            elif ts == last:
                seen_at_last += 1
                keep = seen_at_last > at_last
            else:
                keep = False
        if keep:
            out.append(line if line.endswith(b"\n") else line + b"\n")
    blob = b"".join(out)
    if blob:
        sink(blob)
    if cur == (-1, -1):
        new = {"kind": "dmesg", "boot_id": current_boot, "sec": last[0], "usec": last[1], "count": at_last}
    else:
        new = {"kind": "dmesg", "boot_id": current_boot, "sec": cur[0], "usec": cur[1], "count": cur_count}
    return new, len(blob), restarted


class DmesgSource(Source):
    """The kernel ring buffer; the position is the boot id plus the last kernel timestamp."""

    kind = "dmesg"

    @property
    def key(self) -> str:
        return "dmesg"

    @property
    def origin(self) -> str:
        return "dmesg"

    def read(self, state: Optional[Dict[str, Any]], sink: Sink,
             include_rotated: bool = False) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        """Run ``dmesg`` and hand on the lines after the remembered position."""
        info = {"status": "ok", "bytes": 0, "files": [], "notes": [], "restarted": False, "cursor_lost": False}
        exe = shutil.which("dmesg")
        if not exe:
            info["status"] = "missing"
            info["notes"].append("dmesg is not installed")
            return state, info
        try:
            proc = subprocess.run([exe], capture_output=True, check=False)
        except OSError as exc:
            info["status"] = "error"
            info["notes"].append("cannot run dmesg: %s" % exc)
            return state, info
        if proc.returncode != 0:
            info["status"] = "unreadable"
            info["notes"].append("dmesg failed: %s" % proc.stderr.decode("utf-8", "replace").strip()[:300])
            return state, info
        new, given, restarted = filter_dmesg(proc.stdout, state, boot_id(), sink)
        info["bytes"] = given
        if restarted:
            info["restarted"] = True
            info["notes"].append("new boot since the last read: the ring buffer is read from its start")
        return new, info


def _mark_bytes(mark: str, fmt: str) -> bytes:
    """The mark as it appears in the source's bytes: JSON-escaped inside journal JSON lines."""
    if fmt == "journal_json":
        return json.dumps(mark, ensure_ascii=False)[1:-1].encode("utf-8")
    return mark.encode("utf-8")


def read_all(sources: Sequence[Source], positions: Dict[str, Any], feed: Callable[[bytes, str], None],
             include_rotated: bool = False, mark: Optional[str] = None) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Read every source from its position in ``positions`` (keyed by Source.key).

    ``feed(data, source_key)`` receives whole lines. Returns the new positions (only sources that
    have one) and one report per source: its description plus status, bytes, files read, notes,
    ``restarted`` / ``cursor_lost``, and ``mark_found`` when a mark was asked for.
    """
    new_positions: Dict[str, Any] = {}
    reports: List[Dict[str, Any]] = []
    for src in sources:
        key = src.key

        def sink(data: bytes, _key: str = key) -> None:
            feed(data, _key)

        inner = src.lines_for(sink)
        # the mark is looked for before the dbus-only filter, which would drop the mark's line
        marker = MarkFilter(inner, _mark_bytes(mark, src.fmt)) if mark else None
        state, info = src.read(positions.get(key), marker or inner, include_rotated)
        report = src.to_dict()
        report.update(info)
        if marker is not None:
            report["mark_found"] = marker.found
        if state is not None:
            new_positions[key] = state
        reports.append(report)
    return new_positions, reports
