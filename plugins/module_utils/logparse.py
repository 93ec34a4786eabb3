# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AppArmor log records: the grammar of one record, in every format a host writes (docs/events.md).

Formats (any mix, line by line): auditd ``audit.log`` raw and ENRICHED (0x1d separator),
``node=HOST`` prefixes of aggregated logs, kernel lines in syslog / kern.log / messages (BSD and
ISO timestamps, with or without a dmesg stamp), ``dmesg`` output, journald text renderings
(``host audit[PID]: AVC apparmor=...``, ``audit: type=1400 ...``), ``journalctl -o json`` lines,
``journalctl -o export`` (``LogReader.feed_journal_export``), dbus ``USER_AVC`` / 1107 records with
``msg='...'`` (also split over two lines), the ``APPARMOR_*`` and 1500-1506 types.

This file reads ONE record (``parse_record``, ``build_event``, ``parse_line``); logreader.py scans blocks
of log bytes with it and folds the events. Nothing raises on bad input: a line that is not a record gets
a skip reason. Standard library only (runs on managed hosts).
"""

import json
import re
import time
from typing import Any, Dict, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import events as ev_mod
from ansible_collections.armada.apparmor.plugins.module_utils.rules import EVENT_KINDS

#: lines longer than this are not parsed (a record is a few hundred bytes; paths are <= 4 KiB)
MAX_LINE = 65536
#: digits read as a number (pids, serials, times); longer runs stay text (int() of 4300+ digits raises)
MAX_DIGITS = 20
#: length of the samples kept of skipped lines and events
SAMPLE_LEN = 200

#: substrings of every AppArmor record line (the body of a record without an audit stamp starts before one)
RECORD_MARKERS = (b"apparmor=", b"type=150", b"type=APPARMOR", b"UNKNOWN[150")
_STAMP = re.compile(rb"audit\((\d+)\.(\d+):(\d+)\):? ?")
_TYPE = re.compile(rb"type=(\S+)")
_NODE = re.compile(rb"(?:^|(?<=\s))node=(\S+) (?=type=)")
# A key starts at the first letter of a run of name characters: only the run's start is tried, so a long
# run without "=" costs one pass (trying every position of it would be quadratic)
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



def sanitise(text: Any, limit: int = SAMPLE_LEN) -> str:
    """A log excerpt safe to show: non-printables escaped, cut at ``limit`` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    out = "".join(ch if (" " <= ch < "\x7f" or ch > "\xa0") else "\\x%02x" % ord(ch) for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _decode_value(key: str, raw: str) -> Tuple[Optional[str], bool]:
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


def parse_fields(text: str) -> Tuple[Dict[str, str], Optional[str]]:
    """``key=value`` pairs of a record (first occurrence wins; hex decoded). (fields, error reason)."""
    fields: Dict[str, str] = {}
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


def split_header(line: bytes) -> Dict[str, Any]:
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
    for marker in RECORD_MARKERS:
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


def parse_record(line: bytes,
                 node: Optional[str] = None,
                 when: Optional[float] = None) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
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


_TIME_CACHE: Dict[bytes, Optional[float]] = {}


def _timegm(tup: Tuple[int, ...]) -> int:
    """calendar.timegm without importing calendar (and locale) on every managed host run."""
    year, month, day, hh, mi, ss = tup[:6]
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mi * 60 + ss


def header_time(header: bytes) -> Optional[float]:
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


def _num(value: Optional[str]) -> Any:
    """int for decimal text (also negative), else the text unchanged."""
    if value is None:
        return None
    v = value[1:] if value[:1] == "-" else value
    return int(value) if v.isdigit() and len(v) <= MAX_DIGITS else value


def classify(fields: Dict[str, str], mode: str) -> str:
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


# kinds whose events carry an object path (the record's name=) and an owner flag (rules/<kind>.py declare it)
_PATH_KINDS = frozenset(name for name, ek in EVENT_KINDS.items() if "path" in ek.fields)
_OWNER_KINDS = frozenset(name for name, ek in EVENT_KINDS.items() if "owner" in ek.fields)


def _set(ev: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        ev[key] = value


def build_event(rec: Dict[str, Any], host: Optional[str] = None) -> Dict[str, Any]:
    """The event (without counters) of one parsed record; see docs/events.md for each field."""
    f = rec["fields"]
    mode = rec["mode"]
    kind = classify(f, mode)
    profile = f.get("profile") if f.get("profile") is not None else f.get("label")
    ev: Dict[str, Any] = {
        "kind": kind, "host": rec.get("node") or host, "profile": profile, "parent": None, "child": None,
        "operations": [f["operation"]] if f.get("operation") else [], "modes": [mode]
    }
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
    if isinstance(fsuid, int) and isinstance(ouid, int) and kind in _OWNER_KINDS:
        ev["owner"] = fsuid == ouid
    for key in ("info", "class", "execpath", "namespace", "attribute"):
        _set(ev, key, f.get(key))
    if "error" in f:
        ev["error"] = _num(f["error"])
    name = f.get("name")
    if kind in _PATH_KINDS:
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


def record_pid(rec: Dict[str, Any]) -> Optional[int]:
    """The pid of the process the record is about (for USER_AVC: the one inside ``msg='...'``)."""
    pid = _num(rec["fields"].get("pid"))
    return pid if isinstance(pid, int) else None


def parse_line(line: bytes, host: Optional[str] = None) -> Dict[str, Any]:
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


def json_object(line: bytes) -> Tuple[Dict[str, Any], Optional[str]]:
    """(object, error) of one ``journalctl -o json`` line."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested arrays
        return {}, "bad_json"
    if not isinstance(obj, dict):
        return {}, "bad_json"
    return obj, None


def _json_message(line: bytes) -> Tuple[bytes, Optional[float], Optional[str]]:
    """(MESSAGE bytes, realtime seconds, error) of one ``journalctl -o json`` object."""
    obj, err = json_object(line)
    if err:
        return b"", None, err
    return journal_entry_message(obj)


def journal_entry_message(obj: Dict[str, Any]) -> Tuple[bytes, Optional[float], Optional[str]]:
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
