# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scan blocks of log bytes for AppArmor records and fold them into events (docs/events.md).

The grammar of one record (formats, fields, hex decoding, the event a record becomes) is logparse.py;
this file is the block scanner over it: ``LogReader``.

Why it is built the way it is (speed is a requirement: 10x aa-logprof's reader):

* Data is buffered into large blocks. One compiled regex (``_FAST``) runs over a whole block
  with ``findall`` and picks out the dominant record shape, ``audit(E.MS:SERIAL): apparmor="X"
  ... pid=N ...``, splitting it into the varying parts (stamp, pid) and the stable rest.
* Records are folded per *distinct stable rest* with C-level builtins (``Counter.update`` into the
  running totals, ``dict(zip())`` for the last record of each body), so Python code runs once per
  distinct record body per block, not once per line; each distinct body is parsed once
  (``_template``) and cached (docs/benchmarks.md: where the time goes, what did not help).
* Every other shape (USER_AVC, journald, syslog dbus lines, old types, ``node=``) goes through the
  general per-line path, which only runs when such lines exist in a block (counted with
  ``bytes.count``). Both paths build events with the same parser, so they agree by construction;
  tests check it.

Nothing raises on bad input: malformed, truncated, binary, too long, bad JSON or bad hex lines are
counted per reason with a few sanitised samples. Standard library only (runs on managed hosts).
"""

import gc
import json
import re
import time
from collections import Counter
from itertools import islice
from operator import itemgetter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import events as ev_mod
from ansible_collections.armada.apparmor.plugins.module_utils import provenance
from ansible_collections.armada.apparmor.plugins.module_utils.logparse import (
    MAX_DIGITS,
    MAX_LINE,
    RECORD_MARKERS,
    SAMPLE_LEN,
    build_event,
    header_time,
    journal_entry_message,
    json_object,
    parse_record,
    record_pid,
    sanitise,
    split_header,
)

#: data is buffered to this size before a block is scanned (bounds memory, amortises the scan)
BLOCK = 8 << 20
#: bytes at each end of a block searched for node= (see LogReader._run)
_EDGE = 65536
#: distinct record bodies cached before they are folded into events and the cache is emptied
MAX_TEMPLATES = 20000
#: ... or bytes of distinct record bodies (bounds the cache when the bodies are long, up to MAX_LINE each)
MAX_TEMPLATE_BYTES = 16 << 20
#: samples kept per skip reason
MAX_SAMPLES = 3

# The dominant shape: stamp, class and body before pid (with its trailing space), pid, rest of the line.
# The body group ends with a literal space so sre's repeat can jump between spaces when it backs off
# (a group boundary right after ``[^\n]*`` defeats that). It is greedy, so
# it splits at the LAST " pid=" of the line; ``_run`` sends a block where any body still holds " pid="
# to the mixed path, whose ``_FAST_FIRST`` splits at the first one: both give the same groups otherwise.
_FAST_TAIL = (rb'pid=(\d+)([^\n]*)|( *(?:operation|info|profile|type)=|REJECTING|PERMITTING|AUDITING|LOGPROF-HINT'
              rb'|apparmor=[^\n]*))')
_FAST = re.compile(rb'audit\((\d+\.\d+):\d+\): (?:apparmor="([A-Z]+"[^\n]* )' + _FAST_TAIL)
_FAST_FIRST = re.compile(rb'audit\((\d+\.\d+):\d+\): (?:apparmor="([A-Z]+"[^\n]*? )' + _FAST_TAIL)
# The second branch of _FAST flags stamped records of the old types (no apparmor=, the class is in
# the type; or the pre-2.1 free text), and an apparmor= record the first branch cannot take (no pid=):
# that alternative eats the rest of the line, so a line of many stamps without pid= costs one pass
# instead of one pass per stamp (quadratic).
# A block whose apparmor= count equals the fast matches, without that flag and without node=,
# needs no per-line work at all; any other block takes the mixed path.

# journalctl -o json writes a MESSAGE that is not valid UTF-8 as an array of byte values
_JSON_BINARY = b'"MESSAGE":['
_LINE_MARKERS = RECORD_MARKERS + (_JSON_BINARY,)

# socket address/port tokens: not part of any identity (docs/events.md), and ports are often ephemeral
_VOLATILE = re.compile(rb" (?:lport|fport|src|dest|laddr|faddr|saddr|daddr)=[^ \x1d]*")
_PIDTOK = re.compile(rb"(?<![\w-])pid=(\d+)")


class _Template:
    """What a distinct record body becomes: an event (or a skip reason, or filtered)."""

    __slots__ = ("event", "skip", "filtered", "kind", "mode", "pid", "comm", "sample", "size")

    def __init__(self) -> None:
        self.event: Optional[Dict[str, Any]] = None
        self.skip: Optional[str] = None
        self.filtered = False
        self.kind: Optional[str] = None
        self.mode: Optional[str] = None
        self.pid: Optional[int] = None
        self.comm: Optional[str] = None
        self.sample: Optional[str] = None
        self.size = 0


def _long_lines(buf: Any, end: int) -> List[Tuple[int, int]]:
    """(start, end) of the lines of ``buf[:end]`` longer than MAX_LINE, newline included.

    Jumps MAX_LINE bytes at a time and looks back for a newline, so a block of normal lines costs
    one short ``rfind`` per 64 KiB.
    """
    out = []
    p = 0
    while end - p > MAX_LINE + 1:
        q = buf.rfind(b"\n", p, p + MAX_LINE + 1)
        if q >= 0:
            p = q + 1
            continue
        nl = buf.find(b"\n", p + MAX_LINE, end)
        stop = end if nl < 0 else nl + 1
        out.append((p, stop))
        p = stop
    return out


_KEY = itemgetter(1, 3)
_OLD = itemgetter(4)
_HEAD = itemgetter(1)
_STAMP0 = itemgetter(0)


class LogReader:
    """Feed it log bytes (any mix of formats, whole lines); ``result()`` gives folded events + stats.

    ``profiles``: AppArmor globs over profile names (the full label and its parent both tried);
    ``modes``: record classes to keep (default all); ``raw_samples``: keep one raw line per event;
    ``max_events``: cap on distinct events (see ``events.Aggregator``); ``dbus_uids``: the uids a
    system bus daemon runs as (journal dbus records from other senders are unverified; default: root
    and the bus users of this host). Each ``feed*`` call says where its bytes come from (``origin``,
    provenance.py): every event carries ``sources`` and ``forgeable``.
    """

    def __init__(self,
                 host: Optional[str] = None,
                 profiles: Optional[List[str]] = None,
                 modes: Optional[List[str]] = None,
                 raw_samples: bool = False,
                 max_events: Optional[int] = None,
                 dbus_uids: Optional[Iterable[int]] = None) -> None:
        self.host = host
        self.dbus_uids = frozenset(dbus_uids) if dbus_uids is not None else provenance.bus_uids()
        self._declared: Optional[str] = None
        self._origin = provenance.stream_origin(None)
        self.profiles = list(profiles) if profiles else None
        self.modes = frozenset(m.upper() for m in modes) if modes else None
        self.raw_samples = raw_samples
        self._agg = ev_mod.Aggregator(max_events)
        # per distinct record body (key): template, count, first/last stamp, pid sample
        self._tmpl: Dict[Any, _Template] = {}
        self._cnt: Dict[Any, int] = Counter()
        self._first: Dict[Any, Any] = {}
        self._last: Dict[Any, Any] = {}
        self._pids: Dict[Any, set] = {}
        self._norm: Dict[Any, _Template] = {}
        self._tmpl_bytes = 0  # bytes of the cached distinct bodies (MAX_TEMPLATE_BYTES)
        self._pending: List[bytes] = []
        self._pending_len = 0
        self._profile_ok: Dict[Optional[str], bool] = {}
        #: CPU seconds per stage (for the benchmark): block scans, bulk folding of fast records, the
        #: general per-line path, parsing of distinct bodies, folding into events at the end
        self.timing = {"scan": 0.0, "fold": 0.0, "mixed": 0.0, "parse": 0.0, "events": 0.0}
        self.stats: Dict[str, Any] = {
            "lines": 0, "records": 0, "events": 0, "kinds": {}, "modes": {}, "filtered": 0, "ignored": 0,
            "skipped": {}, "samples": {}, "bytes": 0, "apparmor_bytes": 0, "seconds": 0.0,
            "max_events_reached": False, "dropped": 0,
        }

    # -- input -------------------------------------------------------------------------------

    def _use(self, declared: Optional[str]) -> None:
        """Switch to the origin of the next bytes: what is buffered so far is read under the old one."""
        if declared == self._declared:
            return
        origin = provenance.stream_origin(declared)
        self._drain()
        self._fold()
        self._declared, self._origin = declared, origin

    def feed(self, data: bytes, source: str = "", origin: Optional[str] = None) -> None:
        """Add whole lines of any supported format. Data is buffered and scanned in large blocks.

        ``origin``: what wrote these bytes (provenance.DECLARED: ``auditd``, ``dmesg``, ``syslog``,
        ``journal`` for ``journalctl -o json`` lines, or None = unspecified, the caller vouches).
        """
        self._use(origin)
        if not data:
            return
        if not data.endswith(b"\n"):
            data += b"\n"
        if len(data) >= BLOCK and not self._pending:
            self._run(data, len(data))
            return
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= BLOCK:
            self._drain()

    def feed_stream(self, fobj: Any, source: str = "", block: int = BLOCK, origin: Optional[str] = None) -> None:
        """Read a binary file object to its end in large blocks (one reused buffer, no copies).

        The buffer grows to hold one line of at most MAX_LINE bytes, no further: a line that fills
        it then is counted as ``too_long`` and the rest of it is read and dropped until its newline.
        """
        self._use(origin)
        self._drain()
        buf = bytearray(block)
        view = memoryview(buf)
        have = 0
        dropping = False  # inside a too-long line, until its newline
        try:
            while True:
                if have == len(buf) and have < MAX_LINE + 2:  # one line longer than the buffer: grow it
                    view.release()  # a bytearray cannot grow while a memoryview exports it (BufferError)
                    buf.extend(bytearray(min(len(buf), MAX_LINE + 2 - len(buf))))
                    view = memoryview(buf)
                got = fobj.readinto(view[have:])
                if not got:
                    break
                if dropping:
                    nl = buf.find(b"\n", 0, got)
                    self.stats["bytes"] += got if nl < 0 else nl + 1
                    if nl < 0:
                        continue
                    dropping = False
                    have = got - nl - 1
                    buf[:have] = buf[nl + 1:got]
                else:
                    have += got
                cut = buf.rfind(b"\n", 0, have) + 1
                if cut == 0:
                    if have > MAX_LINE + 1:  # a too-long line fills the buffer: count it, drop the rest of it
                        self._too_long_line(buf, have)
                        dropping, have = True, 0
                    continue
                self._run(buf, cut)
                rest = have - cut
                buf[:rest] = buf[cut:have]
                have = rest
            if have:
                self._run(bytes(buf[:have]) + b"\n", have + 1)
        finally:
            view.release()

    def _too_long_line(self, line: Any, size: int) -> None:
        """Count a line longer than MAX_LINE that is not read (``line`` may hold only its start)."""
        self.stats["lines"] += 1
        self.stats["bytes"] += size
        self._skip("too_long", bytes(line[:SAMPLE_LEN + 1]))

    def feed_journal_export(self, data: bytes, source: str = "", origin: Optional[str] = "journal") -> None:
        """Add ``journalctl -o export`` output (entries separated by blank lines, binary fields sized)."""
        self._use(origin)
        t0 = time.process_time()
        self.stats["bytes"] += len(data)
        pos, end = 0, len(data)
        entry: Dict[str, Any] = {}
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl < 0:
                nl = end
            if nl == pos:  # blank line: end of entry
                self._export_entry(entry)
                entry = {}
                pos = nl + 1
                continue
            line = data[pos:nl]
            eq = line.find(b"=")
            if eq >= 0:
                entry[line[:eq].decode("utf-8", "replace")] = line[eq + 1:]
                pos = nl + 1
                continue
            # binary field: NAME\n<64-bit little endian size><data>\n
            size_at = nl + 1
            if size_at + 8 > end:
                self._skip("truncated", line)
                entry = {}
                break
            size = int.from_bytes(data[size_at:size_at + 8], "little")
            if size_at + 8 + size > end:
                self._skip("truncated", line)
                entry = {}
                break
            entry[line.decode("utf-8", "replace")] = data[size_at + 8:size_at + 8 + size]
            pos = size_at + 8 + size + 1
        if entry:
            self._export_entry(entry)
        self.stats["seconds"] += time.process_time() - t0

    def _export_entry(self, entry: Dict[str, Any]) -> None:
        msg = entry.get("MESSAGE")
        if not msg:
            return
        self.stats["lines"] += 1
        if not any(m in msg for m in RECORD_MARKERS):
            return
        msg, when, err = journal_entry_message(entry)
        if err:
            self._skip(err, msg)
            return
        self._general(msg, when=when, origin=self._entry_origin(entry))

    def _entry_origin(self, entry: Mapping[str, Any]) -> str:
        """Origin of one journal entry: by its trusted fields when the stream is a journal."""
        if self._declared == "journal":
            return provenance.journal_origin(entry, self.dbus_uids)
        return self._origin

    # -- output ------------------------------------------------------------------------------

    def result(self) -> Dict[str, Any]:
        """``{"events": [...], "stats": {...}}``; may be called again after more ``feed``."""
        self._drain()
        t0 = time.process_time()
        self._fold()
        self.timing["events"] += time.process_time() - t0
        events = [dict(e) for e in self._agg.result()]
        if not self.raw_samples:
            for e in events:
                e.pop("raw_sample", None)
        st = self.stats
        st["events"] = len(events)
        st["max_events_reached"] = self._agg.max_reached
        st["dropped"] = self._agg.dropped
        st["seconds"] = round(st["seconds"] + time.process_time() - t0, 4)
        stats = json.loads(json.dumps(st))
        return {"events": events, "stats": stats}

    # -- block processing --------------------------------------------------------------------

    def _drain(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        self._pending_len = 0
        self._run(data, len(data))

    def _run(self, buf: Any, end: int) -> None:
        """Process ``buf[:end]`` (whole lines; bytes or bytearray, never copied on the fast path)."""
        # The scan and fold allocate a tuple per record but never a reference cycle: the cyclic
        # collector would only walk those young tuples again and again (about 5% of the time)
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self._run_block(buf, end)
        finally:
            if gc_was_on:
                gc.enable()

    def _run_block(self, buf: Any, end: int) -> None:
        t0 = time.process_time()
        timing = self.timing
        st = self.stats
        longs = _long_lines(buf, end)
        if longs:  # never scanned: counted, and the block is read without them
            keep, at = [], 0
            for ls, le in longs:
                keep.append(buf[at:ls])
                self._too_long_line(buf[ls:ls + SAMPLE_LEN + 1], le - ls)
                at = le
            keep.append(buf[at:end])
            buf = b"".join(keep)
            end = len(buf)
        st["bytes"] += end
        st["lines"] += buf.count(b"\n", 0, end)
        recs = None
        if not self.raw_samples:
            recs = _FAST.findall(buf, 0, end)
            # node= is looked for in the first and last 64 KiB: auditd writes it on every line or on none
            # (name_format), so a block changes between the two at most once and one end shows it. A JSON
            # block starts with "{"; a binary MESSAGE in a block of other lines is not looked for.
            node = buf.find(b"node=", 0, min(end, _EDGE)) >= 0 or buf.find(b"node=", max(0, end - _EDGE), end) >= 0
            if node or buf.count(b"apparmor=", 0, end) != len(recs) or any(map(_OLD, recs)) or (
                    buf[:1] == b"{" and buf.find(_JSON_BINARY, 0, end) >= 0) or (
                    b"\n".join(map(_HEAD, recs)).find(b" pid=") >= 0):
                recs = None
        t1 = time.process_time()
        timing["scan"] += t1 - t0
        if recs is None:
            recs = self._mixed(bytes(buf[:end]) if not isinstance(buf, bytes) else buf, end)
            timing["mixed"] += time.process_time() - t1
        if recs:
            t2 = time.process_time()
            parse0 = timing["parse"]
            self._bulk(recs)
            timing["fold"] += time.process_time() - t2 - (timing["parse"] - parse0)
        if len(self._tmpl) > MAX_TEMPLATES or self._tmpl_bytes > MAX_TEMPLATE_BYTES:
            self._fold()
        st["seconds"] += time.process_time() - t0

    def _mixed(self, chunk: bytes, end: int) -> List[Tuple[bytes, ...]]:
        """A block with other shapes: fast records by position, every other candidate line alone."""
        recs = []
        fast_lines = set()
        raws: Optional[Dict[Any, bytes]] = {} if self.raw_samples else None
        for m in _FAST_FIRST.finditer(chunk, 0, end):
            ls = chunk.rfind(b"\n", 0, m.start()) + 1
            if m.group(5) or chunk.find(b"node=", ls, m.start()) >= 0:
                continue
            g = m.groups()
            recs.append(g)
            fast_lines.add(ls)
            if raws is not None:
                key = _KEY(g)
                if key not in raws and key not in self._tmpl:
                    le = chunk.find(b"\n", m.end())
                    raws[key] = chunk[ls:le if le >= 0 else end]
        self._raws = raws
        starts = set()
        for marker in _LINE_MARKERS:
            pos = chunk.find(marker, 0, end)
            while pos >= 0:
                ls = chunk.rfind(b"\n", 0, pos) + 1
                if ls not in fast_lines:
                    starts.add(ls)
                nl = chunk.find(b"\n", pos, end)
                if nl < 0:
                    break
                pos = chunk.find(marker, nl, end)
        for ls in sorted(starts):
            le = chunk.find(b"\n", ls, end)
            if le < 0:
                le = end
            line = chunk[ls:le]
            if b"msg='" in line and line.count(b"'") % 2:
                # a USER_AVC record some tools wrap: the rest is on the next, indented line
                le2 = chunk.find(b"\n", le + 1, end)
                nxt = chunk[le + 1:le2 if le2 >= 0 else end]
                if nxt[:1] in (b" ", b"\t") and nxt.count(b"'") % 2:
                    line = line + b" " + nxt.strip()
            self._general(line)
        return recs

    def _bulk(self, recs: List[Tuple[bytes, ...]]) -> None:
        """Fold fast-shape records per distinct (class, body before pid, rest) with C-level builtins.

        Python code runs once per distinct body in the block; per record only ``map``, ``Counter`` and
        ``dict(zip())`` run, in C. Times stay bytes until the fold. ``first_seen``/``last_seen`` are the
        times of the first and last record of a body in read order (logs are written in time order).
        """
        tmpls, cnt, pids, lasts, firsts = self._tmpl, self._cnt, self._pids, self._last, self._first
        keys = list(map(_KEY, recs))
        n0 = len(cnt)
        # Counter.update over a list runs collections' C counting loop straight into the running
        # totals: no per-block Counter, no Python loop per body to add it up
        cnt.update(keys)
        # bodies first seen in this block are the ones the update appended (dicts keep insertion order)
        new = list(islice(cnt, n0, None)) if len(cnt) > n0 else ()
        last = dict(zip(keys, recs))  # the last record of each body in this block
        if len(new) > 16:
            first = dict(zip(reversed(keys), reversed(recs)))
        else:  # few new bodies (the usual case after the first blocks): find their first record directly
            first = {key: recs[keys.index(key)] for key in new}
        raws = getattr(self, "_raws", None)
        norms = self._norm
        for key in new:  # in order of first appearance
            head, tail = key
            stamp, _h, pid, _t, _o = first[key]
            norm = None
            if _VOLATILE.search(tail) or _VOLATILE.search(head):
                # bodies that differ only in socket addresses/ports (not part of the identity: the first
                # record's are kept) share one parsed template instead of one parse per ephemeral port
                norm = (_VOLATILE.sub(b"", head), _VOLATILE.sub(b"", tail))
                tmpl = norms.get(norm)
            else:
                tmpl = None
            if tmpl is None:
                line = b'audit(' + stamp + b':0): apparmor="' + head + b"pid=" + pid + tail
                raw = raws.get(key) if raws else None
                tmpl = self._template(line, raw if raw is not None else line)
                tmpl.size = len(line) + 4
                if tmpl.pid is not None and len(pid) <= MAX_DIGITS and tmpl.pid == int(pid):
                    tmpl.pid = None  # the pid is the varying token: sample it per record
                if norm is not None:
                    norms[norm] = tmpl
            tmpls[key] = tmpl
            self._tmpl_bytes += len(head) + len(tail)
            pids[key] = {pid}
            firsts[key] = stamp
        lasts.update(zip(last.keys(), map(_STAMP0, last.values())))
        # pids: a bounded sample, the last record of each body per block (plus the first one ever)
        for key, rec in last.items():
            s = pids[key]
            if len(s) < ev_mod.MAX_PIDS:
                s.add(rec[2])
        self._raws = None

    def _general(self, line: bytes, when: Optional[float] = None, origin: Optional[str] = None) -> None:
        """Any shape, one line: cached on the line minus its time and pid tokens (and per origin)."""
        if len(line) > MAX_LINE:
            self._skip("too_long", line)
            return
        if origin is None:
            origin = self._origin
        stripped = line.strip()
        if stripped.startswith(b"{"):
            obj, err = json_object(stripped)
            if not err:
                msg, when, err = journal_entry_message(obj)
            if err:
                self._skip(err, line)
                return
            line = msg
            origin = self._entry_origin(obj)
        head = split_header(line)
        node = head["node"]
        if head["error"] == "not_a_record":
            self.stats["ignored"] += 1
            return
        body = head["body"]
        key = (b"g", node, head["type"], _PIDTOK.sub(b"pid=", body), origin)
        tmpl = self._tmpl.get(key)
        if tmpl is None:
            if self._tmpl_bytes + len(line) > MAX_TEMPLATE_BYTES:
                self._fold()
            tmpl = self._tmpl[key] = self._template(line, line, when=when, origin=origin)
            tmpl.size = len(line)
            self._tmpl_bytes += len(line)
            self._cnt[key] = 0
            self._pids[key] = set()
        self._cnt[key] += 1
        if tmpl.event is None:
            return
        stamp = head["stamp"]
        t = float(stamp[0]) if stamp else (when if when is not None else header_time(head["header"]))
        if t is not None:
            f, la = self._first.get(key), self._last.get(key)
            if f is None or t < f:
                self._first[key] = t
            if la is None or t > la:
                self._last[key] = t
        mpos = body.find(b"msg='")
        toks = _PIDTOK.findall(body, mpos if mpos >= 0 else 0)
        pids = self._pids[key]
        if toks and len(pids) < ev_mod.MAX_PIDS:
            pids.add(toks[0])

    def _template(self,
                  line: bytes,
                  raw: bytes,
                  when: Optional[float] = None,
                  origin: Optional[str] = None) -> _Template:
        """Parse one distinct record body once: event, skip reason, or filtered."""
        t0 = time.process_time()
        try:
            return self._template_parse(line, raw, when, origin or self._origin)
        finally:
            self.timing["parse"] += time.process_time() - t0

    def _template_parse(self, line: bytes, raw: bytes, when: Optional[float], origin: str) -> _Template:
        tmpl = _Template()
        rec, reason = parse_record(line, when=when)
        if rec is None:
            tmpl.skip = reason
            tmpl.sample = sanitise(raw)
            return tmpl
        event = provenance.mark(build_event(rec, self.host), origin)
        tmpl.kind = event["kind"]
        tmpl.mode = rec["mode"]
        tmpl.pid = record_pid(rec)
        tmpl.comm = rec["fields"].get("comm")
        if (self.modes is not None and tmpl.mode not in self.modes) or not self._profile_wanted(event["profile"]):
            tmpl.filtered = True
            return tmpl
        if self.raw_samples:
            event["raw_sample"] = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
        tmpl.event = ev_mod.finish(event)
        return tmpl

    def _profile_wanted(self, profile: Optional[str]) -> bool:
        if self.profiles is None:
            return True
        ok = self._profile_ok.get(profile)
        if ok is None:
            try:  # AppArmor glob semantics (aaglob.py), imported only when a filter is used
                from ansible_collections.armada.apparmor.plugins.module_utils.aaglob import matches
            except ImportError:  # pragma: no cover - a checkout without aaglob: exact names
                matches = None
            ok = False
            if profile is not None:
                names = {profile, profile.partition("//")[0]}
                for pattern in self.profiles:
                    for name in names:
                        if (matches(pattern, name) if matches else pattern == name):
                            ok = True
            self._profile_ok[profile] = ok
        return ok

    def _skip(self, reason: str, line: bytes, n: int = 1, sample: Optional[str] = None) -> None:
        st = self.stats
        st["skipped"][reason] = st["skipped"].get(reason, 0) + n
        samples = st["samples"].setdefault(reason, [])
        if len(samples) < MAX_SAMPLES:
            text = sample if sample is not None else sanitise(line)
            if text not in samples:
                samples.append(text)

    def _fold(self) -> None:
        """Move the per-body counters into stats and the aggregator, and empty the caches."""
        agg, st = self._agg, self.stats
        first, last, pids, cnt = self._first, self._last, self._pids, self._cnt
        groups: Dict[int, list] = {}
        for key, tmpl in self._tmpl.items():  # bodies sharing a template fold first
            n = cnt.get(key, 0)
            if n == 0:
                continue
            g = groups.get(id(tmpl))
            if g is None:
                g = groups[id(tmpl)] = [tmpl, 0, None, None, set()]
            g[1] += n
            t1, t2 = first.get(key), last.get(key)
            if t1 is not None:
                t1 = float(t1)
                if g[2] is None or t1 < g[2]:
                    g[2] = t1
            if t2 is not None:
                t2 = float(t2)
                if g[3] is None or t2 > g[3]:
                    g[3] = t2
            if len(g[4]) < ev_mod.MAX_PIDS:
                g[4].update(pids.get(key, ()))
        for tmpl, n, t1, t2, pidset in groups.values():
            st["apparmor_bytes"] += tmpl.size * n
            if tmpl.skip is not None:
                if tmpl.skip == "not_a_record":
                    st["ignored"] += n
                else:
                    self._skip(tmpl.skip, b"", n, tmpl.sample)
                continue
            st["records"] += n
            st["kinds"][tmpl.kind] = st["kinds"].get(tmpl.kind, 0) + n
            st["modes"][tmpl.mode] = st["modes"].get(tmpl.mode, 0) + n
            if tmpl.filtered:
                st["filtered"] += n
                continue
            event = dict(tmpl.event)
            event["count"] = n
            event["first_seen"] = t1
            event["last_seen"] = t2
            if tmpl.pid is not None:
                event["pids"] = [tmpl.pid]
            else:
                event["pids"] = sorted(int(p) for p in pidset if len(p) <= MAX_DIGITS)[:ev_mod.MAX_PIDS]
            event["comms"] = [tmpl.comm] if tmpl.comm is not None else []
            agg.add(event)
        self._norm = {}
        self._tmpl, self._cnt, self._first, self._last, self._pids = {}, Counter(), {}, {}, {}
        self._tmpl_bytes = 0
