"""The fleet report (docs/report.md): per host and profile state, possible intrusions, unanswered accesses.

Why here and not in Jinja: everything a host returns is untrusted data (a local user can write log lines,
a compromised host can return anything), so it is validated and coerced in one place, in code with unit
tests, and only plain data (str, int, float, bool, lists, dicts) leaves this file. The HTML is rendered
from that data by report_html.py; the positions (tokens) go back to the controller's position file and
never into the report.

Controller-side, standard library only (like the rest of the engine).
"""
import base64
import binascii
import datetime
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import answers as answers_mod
from ansible_collections.armada.apparmor.plugins.module_utils import fleet, suggest

SCHEMA = "armada.apparmor.report/1"
#: A position token as the denials module writes it (base64url body); anything else is not stored.
TOKEN_RE = re.compile(r"^aac1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{1,65536}\Z")
#: Longest text kept from a host (a name, a path); longer values are cut and marked.
MAX_TEXT = 4096
#: Most groups listed per table: the counts stay exact, the rest is summarised.
MAX_GROUPS = 2000
STATES = ("converged", "pending", "never exercised")
KERNEL_MODES = ("enforce", "complain", "kill", "unconfined", "mixed", "prompt", "user")
_TARGET_FIELDS = ("path", "peer", "capname", "dbus_path", "target", "name", "addr", "peer_addr")


class ReportError(ValueError):
    """Bad controller-side input (options, inventory): the message says what to fix."""


# ---------------------------------------------------------------- coercion of host data

def text(value: Any, limit: int = MAX_TEXT) -> str:
    """Any host value as a bounded str (None -> ""); never interpreted, only shown."""
    if value is None:
        return ""
    out = value if isinstance(value, str) else str(value)
    if len(out) > limit:
        out = out[:limit] + "...(cut)"
    return out


def count(value: Any) -> int:
    """A non-negative int from host data (bools, junk and negatives -> 0)."""
    if isinstance(value, bool):
        return 0
    try:
        num = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return num if num >= 0 else 0


def epoch(value: Any) -> Optional[float]:
    """A plausible epoch time (1970..2200) or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        num = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return num if 0 <= num < 7258118400 else None


def texts(value: Any, limit: int = 64) -> List[str]:
    """A bounded sorted list of texts from a host list (anything else -> [])."""
    if not isinstance(value, (list, tuple)):
        return []
    return sorted({text(v, 512) for v in value[:limit] if v is not None})


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def iso(ts: Optional[float]) -> str:
    """Epoch seconds as ISO 8601 UTC, or "" for None."""
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line(value: str) -> str:
    """Control characters (newlines from hostile names) as visible escapes, for one-line text output."""
    out = []
    for c in value:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029):
            out.append("\\x%02x" % o if o < 0x100 else "\\u%04x" % o)
        else:
            out.append(c)
    return "".join(out)


# ---------------------------------------------------------------- controller input

def program_profiles(programs: Any) -> Dict[str, str]:
    """{program path: profile name} from ``apparmor_programs`` (paths, or {path, profile})."""
    out: Dict[str, str] = {}
    for p in programs or []:
        if isinstance(p, str):
            out[p] = p
        elif isinstance(p, Mapping) and isinstance(p.get("path"), str):
            out[p["path"]] = p.get("profile") or p["path"]
        else:
            raise ReportError("apparmor_programs: each entry is a path or {path, profile}, got %r" % (p,))
    return out


def program_path(program: Any) -> str:
    """The path of one ``apparmor_programs`` entry."""
    for path in program_profiles([program]):
        return path
    return ""


# ---------------------------------------------------------------- positions (controller file)

def load_positions(content: Any) -> Dict[str, str]:
    """{host: token} from positions.json ("" = no file yet). Raises ReportError on a damaged file: losing the
    positions silently would report everything again, or worse, skip records."""
    if content in (None, ""):
        return {}
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ReportError("positions.json is not JSON (%s): restore it from history/ or remove it to report "
                          "everything in the current logs again" % exc) from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("positions"), dict):
        raise ReportError("positions.json is not a version 1 position file: remove it to start again")
    out = {}
    for host, token in data["positions"].items():
        if not isinstance(token, str) or not TOKEN_RE.match(token):
            raise ReportError("positions.json: the position of %r is not a token: remove the entry" % (host,))
        out[str(host)] = token
    return out


def dump_positions(old: Mapping, new: Mapping) -> str:
    """positions.json with ``new`` (hosts read in this run) over ``old`` (hosts not read keep theirs)."""
    merged = {str(h): t for h, t in old.items()}
    for host, token in new.items():
        if isinstance(token, str) and TOKEN_RE.match(token):
            merged[str(host)] = token
    return json.dumps({"version": 1, "positions": dict(sorted(merged.items()))}, indent=1) + "\n"


def _json_b64(value: Any) -> Mapping:
    """A JSON object from base64 host content (the convergence record); {} when it is not one."""
    if not isinstance(value, str) or not value:
        return {}
    try:
        data = json.loads(base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- per host

def _declared(status: Mapping) -> Dict[str, Dict[str, Any]]:
    """{profile: {mode, file, mtime}} from the status module's files."""
    out: Dict[str, Dict[str, Any]] = {}
    for f in _mapping(status.get("files")).values():
        f = _mapping(f)
        for name, prof in _mapping(f.get("profiles")).items():
            out[text(name)] = {"mode": text(_mapping(prof).get("mode"), 32), "file": text(f.get("path")),
                               "mtime": epoch(f.get("mtime"))}
    return out


def _drift(status: Mapping) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for kind in ("not_loaded", "mode_mismatch", "content"):
        for d in _mapping(status.get("drift")).get(kind) or []:
            name = text(_mapping(d).get("profile"))
            if name:
                out.setdefault(name, []).append(kind)
    return out


def _state(record: Mapping) -> str:
    if not record:
        return "never exercised"
    if record.get("converged") is True and count(record.get("pending")) == 0:
        return "converged"
    return "pending"


def processes_by_profile(programs: Mapping[str, str], processes: Any) -> Dict[str, Dict[str, int]]:
    """``{profile: {confined, unconfined}}`` summed over its programs from the status module's ``processes``
    (``{program path: {confined, unconfined, labels}}``). A profile none of whose programs was scanned is
    left out: unknown is not zero. Used by the report, the status table and the convergence record."""
    procs = _mapping(processes)
    out: Dict[str, Dict[str, int]] = {}
    for program, profile in programs.items():
        p = _mapping(procs.get(program))
        if p:
            acc = out.setdefault(profile, {"confined": 0, "unconfined": 0})
            acc["confined"] += count(p.get("confined"))
            acc["unconfined"] += count(p.get("unconfined"))
    return out


def _backups(snapshots: Any) -> Dict[str, Any]:
    snaps = [s for s in snapshots if isinstance(s, Mapping)] if isinstance(snapshots, list) else []
    latest = snaps[-1] if snaps else {}
    return {"count": len(snaps), "latest": text(latest.get("id"), 64),
            "latest_time": iso(epoch(latest.get("epoch")))}


def host_rows(host: str, data: Mapping, programs: Dict[str, str], wanted: List[str],
              event_profiles: Iterable[str], all_loaded: bool) -> Dict[str, Any]:
    """One host's entry: reachability, AppArmor, backups, and a row per profile."""
    status = _mapping(data.get("status"))
    kernel = _mapping(status.get("kernel"))
    entry: Dict[str, Any] = {
        "host": host, "reachable": not data.get("failed"), "error": text(data.get("error")),
        "apparmor": {"enabled": kernel.get("enabled") is True, "reason": text(kernel.get("reason"))},
        "backups": _backups(data.get("backups")), "first_report": not data.get("had_position"),
        "read": {}, "profiles": []
    }
    denials = _mapping(data.get("denials"))
    stats = _mapping(denials.get("stats"))
    trust = _mapping(denials.get("source_trust"))
    entry["read"] = {"records": count(stats.get("records")),
                     "sources": texts([_mapping(s).get("name") for s in denials.get("sources") or []
                                       if _mapping(s).get("status") == "ok"]),
                     "only_forgeable": trust.get("only_forgeable") is True}
    if not status:
        return entry
    loaded = {text(k): text(v, 32) for k, v in _mapping(status.get("loaded")).items()}
    declared = _declared(status)
    drift = _drift(status)
    record = _mapping(_json_b64(data.get("convergence_b64")).get("profiles"))
    by_profile = processes_by_profile(programs, status.get("processes"))
    if wanted:
        names = set(wanted)
    else:
        names = set(programs.values()) | {text(k) for k in record} | set(event_profiles)
        if all_loaded:
            names |= set(loaded) | set(declared)
        else:
            names |= set(loaded)
    for name in sorted(n for n in names if n and "//" not in n):
        rec = _mapping(record.get(name))
        dec = declared.get(name, {})
        entry["profiles"].append({
            "profile": name,
            "mode_kernel": loaded.get(name, "not loaded" if entry["apparmor"]["enabled"] else "no AppArmor"),
            "mode_file": dec.get("mode", "no file"),
            "file": dec.get("file", ""),
            "drift": drift.get(name, []),
            "state": _state(rec),
            "passes": count(rec.get("passes")),
            "pending": count(rec.get("pending")),
            "processes": by_profile.get(name),
            "last_update": iso(dec.get("mtime")),
        })
    return entry


# ---------------------------------------------------------------- events

def _clean_event(ev: Any) -> Optional[Dict[str, Any]]:
    """A host event reduced to the fields the report shows and the answers engine reads, coerced."""
    if not isinstance(ev, Mapping) or not isinstance(ev.get("kind"), str) or not ev.get("profile"):
        return None
    out: Dict[str, Any] = {
        "kind": text(ev["kind"], 32), "profile": text(ev["profile"]), "operations": texts(ev.get("operations")),
        "modes": texts(ev.get("modes")), "comms": texts(ev.get("comms"), 16),
        "count": max(1, count(ev.get("count"))),
        "first_seen": epoch(ev.get("first_seen")), "last_seen": epoch(ev.get("last_seen")),
        "forgeable": ev.get("forgeable") is True, "sources": texts(ev.get("sources"), 16)
    }
    for key in ("parent", "child"):
        if isinstance(ev.get(key), str):
            out[key] = text(ev[key])
    for field in set(f for fields in suggest.MATCH_FIELDS_BY_KIND.values() for f in fields) | set(_TARGET_FIELDS):
        if field in ("operations",) or field not in ev:
            continue
        value = ev[field]
        if field == "mask":
            m = _mapping(value)
            out["mask"] = {"requested": text(m.get("requested"), 128), "denied": text(m.get("denied"), 128)}
        elif field == "protocol":
            out[field] = count(value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[field] = text(value)
    if isinstance(ev.get("owner"), bool):
        out["owner"] = ev["owner"]
    if isinstance(ev.get("capability"), int) and not isinstance(ev.get("capability"), bool):
        out["capability"] = ev["capability"]
    return out


def target(ev: Mapping) -> str:
    """What was accessed, in one string: the path, peer, capability, socket or dbus member."""
    kind = ev.get("kind")
    if kind == "network":
        return " ".join(text(ev.get(f)) for f in ("family", "sock_type") if ev.get(f))
    if kind == "dbus":
        return " ".join(x for x in (text(ev.get("dbus_path")), ".".join(
            text(ev.get(f)) for f in ("interface", "member") if ev.get(f))) if x)
    for field in _TARGET_FIELDS:
        if ev.get(field) not in (None, ""):
            return text(ev[field])
    return ""


def _snippet(ev: Dict[str, Any], label: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """(the answer entry that would allow the access, the rule it produces) - (None, why) when none can.

    The entry is data: the fleet_report filter writes it as YAML (controller side, PyYAML, ``!unsafe``)."""
    entry = suggest.pending_entry(ev, label)
    answer: Dict[str, Any] = {"profile": entry["profile"], "match": entry["match"], "answer": "allow"}
    if "owner" in entry:
        answer["owner"] = entry["owner"]
    if ev.get("kind") == "exec":
        modes = suggest.exec_mode_suggestions(text(ev.get("path")))
        answer["exec_mode"] = modes[0] if modes else "ix"
    one = dict(ev, hosts={"h": 1})
    try:
        result = answers_mod.to_rules([one], [answer], default="pending")
    except ValueError as exc:
        return None, "no answer can allow it: %s" % exc
    rules = []
    for prof in result["profiles"].values():
        rules += [r.get("text", "") for r in prof.get("rules", [])]
        for child in (prof.get("children") or {}).values():
            rules += [r.get("text", "") for r in child.get("rules", [])]
    if not rules:
        return None, "no AppArmor rule expresses this access (kind %s)" % ev.get("kind")
    return answer, "\n".join(rules)


def _group(ev: Dict[str, Any], modes: Dict[str, Dict[str, str]], with_snippet: bool) -> Dict[str, Any]:
    parent, child = answers_mod.split_label(ev, fold_children=True)
    label = parent if child is None else parent + "//" + child
    hosts = {text(h): count(c) for h, c in _mapping(ev.get("hosts")).items()}
    group = {"id": text(ev.get("id"), 32), "profile": text(ev.get("profile")), "kind": ev["kind"],
             "operations": ev.get("operations") or [], "target": target(ev),
             "mask": text(_mapping(ev.get("mask")).get("requested"), 128), "comms": ev.get("comms") or [],
             "hosts": hosts, "count": sum(hosts.values()), "first_seen": iso(ev.get("first_seen")),
             "last_seen": iso(ev.get("last_seen")), "sources": ev.get("sources") or [],
             "profile_mode": {h: modes.get(h, {}).get(parent, "not loaded") for h in sorted(hosts)}}
    if with_snippet:
        group["answer"], group["rule"] = _snippet(ev, label)
    return group


def _groups(per_host: Dict[str, List[Dict[str, Any]]], modes: Dict[str, Dict[str, str]],
            with_snippet: bool) -> List[Dict[str, Any]]:
    merged = fleet.merge_events(per_host) if per_host else []
    out = [_group(ev, modes, with_snippet) for ev in merged]
    out.sort(key=lambda g: (g["profile"], g["kind"], g["target"], -g["count"]))
    return out


def _unanswered(per_host: Dict[str, List[Dict[str, Any]]], answers: Any,
                modes: Dict[str, Dict[str, str]]) -> List[Dict[str, Any]]:
    """Complain-mode accesses no inventory answer decides yet, grouped per profile."""
    merged = fleet.merge_events(per_host) if per_host else []
    if not merged:
        return []
    result = answers_mod.to_rules(merged, answers, default="pending")
    by_profile: Dict[str, List[Dict[str, Any]]] = {}
    for name, prof in result["profiles"].items():
        items = list(prof.get("pending") or [])
        for child in (prof.get("children") or {}).values():
            items += child.get("pending") or []
        for ev in items:
            by_profile.setdefault(name, []).append(_group(ev, modes, True))
    return [{"profile": name, "items": sorted(items, key=lambda g: (g["kind"], g["target"]))}
            for name, items in sorted(by_profile.items())]


# ---------------------------------------------------------------- the report

def build(hosts: Mapping, programs: Any = None, answers: Any = None, profiles: Any = None,
          all_loaded: bool = False, now: Optional[float] = None, report_id: str = "",
          scope: str = "full") -> Dict[str, Any]:
    """The report data and the new positions: ``{"report": ..., "positions": {host: token}}``.

    ``scope`` is ``full`` (the report role) or ``status`` (the status playbook: no logs read, so no intrusions).
    ``hosts`` is ``{inventory host: {status, convergence_b64, denials, backups, failed, error, had_position}}``:
    the module results of that host (untrusted) and what the controller knows (failed, had_position).
    Host names are the mapping's keys (inventory names); nothing a host returns names a host or a file.
    """
    if not isinstance(hosts, Mapping):
        raise ReportError("fleet_report expects a mapping of inventory host -> collected data")
    progs = program_profiles(programs)
    wanted = [text(p) for p in (profiles or [])]
    now = now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
    denied: Dict[str, List[Dict[str, Any]]] = {}
    unverified: Dict[str, List[Dict[str, Any]]] = {}
    allowed: Dict[str, List[Dict[str, Any]]] = {}
    positions: Dict[str, str] = {}
    modes: Dict[str, Dict[str, str]] = {}
    for host in sorted(hosts):
        data = _mapping(hosts[host])
        modes[host] = {text(k): text(v, 32) for k, v in _mapping(_mapping(data.get("status")).get("loaded")).items()}
        den = _mapping(data.get("denials"))
        if data.get("failed") or not den:
            continue
        token = den.get("position")
        if isinstance(token, str) and TOKEN_RE.match(token):
            positions[host] = token
        for raw in den.get("events") or []:
            ev = _clean_event(raw)
            if ev is None:
                continue
            if "DENIED" in ev["modes"]:
                (unverified if ev["forgeable"] else denied).setdefault(host, []).append(ev)
            elif "ALLOWED" in ev["modes"] and not ev["forgeable"]:
                allowed.setdefault(host, []).append(ev)
    intrusions = _groups(denied, modes, True)
    unverified_groups = _groups(unverified, modes, True)
    unanswered = _unanswered(allowed, answers, modes)
    event_profiles = {answers_mod.split_label(e)[0] for evs in (denied, unverified, allowed)
                      for lst in evs.values() for e in lst}
    host_entries = [host_rows(h, _mapping(hosts[h]), progs, wanted, event_profiles, all_loaded) for h in sorted(hosts)]
    names = sorted({r["profile"] for h in host_entries for r in h["profiles"]})
    by_mode: Dict[str, int] = {}
    for h in host_entries:
        for r in h["profiles"]:
            by_mode[r["mode_kernel"]] = by_mode.get(r["mode_kernel"], 0) + 1
    n_unanswered = sum(len(p["items"]) for p in unanswered)
    summary = {
        "hosts": len(host_entries),
        "hosts_unreachable": sum(1 for h in host_entries if not h["reachable"]),
        "hosts_first_report": sum(1 for h in host_entries if h["reachable"] and h["first_report"]),
        "profiles": len(names),
        "rows_by_mode": dict(sorted(by_mode.items())),
        "drifted": sum(1 for h in host_entries for r in h["profiles"] if r["drift"]),
        "intrusions": len(intrusions),
        "intrusion_records": sum(g["count"] for g in intrusions),
        "unverified": len(unverified_groups),
        "unverified_records": sum(g["count"] for g in unverified_groups),
        "unanswered": n_unanswered,
    }
    summary["needs_attention"] = bool(summary["intrusions"] or summary["unverified"] or n_unanswered)
    if scope not in ("full", "status"):
        raise ReportError("scope must be full or status, got %r" % (scope,))
    report = {"schema": SCHEMA, "scope": scope, "id": report_id or datetime.datetime.fromtimestamp(
        now, tz=datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), "generated": iso(now), "summary": summary,
        "hosts": host_entries, "profiles": names, "intrusions": intrusions[:MAX_GROUPS],
        "unverified": unverified_groups[:MAX_GROUPS], "unanswered": unanswered,
        "truncated": len(intrusions) > MAX_GROUPS or len(unverified_groups) > MAX_GROUPS}
    return {"report": report, "positions": positions}


def pass_table(result: Mapping, records: Mapping) -> List[str]:
    """One table per profile_fleet pass: profile, hosts, allowed, denied, pending, converged (hosts n/m).

    ``result`` is the to_rules result of the pass, ``records`` is {host: convergence record} after it.
    """
    rows = [("profile", "hosts", "allowed", "denied", "pending", "converged")]
    profiles = _mapping(result.get("profiles"))
    names = set(profiles)
    for rec in records.values():
        names |= set(_mapping(_mapping(rec).get("profiles")))
    for name in sorted(names):
        p = _mapping(profiles.get(name))
        entries = [p] + list(_mapping(p.get("children")).values())
        counts = [sum(len(_mapping(e).get(k) or []) for e in entries) for k in ("rules", "deny", "pending")]
        recs = [_mapping(_mapping(_mapping(r).get("profiles")).get(name)) for r in records.values()]
        recs = [r for r in recs if r]
        converged = sum(1 for r in recs if r.get("converged") is True)
        hosts = sorted(set(p.get("hosts") or []) | {h for h, r in records.items()
                                                     if _mapping(_mapping(r).get("profiles")).get(name)})
        rows.append((one_line(name), str(len(hosts)), str(counts[0]), str(counts[1]), str(counts[2]),
                     "%d/%d" % (converged, len(recs))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def summary_text(report: Mapping, path: str = "", limit: int = 20) -> str:
    """Plain text for a mail or a chat message: the counts, the first groups, the report's path."""
    s = _mapping(report.get("summary"))
    lines = ["armada.apparmor report %s: %d possible intrusion(s) (%d records), %d unverified, "
             "%d unanswered complain-mode access(es) on %d host(s)"
             % (text(report.get("id")), count(s.get("intrusions")), count(s.get("intrusion_records")),
                count(s.get("unverified")), count(s.get("unanswered")), count(s.get("hosts")))]
    if path:
        lines.append("report: %s" % one_line(path))
    for title, key in (("possible intrusions", "intrusions"), ("unverified (forgeable source)", "unverified")):
        groups = report.get(key) or []
        if groups:
            lines.append("")
            lines.append("%s:" % title)
        for g in groups[:limit]:
            lines.append("  %s %s %s %s by %s on %s x%d" % (
                one_line(g["profile"]), g["kind"], one_line(",".join(g["operations"])), one_line(g["target"]),
                one_line(",".join(g["comms"])) or "-", ",".join(sorted(g["hosts"])), g["count"]))
        if len(groups) > limit:
            lines.append("  ... %d more in the report" % (len(groups) - limit))
    for p in report.get("unanswered") or []:
        lines.append("")
        lines.append("unanswered in %s: %d access(es)" % (one_line(p["profile"]), len(p["items"])))
    return "\n".join(lines) + "\n"


NOTICE_FIELDS = ("profile", "kind", "operations", "target", "comms", "hosts", "count", "first_seen", "last_seen")


def notice(report: Mapping, path: str = "") -> Dict[str, Any]:
    """The JSON body of the webhook: the summary, the path of the report and the groups (bounded)."""
    return {"source": "armada.apparmor", "schema": SCHEMA, "id": report.get("id"), "report": path,
            "summary": report.get("summary"), "text": summary_text(report, path),
            "intrusions": [{k: g[k] for k in NOTICE_FIELDS} for g in (report.get("intrusions") or [])[:100]],
            "unverified": len(report.get("unverified") or [])}
