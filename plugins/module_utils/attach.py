"""Is a learned profile attached to its program, and has any pass seen it at work?

Why: a profile attaches at exec. A daemon that was running before ``learn`` loaded its profile stays
unconfined: it logs nothing, so an empty profile would pass every quiet pass and be reported converged,
then break the daemon at its next restart. So ``learn`` restarts the service inventory names for such a
program (or reports it "not attached"), and convergence needs evidence: an event of the profile, or a
process confined by it, seen by some pass. The process counts come from ``host.program_processes``
(per profile: ``report.processes_by_profile``).

Pure standard library, Python 3.8+.
"""
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from ansible_collections.armada.apparmor.plugins.module_utils.report import count, processes_by_profile

# A systemd unit name (``nginx``, ``php8.2-fpm.service``, ``getty@tty1``): never an option, a path or a glob.
SERVICE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,255}$")
PROGRAM_KEYS = ("path", "profile", "exercise", "service")


class ProgramError(ValueError):
    """An ``apparmor_programs`` entry is malformed; the message names it and says what to fix."""


def program_entry(program: Any) -> Dict[str, str]:
    """One ``apparmor_programs`` entry as ``{path, profile, exercise, service}`` ("" when not given).

    A path, or a mapping with ``path`` and the optional ``profile``, ``exercise``, ``service`` (a systemd
    unit restarted by ``learn`` when the program runs unconfined). Anything else is refused with a message:
    a typo in a key would silently leave a daemon unconfined.
    """
    item = {"path": program} if isinstance(program, str) else program
    if not isinstance(item, Mapping):
        raise ProgramError("apparmor_programs: each entry is a path or a mapping {path, profile, exercise, "
                           "service}, got %r" % (program,))
    unknown = sorted(str(k) for k in item if k not in PROGRAM_KEYS)
    if unknown:
        raise ProgramError("apparmor_programs entry %r: unknown key(s) %s; the keys are %s"
                           % (item.get("path"), ", ".join(unknown), ", ".join(PROGRAM_KEYS)))
    path = item.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ProgramError("apparmor_programs entry %r: path must be an absolute program path" % (program,))
    out = {"path": path}
    for key in ("profile", "exercise", "service"):
        value = item.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ProgramError("apparmor_programs entry %s: %s must be a string, got %r" % (path, key, value))
        out[key] = value
    out["profile"] = out["profile"] or path
    service = out["service"]
    if service and (not SERVICE_RE.match(service) or service.startswith("-")):
        raise ProgramError("apparmor_programs entry %s: service %r is not a systemd unit name (letters, digits "
                           "and _.:@- only, not starting with -)" % (path, service))
    return out


def restart_plan(programs: Any, processes: Any) -> Dict[str, Any]:
    """What ``learn`` does about programs with unconfined processes: the services to restart (each once,
    sorted) and the programs left "not attached" (no ``service`` named), with their unconfined count."""
    restart = set()
    not_attached: List[Dict[str, Any]] = []
    procs = processes if isinstance(processes, Mapping) else {}
    for entry in (program_entry(p) for p in programs or []):
        p = procs.get(entry["path"])
        unconfined = count(p.get("unconfined")) if isinstance(p, Mapping) else 0
        if not unconfined:
            continue
        if entry["service"]:
            restart.add(entry["service"])
        else:
            not_attached.append({"path": entry["path"], "profile": entry["profile"], "unconfined": unconfined})
    return {"restart": sorted(restart), "not_attached": not_attached}


def profile_processes(programs: Any, processes: Any) -> Dict[str, Dict[str, int]]:
    """``{profile: {confined, unconfined}}`` of the ``apparmor_programs`` entries, from the status module's
    ``processes`` (host data: counts are coerced, unknown programs ignored)."""
    entries = [program_entry(p) for p in programs or []]
    return processes_by_profile({e["path"]: e["profile"] for e in entries}, processes)


def profiles_with_events(events: Iterable[Any]) -> Set[str]:
    """Top-level profile names that logged any of ``events`` (a ``//`` child counts for its parent)."""
    seen: Set[str] = set()
    for event in events:
        profile = event.get("profile") if isinstance(event, Mapping) else None
        if isinstance(profile, str):
            seen.add(profile.split("//", 1)[0])
    return seen


def evidence(old: Any, event_seen: bool, processes: Optional[Mapping[str, int]]) -> Dict[str, Any]:
    """The evidence fields of one profile's convergence record after a pass.

    ``exercised`` stays true once any pass read an event of the profile or saw a process confined by it.
    ``unconfined`` is the number of its program's processes running unconfined in this pass (not attached).
    """
    old = old if isinstance(old, Mapping) else {}
    procs = processes or {}
    confined = count(procs.get("confined"))
    return {"exercised": old.get("exercised") is True or bool(event_seen) or confined > 0,
            "confined": confined, "unconfined": count(procs.get("unconfined"))}


def is_converged(passes: int, quiet_passes: int, threshold: int, exercised: bool, unconfined: int) -> bool:
    """Converged: at least 2 passes, ``threshold`` in a row without a new rule, exercised, and no process
    of its program running unconfined."""
    return passes >= 2 and quiet_passes >= threshold and exercised and unconfined == 0


def blocked_reason(record: Any) -> str:
    """Why a recorded profile cannot be converged for lack of evidence ("" if it has evidence).

    Enforce names this reason instead of the pass counts. A record written before these fields existed
    has no ``exercised``: it is treated as never exercised (the evidence was never checked)."""
    rec = record if isinstance(record, Mapping) else {}
    unconfined = count(rec.get("unconfined"))
    if unconfined:
        return ("not attached: %d process(es) of its program run unconfined (started before the profile was "
                "loaded); restart them, or name the service in apparmor_programs so learn restarts it" % unconfined)
    if rec.get("exercised") is not True:
        return ("never exercised: no pass read an event of it or saw a process confined by it; run the program "
                "(apparmor_learn_exercise) and profile again")
    return ""
