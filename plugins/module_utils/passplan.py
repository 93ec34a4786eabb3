# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of an update pass and an enforce rollout, as functions (the roles call them as filters).

Why here and not in the roles' Jinja: which profiles a pass tracks, when a profile counts as converged, which
profile files are fetched under which controller name, and whether a profile is switched to enforce mode are
policy; as functions they are unit-tested one decision at a time. Several inputs come from the managed host
(the convergence record it kept, its status output, the profile texts it returned): they are data - read with
``.get`` on what is a mapping, numbers coerced as Jinja's ``int`` filter does - and never widen a decision.

Pure standard library, Python 3.8+.
"""
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.armada.apparmor.plugins.module_utils import attach

# Flags of a profile that is a stub rather than a policy: enforcing it would confine nothing.
STUB_FLAGS = ("unconfined", "prompt", "default_allow")
RECORD_VERSION = 1


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    """Jinja's ``int`` filter: the number, else 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _unique(items: Iterable[Any]) -> List[Any]:
    out: List[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def tracked_profiles(programs: Sequence[Any], profiles: Sequence[str], record: Any = None) -> List[str]:
    """Profile names of ``programs`` (a path, or a mapping with ``path`` and maybe ``profile``) then ``profiles``,
    then the profiles their ``Px`` exec rules run programs in, as the convergence ``record`` keeps them
    (``exec_targets``, transitively): a target is learned and enforced with the program that runs it."""
    names = _unique([(p.get("profile", p.get("path")) if isinstance(p, Mapping) else p) for p in programs]
                    + list(profiles))
    kept = _map(_map(record).get("profiles"))
    for name in names:  # grows while iterating: targets of targets
        for target in _map(kept.get(name)).get("exec_targets") or []:
            if isinstance(target, str) and target and target not in names:
                names.append(target)
    return names


def host_profile_files(status: Mapping) -> Dict[str, str]:
    """{profile name: file} for every top-level profile a file on the host defines (status module output)."""
    out: Dict[str, str] = {}
    for entry in _map(status.get("files")).values():
        for name in _map(_map(entry).get("profiles")):
            out[name] = entry.get("path")
    return out


def _pending_count(profile: Mapping) -> int:
    """Pending events of a profile of the to_rules result, its children's included."""
    count = len(profile.get("pending") or [])
    for child in _map(profile.get("children")).values():
        count += len(_map(child).get("pending") or [])
    return count


def convergence_record(old: Any, tracked: Sequence[str], result: Mapping, host_files: Mapping,
                       changed_profiles: Sequence[str], threshold: Any, events: Optional[Sequence[Any]] = None,
                       processes: Any = None, programs: Sequence[Any] = ()) -> Dict[str, Any]:
    """This host's convergence record after a pass.

    A profile is counted when it is tracked, kept in the previous record or reported in this pass, and defined on
    the host. It is converged after at least 2 passes of which the last ``threshold`` added no rule, once a pass
    has seen it at work (an event of it in ``events``, or a process confined by it in the status module's
    ``processes``) and while no process of its ``programs`` runs unconfined (module_utils/attach.py).
    """
    previous = _map(_map(old).get("profiles"))
    reported = _map(result.get("profiles"))
    limit = _int(threshold)
    names = sorted(n for n in _unique(list(previous) + list(tracked) + list(reported)) if n in host_files)
    seen = attach.profiles_with_events(events or [])
    by_profile = attach.profile_processes(programs, processes)
    profiles: Dict[str, Dict[str, Any]] = {}
    for name in names:
        before = _map(previous.get(name))
        added = name in changed_profiles
        passes = _int(before.get("passes", 0)) + 1
        quiet = 0 if added else _int(before.get("quiet_passes", 0)) + 1
        record = attach.evidence(before, name in seen, by_profile.get(name))
        record.update({"passes": passes, "quiet_passes": quiet, "rules_added_last": added,
                       "pending": _pending_count(_map(reported.get(name))), "threshold": limit,
                       "converged": attach.is_converged(passes, quiet, limit, record["exercised"],
                                                        record["unconfined"])})
        targets = _unique(list(before.get("exec_targets") or []) + list(_map(reported.get(name)).get("exec_targets")
                                                                        or []))
        if targets:  # the profiles this one's Px rules run programs in: enforced together (enforce_plan)
            record["exec_targets"] = targets
        profiles[name] = record
    return {"version": RECORD_VERSION, "profiles": profiles}


def fetch_names(tracked: Sequence[str], result: Mapping, host_files: Mapping,
                file_name: Callable[[str], str]) -> Dict[str, str]:
    """{controller file name: file on the host} of the profiles a pass fetches.

    The tracked profiles (inventory), else those of this pass's result; the name is ``file_name(profile)``,
    derived on the controller; a host file defining several of them is fetched once.
    """
    out: Dict[str, str] = {}
    for profile in (tracked if tracked else list(_map(result.get("profiles")))):
        if profile not in host_files:
            continue
        name = file_name(profile)
        if name not in out and host_files[profile] not in out.values():
            out[name] = host_files[profile]
    return out


def pass_counts(result: Mapping, answers: Any, pending_path: str, fetch_path: str) -> Dict[str, str]:
    """Per profile the rules allowed, denied and the pending events (children included), then the fleet line."""
    out: Dict[str, str] = {}
    profiles = _map(result.get("profiles"))
    for name in sorted(profiles):
        parts = [profiles[name]] + list(_map(profiles[name].get("children")).values())
        allowed = sum(len(p.get("rules") or []) for p in parts)
        denied = sum(len(p.get("deny") or []) for p in parts)
        out[name] = "allowed=%d denied=%d pending=%d" % (allowed, denied, _pending_count(profiles[name]))
    out["(fleet)"] = "events=%s answers=%s pending file=%s profiles dir=%s" % (
        _map(result.get("stats")).get("events", 0), answers, pending_path or "-", fetch_path)
    return out


def _unconverged_reason(record: Mapping) -> str:
    return "not converged: %s pass(es), %s in a row without a new rule, %s needed after 2 passes" % (
        record.get("passes", ""), record.get("quiet_passes", ""), record.get("threshold", ""))


def enforce_plan(status: Mapping, record: Any, programs: Sequence[Any], profiles: Sequence[str],
                 force: bool) -> List[Dict[str, Any]]:
    """Per profile {profile, file, mode_before, action (enforce | skip | none), reason}.

    The profiles are those of ``programs`` and ``profiles``, else every profile of the host's convergence
    ``record``. Enforce only what the update role saw converge without pending answers (``force`` skips those
    checks, never the ones on the host: AppArmor present, a file defining the profile).
    """
    files = host_profile_files(status)
    flags: Dict[str, Mapping] = {}
    for entry in _map(status.get("files")).values():
        for name, profile in _map(_map(entry).get("profiles")).items():
            flags[name] = _map(profile)
    # a file that does not parse (e.g. a syntax error in its local/ include) names no profile: say so
    broken = ["%s (%s)" % (e.get("path"), e.get("error")) for e in _map(status.get("drift")).get("errors") or []]
    kept = _map(_map(record).get("profiles"))
    kernel = _map(status.get("kernel"))
    loaded_modes = _map(status.get("loaded"))
    names = tracked_profiles(programs, profiles, record) or list(kept)
    out: List[Dict[str, Any]] = []
    for name in sorted(names):
        rec = _map(kept.get(name))
        profile = flags.get(name, {})
        stub = [f for f in profile.get("flags") or [] if f in STUB_FLAGS]
        loaded = loaded_modes.get(name, "")
        if not kernel.get("enabled", False):
            entry = {"action": "skip", "reason": "AppArmor absent: %s" % kernel.get("reason", "")}
        elif name not in files and broken:
            entry = {"action": "skip", "reason": "no readable profile file defines it; %d profile file(s) could not be "
                     "parsed, fix them and run again: %s" % (len(broken), "; ".join(broken))}
        elif name not in files:
            entry = {"action": "skip", "reason": "no profile file defines it"}
        elif stub and not force:
            entry = {"action": "skip", "reason": "unconfined stub (flags %s)" % ",".join(stub)}
        elif not rec and not force:
            entry = {"action": "skip", "reason": "not converged: never updated"}
        elif not rec.get("converged", False) and not force:
            entry = {"action": "skip", "reason": attach.blocked_reason(rec) or _unconverged_reason(rec)}
        elif _int(rec.get("pending", 0)) > 0 and not force:
            entry = {"action": "skip", "reason": "pending answers: %s" % rec.get("pending")}
        elif profile.get("mode", "") == "enforce" and loaded == "enforce":
            entry = {"action": "none", "reason": "already enforced"}
        else:
            entry = {"action": "enforce", "reason": "forced" if force else "converged, no pending answers"}
        entry.update({"profile": name, "file": files.get(name, ""), "mode_before": loaded or profile.get("mode", "")})
        out.append(entry)
    return _together(out, kept)


def _together(plan: List[Dict[str, Any]], kept: Mapping) -> List[Dict[str, Any]]:
    """A profile and the ``Px`` targets of its exec rules are enforced together or not at all.

    An enforcing parent whose target is missing or still learning breaks the program it runs (``Px`` to a
    missing profile fails the exec); a target enforced alone would be confined by rules its parent's run did
    not finish learning. So when one member of such a group is skipped, the members that would be enforced are
    skipped too, naming it.
    """
    by_name = dict((e["profile"], e) for e in plan)
    links: Dict[str, set] = dict((name, set()) for name in by_name)
    for name in by_name:
        for target in _map(kept.get(name)).get("exec_targets") or []:
            links[name].add(target)
            links.setdefault(target, set()).add(name)
    seen: set = set()
    for start in sorted(by_name):
        if start in seen:
            continue
        group, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name not in group:
                group.add(name)
                todo.extend(links.get(name, ()))
        seen |= group
        blocking = sorted(n for n in group if n not in by_name or by_name[n]["action"] == "skip")
        if not blocking or len(group) == 1:
            continue
        for name in sorted(group):
            entry = by_name.get(name)
            if entry is not None and entry["action"] == "enforce":
                entry["action"] = "skip"
                entry["reason"] = "enforced together with %s (exec transitions between them), which %s: %s" % (
                    ", ".join(blocking), "is" if len(blocking) == 1 else "are",
                    "; ".join("%s - %s" % (b, by_name[b]["reason"] if b in by_name else "not planned")
                              for b in blocking))
    return plan
