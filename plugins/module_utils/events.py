# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The event model of docs/events.md: identity, stable ids and folding of identical accesses.

Why a separate file: the reader (logparse.py), the rules engine and the answers engine all need
to agree on what "the same access" is. Each kind declares its identity fields once (rules/<kind>.py,
base.EventKind); everything that folds or compares events goes through ``identity()`` /
``event_id()`` / ``merge_into()`` here.

Standard library only: this runs on managed hosts.
"""

import hashlib
import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils.rules import EVENT_KINDS, FILE_RULE_KINDS

#: every event kind (docs/events.md), declared by the rule kinds (rules/__init__.py EVENT_KINDS)
KINDS = tuple(EVENT_KINDS)
MODES = ("ALLOWED", "DENIED", "AUDIT", "KILLED", "HINT", "STATUS", "ERROR")

#: bound of the ``pids`` / ``comms`` lists of one event (memory grows with events, not log size)
MAX_PIDS = 16
MAX_COMMS = 16

# Identity fields added after (kind, host, profile), per kind (base.EventKind.identity).
_IDENTITY = dict((name, ek.identity) for name, ek in EVENT_KINDS.items())

# Letter masks (file kinds) fold their denied part letter by letter; word masks word by word.
LETTER_MASK_KINDS = FILE_RULE_KINDS

#: fields any event may carry whatever its kind (docs/events.md); the kinds declare the rest
RECORD_FIELDS = ("kind", "profile", "parent", "child", "host", "id", "operations", "modes", "comms", "mask", "fsuid",
                 "ouid", "info", "error", "class", "execpath", "namespace", "attribute")


def identity(event: Dict[str, Any]) -> Tuple[Any, ...]:
    """The tuple that decides which records fold together (docs/events.md, *Identity*).

    Capability events use the capability name when the record carries one (``capname=``), so
    records that only log the number and records that log both still fold. Forgeable records
    (``forgeable: true``, see provenance.py) get a marker at the end: they stay apart from trusted
    sightings of the same access, whose ids do not change.
    """
    kind = event.get("kind", "other")
    ident: List[Any] = [kind, event.get("host"), event.get("profile")]
    for field in _IDENTITY.get(kind, _IDENTITY["other"]):
        if field == "mask":
            mask = event.get("mask")
            ident.append(mask.get("requested") if mask else None)
        elif field == "capability":
            ident.append(event.get("capname") if event.get("capname") is not None else event.get("capability"))
        elif field == "operations":
            ident.append(tuple(event.get("operations") or ()))
        else:
            ident.append(event.get(field))
    if event.get("forgeable") is True:
        # a record a local user could have written never folds into (or hides) a trusted one
        ident.append("forgeable")
    return tuple(ident)


def event_id(ident: Tuple[Any, ...]) -> str:
    """16 hex chars of sha1 over the JSON of the identity: same access, same id, on any host or run."""
    blob = json.dumps(list(ident), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def _union_mask(kind: str, old: str, new: str) -> str:
    """Union of two denied masks, keeping the first one's order and appending new parts."""
    if not new or old == new:
        return old
    if not old:
        return new
    if kind in LETTER_MASK_KINDS:
        return old + "".join(ch for ch in new if ch not in old)
    words = old.split()
    words.extend(w for w in new.split() if w not in words)
    return " ".join(words)


def _bounded_union(old: List[Any], new: Iterable[Any], limit: int) -> List[Any]:
    """Sorted union of two lists, cut at ``limit`` entries (a sample, not a census)."""
    merged = set(old)
    for item in new:
        if len(merged) >= limit:
            break
        merged.add(item)
    return sorted(merged)[:limit]


def merge_into(target: Dict[str, Any], other: Dict[str, Any]) -> None:
    """Fold ``other`` into ``target`` (same identity): counts, times, unions; first record's fields win."""
    target["count"] = target.get("count", 0) + other.get("count", 0)
    target["operations"] = sorted(set(target.get("operations", [])) | set(other.get("operations", [])))
    target["modes"] = sorted(set(target.get("modes", [])) | set(other.get("modes", [])))
    for key, pick in (("first_seen", min), ("last_seen", max)):
        a, b = target.get(key), other.get(key)
        target[key] = b if a is None else (a if b is None else pick(a, b))
    target["pids"] = _bounded_union(target.get("pids", []), other.get("pids", []), MAX_PIDS)
    target["comms"] = _bounded_union(target.get("comms", []), other.get("comms", []), MAX_COMMS)
    if "sources" in target or "sources" in other:
        target["sources"] = sorted(set(target.get("sources") or ()) | set(other.get("sources") or ()))
    if "mask" in target and "mask" in other:
        mask = dict(target["mask"])
        mask["denied"] = _union_mask(target.get("kind", ""), mask.get("denied", ""), other["mask"].get("denied", ""))
        target["mask"] = mask
    if "raw_sample" not in target and "raw_sample" in other:
        target["raw_sample"] = other["raw_sample"]


def finish(event: Dict[str, Any]) -> Dict[str, Any]:
    """Give an event its ``id`` (from its identity) and the always-present core fields."""
    event.setdefault("count", 0)
    event.setdefault("first_seen", None)
    event.setdefault("last_seen", None)
    event.setdefault("pids", [])
    event.setdefault("comms", [])
    event.setdefault("operations", [])
    event.setdefault("modes", [])
    event["id"] = event_id(identity(event))
    return event


def sort_key(event: Dict[str, Any]) -> Tuple[str, str, str, str]:
    """Order of ``LogReader.result()["events"]``: kind, profile, path, id."""
    return (event.get("kind") or "", event.get("profile") or "", event.get("path") or "", event.get("id") or "")


class Aggregator:
    """Folds events by identity. Memory grows with the number of distinct events only.

    ``max_events`` caps distinct events: once reached, records of new identities are dropped and
    counted in ``dropped`` (records of known events still fold), so a flood cannot exhaust memory.
    Trusted and forgeable events have a cap each, so a flood of forged records cannot crowd out real ones.
    """

    def __init__(self, max_events: Optional[int] = None) -> None:
        self.max_events = max_events
        self.events: Dict[str, Dict[str, Any]] = {}
        self.distinct = {False: 0, True: 0}  # distinct events per forgeable flag
        self.dropped = 0
        self.max_reached = False

    def add(self, event: Dict[str, Any]) -> bool:
        """Fold one (finished) event; returns False when it was dropped by ``max_events``."""
        eid = event.get("id") or finish(event)["id"]
        known = self.events.get(eid)
        if known is not None:
            merge_into(known, event)
            return True
        forgeable = event.get("forgeable") is True
        if self.max_events is not None and self.distinct[forgeable] >= self.max_events:
            self.max_reached = True
            self.dropped += event.get("count", 1) or 1
            return False
        self.distinct[forgeable] += 1
        self.events[eid] = event
        return True

    def result(self) -> List[Dict[str, Any]]:
        """The folded events, sorted (kind, profile, path, id)."""
        return sorted(self.events.values(), key=sort_key)
