"""Fleet events: the events of many hosts folded into one list, each access with its hosts.

The answers engine decides per fleet event (consensus counts hosts), so folding is defined once here,
on top of the per-host event model (events.py): :func:`merge_events` folds, :func:`event_hosts` reads
the ``{host: count}`` of a folded or a single-host event. Standard library only (runs on managed hosts
through answers.py).
"""
import json
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import events as events_model

# Host name of an event that names none.
UNKNOWN_HOST = "unknown"


def compact_json(value: Any, limit: int = 160) -> str:
    """Compact one-line JSON of a value for error messages (long values cut, never multi-line)."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def event_hosts(event: Dict[str, Any]) -> Dict[str, int]:
    """{host: count} of an event: ``hosts`` after merge_events, else its single ``host``."""
    hosts = event.get("hosts")
    if isinstance(hosts, Mapping) and hosts:
        return dict((str(h), int(c)) for h, c in hosts.items())
    if isinstance(hosts, list) and hosts:
        return dict((str(h), 1) for h in hosts)
    return {str(event.get("host") or UNKNOWN_HOST): int(event.get("count") or 1)}


def fleet_key(event: Dict[str, Any]) -> Tuple[Any, ...]:
    """Identity of an access across hosts: events.identity() without the host (docs/events.md)."""
    ident = events_model.identity(event)
    return (ident[0], None) + tuple(ident[2:])


def _events_of(value: Any, var: Optional[str]) -> Optional[List[Any]]:
    """The event list inside one host's data: a list, a reader/module result, or a (dotted) var.

    Mappings are checked as ``Mapping`` (not ``dict``): Ansible's ``hostvars`` is a lazy mapping.
    """
    if var:
        for part in var.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    if isinstance(value, Mapping) and isinstance(value.get("events"), (list, tuple)):
        return list(value["events"])
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def _iter_host_events(data: Any, var: Optional[str]) -> Iterable[Tuple[Optional[str], Dict[str, Any]]]:
    """Yield (host or None, event) from every input shape merge_events accepts."""
    if isinstance(data, Mapping) and not isinstance(data.get("events"), (list, tuple)):
        for host in data:
            evs = _events_of(data[host], var)
            if evs is None:
                if var:  # hostvars: a host that did not register the variable (unreachable, skipped)
                    continue
                raise ValueError("merge_events: host %r holds neither an event list nor a result with 'events'"
                                 % (host,))
            for ev in evs:
                yield str(host), ev
        return
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, (list, tuple)):
        raise ValueError("merge_events: expected a list of per-host event lists or a {host: events} mapping, got %s"
                         % type(data).__name__)
    for i, item in enumerate(data):
        if isinstance(item, Mapping) and "kind" in item:
            yield None, item
            continue
        evs = _events_of(item, var)
        if evs is None:
            raise ValueError("merge_events: item #%d is neither an event, an event list nor a result with 'events'" % i)
        for ev in evs:
            yield None, ev


class _Fold:
    """Accumulator for one fleet event: the same folding as events.merge_into (counts, min/max times,
    unions, pids/comms bounded at 16, denied mask union) but with sets, so folding 1,000 hosts'
    copies is linear instead of re-sorting lists on every copy."""

    __slots__ = ("event", "hosts", "origins", "foreign", "ops", "modes", "pids", "comms", "first", "last",
                 "denied", "letters", "sources")

    def __init__(self, ev: Dict[str, Any], counts: Dict[str, int], origins: Dict[str, int], foreign: bool,
                 fleet_id: str) -> None:
        self.event = dict(ev)
        self.event.pop("host", None)
        self.event.pop("origins", None)
        self.event["id"] = fleet_id
        self.hosts = dict(counts)
        self.origins = dict(origins)
        self.foreign = foreign
        self.ops = set(ev.get("operations") or ())
        self.modes = set(ev.get("modes") or ())
        self.pids = set(ev.get("pids") or ())
        self.comms = set(ev.get("comms") or ())
        self.first = ev.get("first_seen")
        self.last = ev.get("last_seen")
        mask = ev.get("mask")
        self.denied = mask.get("denied") if isinstance(mask, dict) else None
        self.letters = ev.get("kind") in events_model.LETTER_MASK_KINDS
        self.sources = set(ev.get("sources") or ()) if isinstance(ev.get("sources"), list) else set()

    def add(self, ev: Dict[str, Any], counts: Dict[str, int], origins: Dict[str, int], foreign: bool) -> None:
        hosts = self.hosts
        for h, c in counts.items():
            hosts[h] = hosts.get(h, 0) + c
        for h, c in origins.items():
            self.origins[h] = self.origins.get(h, 0) + c
        self.foreign = self.foreign or foreign
        ops = ev.get("operations")
        if ops:
            self.ops.update(ops)
        modes = ev.get("modes")
        if modes:
            self.modes.update(modes)
        if isinstance(ev.get("sources"), list):
            self.sources.update(str(s) for s in ev["sources"])
        for acc, new in ((self.pids, ev.get("pids")), (self.comms, ev.get("comms"))):
            if new and len(acc) < events_model.MAX_PIDS:
                for item in new:
                    if len(acc) >= events_model.MAX_PIDS:
                        break
                    acc.add(item)
        t = ev.get("first_seen")
        if t is not None and (self.first is None or t < self.first):
            self.first = t
        t = ev.get("last_seen")
        if t is not None and (self.last is None or t > self.last):
            self.last = t
        mask = ev.get("mask")
        denied = mask.get("denied") if isinstance(mask, dict) else None
        if denied and denied != self.denied and self.denied is not None:
            if self.letters:
                self.denied += "".join(c for c in denied if c not in self.denied)
            else:
                words = self.denied.split()
                self.denied = " ".join(words + [w for w in denied.split() if w not in words])
        elif denied and self.denied is None and isinstance(self.event.get("mask"), dict):
            self.denied = denied

    def finish(self) -> Dict[str, Any]:
        ev = self.event
        ev["hosts"] = self.hosts
        if self.foreign:  # some copy named an origin other than the host that reported it: keep it, as info
            ev["origins"] = self.origins
        ev["count"] = sum(self.hosts.values())
        ev["operations"] = sorted(self.ops)
        ev["modes"] = sorted(self.modes)
        ev["pids"] = sorted(self.pids)[:events_model.MAX_PIDS]
        ev["comms"] = sorted(self.comms)[:events_model.MAX_COMMS]
        ev["first_seen"] = self.first
        ev["last_seen"] = self.last
        if self.sources:
            ev["sources"] = sorted(self.sources)
        if isinstance(ev.get("mask"), dict):
            ev["mask"] = dict(ev["mask"])
            if self.denied is not None:
                ev["mask"]["denied"] = self.denied
        return ev


def _claimed_origins(ev: Mapping, count: int) -> Dict[str, int]:
    """{origin: count} an event says it comes from: its ``origins`` (already merged), else its ``hosts``,
    else its own ``host`` (``node=`` of remote-aggregated logs). Empty when it names none.

    Written by the reporting host, so information only: never counted for consensus when the host that
    reported the event is known (merge_events).
    """
    for key in ("origins", "hosts"):
        value = ev.get(key)
        if isinstance(value, Mapping) and value:
            out: Dict[str, int] = {}
            for name, num in value.items():
                try:
                    out[str(name)] = int(num)
                except (TypeError, ValueError):  # a crafted count must not fail the whole fleet's merge
                    out[str(name)] = 1
            return out
        if isinstance(value, list) and value:
            return dict((str(name), 1) for name in value)
    if ev.get("host"):
        return {str(ev.get("host")): count}
    return {}


def merge_events(data: Any, var: Optional[str] = None) -> List[Dict[str, Any]]:
    """Fold the events of many hosts into one list, each event with ``hosts: {host: count}``.

    ``data`` is a list of per-host event lists (or reader/module results with ``events``), a flat event
    list, or a mapping ``{host: events | result | hostvars}``; with ``var`` (dotted, e.g.
    ``denials.events``) each host's value is looked up in it, and hosts without it are skipped.

    Who counts as a host (consensus, ``to_rules(min_hosts=k)``): with a mapping, the mapping key - the
    inventory host whose result the event came from - and only it. An event's own ``host`` / ``hosts``
    (``node=`` of remote-aggregated logs, or a crafted field) is written by that host, so a compromised
    host could claim to be k hosts; it is kept as information in ``origins: {origin: count}`` (only when
    some origin differs from the reporting host) and never counted. Without a mapping (a list) no
    reporter is known and the events' own ``hosts`` / ``host`` are used: that form is for lists the
    controller built itself (e.g. merge_events output merged again), not for raw host output.

    Merged events keep the first event's non-identity fields; counts add up, times are min/max, lists
    are unioned (pids/comms capped at 16), ``id`` is recomputed fleet-wide. Already merged events (with
    ``hosts``) merge again correctly. Output order is deterministic.
    """
    merged: Dict[Tuple[Any, ...], _Fold] = {}
    for host, ev in _iter_host_events(data, var):
        if not isinstance(ev, Mapping) or "kind" not in ev:
            raise ValueError("merge_events: not an event (a mapping with 'kind'): %s" % compact_json(ev))
        key = fleet_key(ev)
        count = int(ev.get("count") or 1)
        claimed = _claimed_origins(ev, count)
        if host is not None:  # the inventory host that reported it: the only identity consensus counts
            counts = {host: count}
            origins = claimed or {host: count}
            foreign = any(o != host for o in origins)
        else:
            if isinstance(ev.get("hosts"), (Mapping, list)) and ev.get("hosts"):
                counts = event_hosts(ev)
            else:
                counts = {str(ev.get("host") or UNKNOWN_HOST): count}
            foreign = isinstance(ev.get("origins"), (Mapping, list)) and bool(ev.get("origins"))
            origins = claimed if foreign else dict(counts)
        fold = merged.get(key)
        if fold is None:
            merged[key] = _Fold(ev, counts, origins, foreign, events_model.event_id(key))
        else:
            fold.add(ev, counts, origins, foreign)
    out = [fold.finish() for fold in merged.values()]
    out.sort(key=lambda e: (str(e.get("kind")), str(e.get("profile")), str(e.get("path")), e["id"]))
    return out
