# -*- coding: utf-8 -*-
# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read AppArmor records from any log a host writes and fold them into events (docs/events.md).

Formats (any mix, line by line): auditd ``audit.log`` raw and ENRICHED (0x1d separator),
``node=HOST`` prefixes of aggregated logs, kernel lines in syslog / kern.log / messages (BSD and
ISO timestamps, with or without a dmesg stamp), ``dmesg`` output, journald text renderings
(``host audit[PID]: AVC apparmor=...``, ``audit: type=1400 ...``), ``journalctl -o json`` lines,
``journalctl -o export`` (``feed_journal_export``), dbus ``USER_AVC`` / 1107 records with
``msg='...'`` (also split over two lines), the ``APPARMOR_*`` and 1500-1506 types.

Why it is built the way it is (speed is a requirement: 10x aa-logprof's reader):

* Data is buffered into large blocks. One compiled regex (``_FAST``) runs over a whole block
  with ``findall`` and picks out the dominant record shape, ``audit(E.MS:SERIAL): apparmor="X"
  ... pid=N ...``, splitting it into the varying parts (stamp, pid) and the stable rest.
* Records are folded per *distinct stable rest* with C-level builtins (``Counter.update`` into the
  running totals, ``dict(zip())`` for the last record of each body), so Python code runs once per
  distinct record body per block, not once per line; each distinct body is parsed once
  (``_template``) and cached. Scan and fold still cost about 2-3 µs of CPU per record in CPython
  (docs/benchmarks.md has the breakdown and what did not help).
* Every other shape (USER_AVC, journald, syslog dbus lines, old types, ``node=``) goes through the
  general per-line path, which only runs when such lines exist in a block (counted with
  ``bytes.count``). Both paths build events with the same parser, so they agree by construction;
  tests check it.

Nothing raises on bad input: malformed, truncated, binary, too long, bad JSON or bad hex lines are
counted per reason with a few sanitised samples. Standard library only (runs on managed hosts).
"""
from __future__ import absolute_import, division, print_function

import gc
import json
import re
import time
from collections import Counter
from itertools import islice
from operator import itemgetter

from ansible_collections.armada.apparmor.plugins.module_utils import events as ev_mod
from ansible_collections.armada.apparmor.plugins.module_utils import provenance

__metaclass__ = type

#: lines longer than this are not parsed (a record is a few hundred bytes; paths are <= 4 KiB)
MAX_LINE = 65536
#: data is buffered to this size before a block is scanned (bounds memory, amortises the scan)
BLOCK = 8 << 20
#: bytes at each end of a block searched for node= (see LogReader._run)
_EDGE = 65536
#: distinct record bodies cached before they are folded into events and the cache is emptied
MAX_TEMPLATES = 20000
#: ... or bytes of distinct record bodies (bounds the cache when the bodies are long, up to MAX_LINE each)
MAX_TEMPLATE_BYTES = 16 << 20
#: digits read as a number (pids, serials, times); longer runs stay text (int() of 4300+ digits raises)
MAX_DIGITS = 20
#: samples kept per skip reason, and their length
MAX_SAMPLES = 3
SAMPLE_LEN = 200

# The dominant shape: stamp, class and body before pid (with its trailing space), pid, rest of the line.
# The body group ends with a literal space so sre's repeat can jump between spaces when it backs off
# (a group boundary right after ``[^\n]*`` defeats that and made the scan 1.7x slower). It is greedy, so
# it splits at the LAST " pid=" of the line; ``_run`` sends a block where any body still holds " pid="
# to the mixed path, whose ``_FAST_FIRST`` splits at the first one: both give the same groups otherwise.
_FAST_TAIL = (rb'pid=(\d+)([^\n]*)|( *(?:operation|info|profile|type)=|REJECTING|PERMITTING|AUDITING|LOGPROF-HINT'
              rb'|apparmor=[^\n]*))')
_FAST = re.compile(rb'audit\((\d+\.\d+):\d+\): (?:apparmor="([A-Z]+"[^\n]* )' + _FAST_TAIL)
_FAST_FIRST = re.compile(rb'audit\((\d+\.\d+):\d+\): (?:apparmor="([A-Z]+"[^\n]*? )' + _FAST_TAIL)
# The second branch of _FAST flags stamped records of the old types (no apparmor=, the class is in
# the type; or the pre-2.1 free text), and an apparmor= record the first branch cannot take (no pid=):
# that alternative eats the rest of the line, so a line of many stamps without pid= costs one pass
# instead of one pass per stamp (it was quadratic: 256 KiB of stamps took 24 s).
# A block whose apparmor= count equals the fast matches, without that flag and without node=,
# needs no per-line work at all; any other block takes the mixed path.
_CANDIDATE_MARKERS = (b"apparmor=", b"type=150", b"type=APPARMOR", b"UNKNOWN[150")
# journalctl -o json writes a MESSAGE that is not valid UTF-8 as an array of byte values
_JSON_BINARY = b'"MESSAGE":['
_LINE_MARKERS = _CANDIDATE_MARKERS + (_JSON_BINARY,)

_STAMP = re.compile(rb"audit\((\d+)\.(\d+):(\d+)\):? ?")
_TYPE = re.compile(rb"type=(\S+)")
# socket address/port tokens: not part of any identity (docs/events.md), and ports are often ephemeral
_VOLATILE = re.compile(rb" (?:lport|fport|src|dest|laddr|faddr|saddr|daddr)=[^ \x1d]*")
_NODE = re.compile(rb"(?:^|(?<=\s))node=(\S+) (?=type=)")
_PIDTOK = re.compile(rb"(?<![\w-])pid=(\d+)")
# A key starts at the first letter of a run of name characters: only the run's start is tried, so a long
# run without "=" costs one pass (trying every position of it was quadratic)
_KV = re.compile(r"(?<![A-Za-z0-9_-])[0-9-]*([A-Za-z_][A-Za-z0-9_-]*)=(\"[^\"]*\"|'[^']*'|[^\s\"']*)")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+\Z")
_MODE_WORD = re.compile(r"^[A-Za-z_]+\Z")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1c\x1e\x1f\x7f]")
_BSD_TIME = re.compile(
    rb"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?(?=\s)")
_ISO_TIME = re.compile(
    rb"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?(?=\s)")
_MONTHS = {m.encode(): i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}

#: record class from the audit type when the record has no apparmor="..." (libapparmor's table)
TYPE_MODES = {
    "1501": "AUDIT", "1502": "ALLOWED", "1503": "DENIED", "1504": "HINT", "1505": "STATUS", "1506": "ERROR",
    "APPARMOR_AUDIT": "AUDIT", "APPARMOR_ALLOWED": "ALLOWED", "APPARMOR_DENIED": "DENIED",
    "APPARMOR_HINT": "HINT", "APPARMOR_STATUS": "STATUS", "APPARMOR_ERROR": "ERROR",
    "UNKNOWN[1501]": "AUDIT", "UNKNOWN[1502]": "ALLOWED", "UNKNOWN[1503]": "DENIED",
    "UNKNOWN[1504]": "HINT", "UNKNOWN[1505]": "STATUS", "UNKNOWN[1506]": "ERROR",
}
#: the generic pre-2.1 type: its records are free text (REJECTING ..., LOGPROF-HINT ...)
OLD_TYPES = ("APPARMOR", "1500", "UNKNOWN[1500]")

#: keys whose unquoted value is hex-encoded text (the kernel hex-encodes names with spaces/quotes)
HEX_KEYS = frozenset((
    "name", "name2", "profile", "label", "peer", "peer_label", "peer_profile", "comm", "target", "srcname",
    "addr", "peer_addr", "exe", "execpath", "namespace", "fstype", "path", "interface", "member", "method",
    "bus", "info", "attribute", "signal", "class", "operation", "tcontext",
))
#: keys read as integers when they are decimal
INT_KEYS = frozenset(("pid", "parent", "task", "magic_token", "fsuid", "ouid", "error", "lport", "fport",
                      "src", "dest", "peer_pid", "capability", "offset"))
#: keys the reader knows (mapped into the event, per-record only, or deliberately ignored)
KNOWN_KEYS = frozenset((
    "apparmor", "operation", "profile", "label", "name", "name2", "pid", "comm", "requested_mask",
    "denied_mask", "requested", "denied", "mask", "fsuid", "ouid", "target", "parent", "info", "error",
    "class", "execpath", "capability", "capname", "family", "sock_type", "protocol", "laddr", "lport",
    "faddr", "fport", "saddr", "src", "daddr", "dest", "addr", "peer_addr", "peer", "peer_label",
    "peer_profile", "peer_pid", "signal", "bus", "path", "interface", "member", "method", "fstype", "flags",
    "srcname", "namespace", "attribute", "task", "magic_token", "type", "exe", "sauid", "hostname",
    "terminal", "uid", "auid", "ses", "subj", "res", "msg", "node", "offset", "tcontext",
))
_FILE_OPS = frozenset((
    "open", "mkdir", "rmdir", "mknod", "unlink", "link", "symlink", "rename_src", "rename_dest", "chmod",
    "chown", "getattr", "setattr", "truncate", "file_perm", "file_lock", "file_mmap", "file_mprotect",
    "file_inherit", "file_receive", "inode_permission", "exec", "xattr", "sysctl", "remove",
))
_NET_OPS = frozenset((
    "create", "post_create", "bind", "connect", "listen", "accept", "sendmsg", "recvmsg", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "shutdown", "socket_create", "socket_post_create",
    "socket_bind", "socket_connect", "socket_listen", "socket_accept", "socket_sendmsg", "socket_recvmsg",
    "socket_getsockname", "socket_getpeername", "socket_getsockopt", "socket_setsockopt", "socket_shutdown",
    "send", "receive",
))


# --------------------------------------------------------------------------------------------
# one record


def sanitise(text, limit=SAMPLE_LEN):
    # type: (Any, int) -> str
    """A log excerpt safe to show: non-printables escaped, cut at ``limit`` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    out = "".join(ch if (" " <= ch < "\x7f" or ch > "\xa0") else "\\x%02x" % ord(ch) for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _decode_value(key, raw):
    # type: (str, str) -> Tuple[Optional[str], bool]
    """(value, quoted). Unquoted hex values of text keys are decoded; None means bad hex."""
    if raw[:1] == '"' or raw[:1] == "'":
        return raw[1:-1], True
    if key in HEX_KEYS and raw and _HEX.match(raw):
        try:
            text = bytes.fromhex(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None, False
        if "\x00" in text:
            return None, False
        return text, False
    return raw, False


def parse_fields(text):
    # type: (str) -> Tuple[Dict[str, str], Optional[str]]
    """``key=value`` pairs of a record (first occurrence wins; hex decoded). (fields, error reason)."""
    fields = {}  # type: Dict[str, str]
    for key, raw in _KV.findall(text):
        if key in fields:
            continue
        first = raw[:1]
        if first == '"' or first == "'":
            fields[key] = raw[1:-1]
        elif key in HEX_KEYS and raw and _HEX.match(raw):
            value, _quoted = _decode_value(key, raw)
            if value is None:
                return fields, "bad_hex"
            fields[key] = value
        else:
            fields[key] = raw
    return fields, None


def split_header(line):
    # type: (bytes) -> Dict[str, Any]
    """Split one line into node, audit type, stamp, header time text and the record body.

    Handles ``node=H type=T msg=audit(E:S): body``, kernel lines ``... type=1400 audit(E:S): body``
    (syslog, dmesg, journald ``audit: type=...``) and stamp-less lines (``host audit[PID]: AVC
    body``, ``dbus-daemon[PID]: body``) whose time comes from the syslog header.
    """
    out = {"node": None, "type": None, "stamp": None, "body": b"", "header": b"", "error": None}
    a = line.find(b"audit(")
    n = _NODE.search(line, 0, a if a >= 0 else len(line))
    if n:  # auditd name_format, also behind a syslog header (audispd's syslog plugin)
        out["node"] = n.group(1).decode("utf-8", "replace")
        line = line[:n.start()] + line[n.end():]
        a = line.find(b"audit(")
    if a >= 0 and line.find(b"apparmor=", 0, a) < 0:
        m = _STAMP.match(line, a)
        if not m or len(m.group(1)) > MAX_DIGITS or len(m.group(2)) > MAX_DIGITS:
            out["error"] = "malformed"
            return out
        out["stamp"] = (m.group(1) + b"." + m.group(2), m.group(3))
        types = _TYPE.findall(line, 0, a)
        if types:
            out["type"] = types[-1]
        out["header"] = line[:a]
        out["body"] = line[m.end():]
        return out
    # no audit stamp: the body starts after the last ": " before the record
    p = -1
    for marker in _CANDIDATE_MARKERS:
        q = line.find(marker)
        if q >= 0 and (p < 0 or q < p):
            p = q
    if p < 0:
        out["error"] = "not_a_record"
        return out
    q = line.rfind(b": ", 0, p)
    rest = line[q + 2:] if q >= 0 else line
    out["header"] = line[:q] if q >= 0 else b""
    first, _sep, after = rest.partition(b" ")
    if first and b"=" not in first and first.replace(b"_", b"").isalpha() and first.isupper():
        out["type"] = first
        rest = after
    elif first.startswith(b"type=") and b"audit(" not in rest:
        out["type"] = first[5:]
        rest = after
    out["body"] = rest
    return out


def parse_record(line, node=None, when=None):
    # type: (bytes, Optional[str], Optional[float]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]
    """Parse one line into a record ``{"mode", "type", "node", "fields", "stamp", "time"}``.

    Returns (record, None) or (None, reason); reason ``not_a_record`` means the line only mentions
    AppArmor (e.g. a kernel command line) and is not counted as skipped.
    """
    if len(line) > MAX_LINE:
        return None, "too_long"
    line = line.rstrip(b"\r\n")
    head = split_header(line)
    if head["error"]:
        return None, head["error"]
    body = head["body"]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "binary"
    text = text.split("\x1d", 1)[0]  # ENRICHED: auditd's interpretations follow the separator
    if _BAD_CHARS.search(text):
        return None, "binary"
    typ = head["type"].decode("ascii", "replace") if head["type"] else None
    mpos = text.find("msg='")
    if mpos >= 0 and "apparmor=" in text[mpos:]:
        inner = text[mpos + 5:]
        end = inner.rfind("'")
        # No closing quote: syslog split the message at the newline dbus-daemon put before `exe=`
        # (kern.log holds such USER_AVC records on two lines). libapparmor reads the first line as the
        # record; a cut inside a value is still caught by the quote count below.
        text = inner[:end] if end >= 0 else inner
    if text.count('"') % 2:
        return None, "truncated"
    fields, err = parse_fields(text)
    if err:
        return None, err
    mode = fields.get("apparmor")
    if mode is not None:
        if not _MODE_WORD.match(mode):
            return None, "not_a_record"
        mode = mode.upper()
    else:
        mode = TYPE_MODES.get(typ or "") or TYPE_MODES.get(fields.get("type", ""))
        if mode is None:
            if typ in OLD_TYPES:
                return None, "old_format"
            return None, ("malformed" if head["stamp"] or typ else "not_a_record")
    if not any(k in fields for k in ("operation", "profile", "label", "info", "name")):
        return None, ("truncated" if head["stamp"] else "malformed")
    stamp = head["stamp"]
    if stamp is not None:
        t = float(stamp[0])
    elif when is not None:
        t = when
    else:
        t = header_time(head["header"])
    rec = {"mode": mode, "type": typ, "node": node or head["node"], "fields": fields, "time": t,
           "stamp": (stamp[0].decode(), int(stamp[1]) if len(stamp[1]) <= MAX_DIGITS else 0)
           if stamp else None}
    return rec, None


_TIME_CACHE = {}  # type: Dict[bytes, Optional[float]]


def _timegm(tup):
    # type: (Tuple[int, ...]) -> int
    """calendar.timegm without importing calendar (and locale) on every managed host run."""
    year, month, day, hh, mi, ss = tup[:6]
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mi * 60 + ss


def header_time(header):
    # type: (bytes) -> Optional[float]
    """Epoch seconds of a syslog header (BSD ``Jan  1 15:09:04[.us][+08:00]`` or ISO 8601).

    Naive times are host local time (what syslog daemons write); BSD times carry no year: the
    current year is assumed, or the previous one when that would lie in the future.
    """
    m = _ISO_TIME.match(header) or _BSD_TIME.match(header)
    if not m:
        return None
    key = m.group(0)
    if key in _TIME_CACHE:
        return _TIME_CACHE[key]
    g = m.groups()
    try:
        if len(g) == 8:
            year, month, day = int(g[0]), int(g[1]), int(g[2])
            hh, mi, ss, frac, tz = int(g[3]), int(g[4]), int(g[5]), g[6], g[7]
        else:
            month = _MONTHS.get(g[0])
            if month is None:
                return None
            year = time.gmtime().tm_year
            day, hh, mi, ss, frac, tz = int(g[1]), int(g[2]), int(g[3]), int(g[4]), g[5], g[6]
        tup = (year, month, day, hh, mi, ss, 0, 0, -1)
        if tz:
            stamp = _timegm(tup)
            if tz != b"Z":
                sign = -1 if tz[:1] == b"-" else 1
                digits = tz[1:].replace(b":", b"")
                stamp -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
        else:
            stamp = time.mktime(tup)
        if len(g) == 7 and stamp > time.time() + 2 * 86400:
            tup = (year - 1,) + tup[1:]
            stamp = _timegm(tup) if tz else time.mktime(tup)
        value = float(stamp) + (float(frac) if frac else 0.0)
    except (ValueError, OverflowError):
        value = None
    if len(_TIME_CACHE) > 4096:
        _TIME_CACHE.clear()
    _TIME_CACHE[key] = value
    return value


def _num(value):
    # type: (Optional[str]) -> Any
    """int for decimal text (also negative), else the text unchanged."""
    if value is None:
        return None
    v = value[1:] if value[:1] == "-" else value
    return int(value) if v.isdigit() and len(v) <= MAX_DIGITS else value


def classify(fields, mode):
    # type: (Dict[str, str], str) -> str
    """The event kind of a record (docs/events.md, *Kind classification*)."""
    op = fields.get("operation", "")
    cls = fields.get("class", "")
    if mode == "STATUS":
        return "status"
    if op == "capable" or "capability" in fields:
        return "capability"
    if op.startswith("dbus_") or "bus" in fields:
        return "dbus"
    if op in ("signal", "ptrace"):
        return op
    if op in ("mount", "umount", "remount", "pivotroot"):
        if op == "pivotroot":
            return "pivot_root"
        if op == "mount" and "remount" in (fields.get("flags") or "").replace(" ", "").split(","):
            return "remount"
        return op
    if op == "change_hat":
        return "change_hat"
    if op in ("change_profile", "change_onexec"):
        return "change_profile"
    if op.startswith("userns_") or cls == "namespace":
        return "userns"
    if op.startswith("uring_") or cls == "io_uring":
        return "io_uring"
    if cls in ("posix_mqueue", "sysv_mqueue") or op == "sysv_mqueue":
        return "mqueue"
    if op == "exec":
        return "exec"
    if fields.get("family") == "unix":
        return "unix"
    if "family" in fields or "sock_type" in fields or op in _NET_OPS or cls == "net":
        return "network"
    if cls == "file" or op in _FILE_OPS or "requested_mask" in fields:
        return "file"
    return "other"


def _set(ev, key, value):
    # type: (Dict[str, Any], str, Any) -> None
    if value is not None:
        ev[key] = value


def build_event(rec, host=None):
    # type: (Dict[str, Any], Optional[str]) -> Dict[str, Any]
    """The event (without counters) of one parsed record; see docs/events.md for each field."""
    f = rec["fields"]
    mode = rec["mode"]
    kind = classify(f, mode)
    profile = f.get("profile") if f.get("profile") is not None else f.get("label")
    ev = {"kind": kind, "host": rec.get("node") or host, "profile": profile, "parent": None, "child": None,
          "operations": [f["operation"]] if f.get("operation") else [], "modes": [mode]}  # type: Dict[str, Any]
    if profile is not None:
        parent, sep, child = profile.partition("//")
        ev["parent"] = parent
        ev["child"] = child if sep else None
    requested = f.get("requested_mask", f.get("requested", f.get("mask")))
    denied = f.get("denied_mask", f.get("denied"))
    if requested is not None or denied is not None:
        ev["mask"] = {"requested": requested or "", "denied": denied or ""}
    fsuid, ouid = _num(f.get("fsuid")), _num(f.get("ouid"))
    if isinstance(fsuid, int):
        ev["fsuid"] = fsuid
    if isinstance(ouid, int):
        ev["ouid"] = ouid
    if isinstance(fsuid, int) and isinstance(ouid, int) and kind in ("file", "exec", "mqueue"):
        ev["owner"] = fsuid == ouid
    for key in ("info", "class", "execpath", "namespace", "attribute"):
        _set(ev, key, f.get(key))
    if "error" in f:
        ev["error"] = _num(f["error"])
    name = f.get("name")
    if kind in ("file", "exec", "mount", "umount", "remount", "pivot_root", "mqueue", "userns", "io_uring"):
        _set(ev, "path", name)
        _set(ev, "target", f.get("target", f.get("name2")))
    elif kind == "capability":
        cap = _num(f.get("capability"))
        _set(ev, "capability", cap)
        _set(ev, "capname", f.get("capname", name))
    elif kind == "dbus":
        _set(ev, "bus", f.get("bus"))
        _set(ev, "dbus_path", f.get("path"))
        _set(ev, "interface", f.get("interface"))
        _set(ev, "member", f.get("member", f.get("method")))
        _set(ev, "dbus_name", name)
        if "peer_pid" in f:
            ev["peer_pid"] = _num(f["peer_pid"])
    elif kind in ("change_profile", "change_hat"):
        _set(ev, "target", f.get("target", f.get("name2", name)))
        _set(ev, "name", name)
    else:
        _set(ev, "name", name)
        _set(ev, "target", f.get("target", f.get("name2")))
    if kind in ("network", "unix") or "family" in f:
        _set(ev, "family", f.get("family"))
        _set(ev, "sock_type", f.get("sock_type"))
        if "protocol" in f:
            ev["protocol"] = _num(f["protocol"])
    if kind == "network":
        _set(ev, "laddr", f.get("laddr", f.get("saddr")))
        _set(ev, "faddr", f.get("faddr", f.get("daddr")))
        _set(ev, "lport", _num(f.get("lport", f.get("src"))))
        _set(ev, "fport", _num(f.get("fport", f.get("dest"))))
    if kind == "unix":
        for key in ("addr", "peer_addr"):
            if f.get(key) not in (None, "none", "?"):
                ev[key] = f[key]
    if kind in ("mount", "umount", "remount", "pivot_root"):
        for key in ("fstype", "flags", "srcname"):
            _set(ev, key, f.get(key))
    if kind in ("signal", "ptrace", "unix", "dbus") or "peer" in f or "tcontext" in f:
        # tcontext= (io_uring override_creds) names the target label, as peer_label= does for dbus
        peer = f.get("peer", f.get("peer_label", f.get("peer_profile", f.get("tcontext"))))
        _set(ev, "peer", peer)
    if kind == "signal":
        _set(ev, "signal", f.get("signal"))
    extra = {k: v for k, v in f.items() if k not in KNOWN_KEYS}
    if extra:
        ev["extra"] = extra
    return ev


def record_pid(rec):
    # type: (Dict[str, Any]) -> Optional[int]
    """The pid of the process the record is about (for USER_AVC: the one inside ``msg='...'``)."""
    pid = _num(rec["fields"].get("pid"))
    return pid if isinstance(pid, int) else None


def parse_line(line, host=None):
    # type: (bytes, Optional[str]) -> Dict[str, Any]
    """One line, parsed alone (for tests and conformance): ``{"record", "event", "skip"}``.

    JSON lines (``journalctl -o json``) are unpacked. ``event`` is the unfolded event (count 1).
    """
    when = None
    stripped = line.strip()
    if stripped.startswith(b"{"):
        msg, when, err = _json_message(stripped)
        if err:
            return {"record": None, "event": None, "skip": err}
        line = msg
    rec, reason = parse_record(line, when=when)
    if rec is None:
        return {"record": None, "event": None, "skip": reason}
    event = build_event(rec, host)
    event["count"] = 1
    event["first_seen"] = event["last_seen"] = rec["time"]
    pid = record_pid(rec)
    event["pids"] = [pid] if pid is not None else []
    comm = rec["fields"].get("comm")
    event["comms"] = [comm] if comm is not None else []
    ev_mod.finish(event)
    return {"record": rec, "event": event, "skip": None}


def _json_object(line):
    # type: (bytes) -> Tuple[Dict[str, Any], Optional[str]]
    """(object, error) of one ``journalctl -o json`` line."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested arrays
        return {}, "bad_json"
    if not isinstance(obj, dict):
        return {}, "bad_json"
    return obj, None


def _json_message(line):
    # type: (bytes) -> Tuple[bytes, Optional[float], Optional[str]]
    """(MESSAGE bytes, realtime seconds, error) of one ``journalctl -o json`` object."""
    obj, err = _json_object(line)
    if err:
        return b"", None, err
    return _journal_entry_message(obj)


def _journal_entry_message(obj):
    # type: (Dict[str, Any]) -> Tuple[bytes, Optional[float], Optional[str]]
    msg = obj.get("MESSAGE")
    if isinstance(msg, list):
        try:
            msg = bytes(msg)
        except (ValueError, TypeError):
            return b"", None, "bad_json"
    elif isinstance(msg, str):
        msg = msg.encode("utf-8", "surrogateescape")
    elif not isinstance(msg, bytes):
        return b"", None, "bad_json"
    when = None
    for key in ("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"):
        value = obj.get(key)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str) and value.isdigit() and len(value) <= MAX_DIGITS:
            when = int(value) / 1e6
            break
    tname = obj.get("_AUDIT_TYPE_NAME")
    if isinstance(tname, bytes):
        tname = tname.decode("ascii", "replace")
    if tname and b"audit(" not in msg and not msg.startswith(tname.encode()):
        msg = tname.encode() + b" " + msg
    return msg.replace(b"\n", b" "), when, None


# --------------------------------------------------------------------------------------------
# the reader


class _Template:
    """What a distinct record body becomes: an event (or a skip reason, or filtered)."""

    __slots__ = ("event", "skip", "filtered", "kind", "mode", "pid", "comm", "sample", "size")

    def __init__(self):
        # type: () -> None
        self.event = None  # type: Optional[Dict[str, Any]]
        self.skip = None  # type: Optional[str]
        self.filtered = False
        self.kind = None  # type: Optional[str]
        self.mode = None  # type: Optional[str]
        self.pid = None  # type: Optional[int]
        self.comm = None  # type: Optional[str]
        self.sample = None  # type: Optional[str]
        self.size = 0


def _long_lines(buf, end):
    # type: (Any, int) -> List[Tuple[int, int]]
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

    def __init__(self, host=None, profiles=None, modes=None, raw_samples=False, max_events=None, dbus_uids=None):
        # type: (Optional[str], Optional[List[str]], Optional[List[str]], bool, Optional[int], Optional[Iterable[int]]) -> None
        self.host = host
        self.dbus_uids = frozenset(dbus_uids) if dbus_uids is not None else provenance.bus_uids()
        self._declared = None  # type: Optional[str]
        self._origin = provenance.stream_origin(None)
        self.profiles = list(profiles) if profiles else None
        self.modes = frozenset(m.upper() for m in modes) if modes else None
        self.raw_samples = raw_samples
        self._agg = ev_mod.Aggregator(max_events)
        # per distinct record body (key): template, count, first/last stamp, pid sample
        self._tmpl = {}  # type: Dict[Any, _Template]
        self._cnt = Counter()  # type: Dict[Any, int]
        self._first = {}  # type: Dict[Any, Any]
        self._last = {}  # type: Dict[Any, Any]
        self._pids = {}  # type: Dict[Any, set]
        self._norm = {}  # type: Dict[Any, _Template]
        self._tmpl_bytes = 0  # bytes of the cached distinct bodies (MAX_TEMPLATE_BYTES)
        self._pending = []  # type: List[bytes]
        self._pending_len = 0
        self._profile_ok = {}  # type: Dict[Optional[str], bool]
        #: CPU seconds per stage (for the benchmark): block scans, bulk folding of fast records, the
        #: general per-line path, parsing of distinct bodies, folding into events at the end
        self.timing = {"scan": 0.0, "fold": 0.0, "mixed": 0.0, "parse": 0.0, "events": 0.0}
        self.stats = {
            "lines": 0, "records": 0, "events": 0, "kinds": {}, "modes": {}, "filtered": 0, "ignored": 0,
            "skipped": {}, "samples": {}, "bytes": 0, "apparmor_bytes": 0, "seconds": 0.0,
            "max_events_reached": False, "dropped": 0,
        }  # type: Dict[str, Any]

    # -- input -------------------------------------------------------------------------------

    def _use(self, declared):
        # type: (Optional[str]) -> None
        """Switch to the origin of the next bytes: what is buffered so far is read under the old one."""
        if declared == self._declared:
            return
        origin = provenance.stream_origin(declared)
        self._drain()
        self._fold()
        self._declared, self._origin = declared, origin

    def feed(self, data, source="", origin=None):
        # type: (bytes, str, Optional[str]) -> None
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

    def feed_stream(self, fobj, source="", block=BLOCK, origin=None):
        # type: (Any, str, int, Optional[str]) -> None
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

    def _too_long_line(self, line, size):
        # type: (Any, int) -> None
        """Count a line longer than MAX_LINE that is not read (``line`` may hold only its start)."""
        self.stats["lines"] += 1
        self.stats["bytes"] += size
        self._skip("too_long", bytes(line[:SAMPLE_LEN + 1]))

    def feed_journal_export(self, data, source="", origin="journal"):
        # type: (bytes, str, Optional[str]) -> None
        """Add ``journalctl -o export`` output (entries separated by blank lines, binary fields sized)."""
        self._use(origin)
        t0 = time.process_time()
        self.stats["bytes"] += len(data)
        pos, end = 0, len(data)
        entry = {}  # type: Dict[str, Any]
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

    def _export_entry(self, entry):
        # type: (Dict[str, Any]) -> None
        msg = entry.get("MESSAGE")
        if not msg:
            return
        self.stats["lines"] += 1
        if not any(m in msg for m in _CANDIDATE_MARKERS):
            return
        msg, when, err = _journal_entry_message(entry)
        if err:
            self._skip(err, msg)
            return
        self._general(msg, when=when, origin=self._entry_origin(entry))

    def _entry_origin(self, entry):
        # type: (Mapping[str, Any]) -> str
        """Origin of one journal entry: by its trusted fields when the stream is a journal."""
        if self._declared == "journal":
            return provenance.journal_origin(entry, self.dbus_uids)
        return self._origin

    # -- output ------------------------------------------------------------------------------

    def result(self):
        # type: () -> Dict[str, Any]
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

    def _drain(self):
        # type: () -> None
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        self._pending_len = 0
        self._run(data, len(data))

    def _run(self, buf, end):
        # type: (Any, int) -> None
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

    def _run_block(self, buf, end):
        # type: (Any, int) -> None
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

    def _mixed(self, chunk, end):
        # type: (bytes, int) -> List[Tuple[bytes, ...]]
        """A block with other shapes: fast records by position, every other candidate line alone."""
        recs = []
        fast_lines = set()
        raws = {} if self.raw_samples else None  # type: Optional[Dict[Any, bytes]]
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

    def _bulk(self, recs):
        # type: (List[Tuple[bytes, ...]]) -> None
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

    def _general(self, line, when=None, origin=None):
        # type: (bytes, Optional[float], Optional[str]) -> None
        """Any shape, one line: cached on the line minus its time and pid tokens (and per origin)."""
        if len(line) > MAX_LINE:
            self._skip("too_long", line)
            return
        if origin is None:
            origin = self._origin
        stripped = line.strip()
        if stripped.startswith(b"{"):
            obj, err = _json_object(stripped)
            if not err:
                msg, when, err = _journal_entry_message(obj)
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

    def _template(self, line, raw, when=None, origin=None):
        # type: (bytes, bytes, Optional[float], Optional[str]) -> _Template
        """Parse one distinct record body once: event, skip reason, or filtered."""
        t0 = time.process_time()
        try:
            return self._template_parse(line, raw, when, origin or self._origin)
        finally:
            self.timing["parse"] += time.process_time() - t0

    def _template_parse(self, line, raw, when, origin):
        # type: (bytes, bytes, Optional[float], str) -> _Template
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

    def _profile_wanted(self, profile):
        # type: (Optional[str]) -> bool
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

    def _skip(self, reason, line, n=1, sample=None):
        # type: (str, bytes, int, Optional[str]) -> None
        st = self.stats
        st["skipped"][reason] = st["skipped"].get(reason, 0) + n
        samples = st["samples"].setdefault(reason, [])
        if len(samples) < MAX_SAMPLES:
            text = sample if sample is not None else sanitise(line)
            if text not in samples:
                samples.append(text)

    def _fold(self):
        # type: () -> None
        """Move the per-body counters into stats and the aggregator, and empty the caches."""
        agg, st = self._agg, self.stats
        first, last, pids, cnt = self._first, self._last, self._pids, self._cnt
        groups = {}  # type: Dict[int, list]
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
