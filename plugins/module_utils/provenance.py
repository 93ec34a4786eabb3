# Copyright: armada.apparmor contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an AppArmor record came from, and whether a local user could have written it.

Why: any local user can write a syslog or journal line that *claims* to come from the kernel or
``dbus-daemon`` (``logger -t kernel 'audit: ... apparmor="DENIED" ...'``). The text of a record can
never prove who wrote it; only the channel can. So every record carries an *origin* (the channel it
was read from) and the origin decides whether the record is ``forgeable`` (docs/events.md, *Origin*;
docs/security.md, *Forged records*):

========================  =========  ==========================================================
origin                    forgeable  why
========================  =========  ==========================================================
``auditd``                no         auditd's log: written by auditd from the kernel's audit socket;
                                     user-space records need CAP_AUDIT_WRITE (root)
``dmesg``                 no         the kernel ring buffer; ``/dev/kmsg`` is writable by root only
``journal-kernel``        no         journal entry with the trusted field ``_TRANSPORT=kernel``
``journal-audit``         no         journal entry with ``_TRANSPORT=audit``
``journal-dbus``          no         a dbus record logged by the system bus daemon itself: trusted
                                     ``_UID`` (root or the bus user) and ``_COMM`` of a dbus daemon
``syslog``                yes        a plain text log file (kern.log, syslog, messages) written by a
                                     syslog daemon that stores what any local user sends to /dev/log
``journal-unverified``    yes        a journal entry whose trusted ``_`` fields do not prove kernel,
                                     audit or dbus-daemon origin (``logger -t dbus-daemon ...``)
``unspecified``           no         bytes handed to the reader without saying where they come from:
                                     the caller vouches for them (the ``denials`` module always says)
========================  =========  ==========================================================

Journal fields starting with ``_`` are added by journald itself from the sender's credentials and
cannot be set by the sender, which is what makes ``journal-*`` decidable per entry.

Standard library only: this runs on managed hosts.
"""

from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set

#: origin -> forgeable by an unprivileged local user
FORGEABLE = {
    "auditd": False,
    "dmesg": False,
    "journal-kernel": False,
    "journal-audit": False,
    "journal-dbus": False,
    "syslog": True,
    "journal-unverified": True,
    "unspecified": False,
}
#: what a caller may declare for a stream: ``journal`` is decided per entry
DECLARED = ("auditd", "dmesg", "syslog", "journal", "unspecified")
#: process names (``_COMM``, 15 chars at most) of the dbus daemons that log AppArmor decisions
DBUS_COMMS = frozenset(("dbus-daemon", "dbus-broker", "dbus-broker-lau"))
#: system users the bus daemons run as (their uid is trusted for dbus records)
DBUS_USERS = ("messagebus", "dbus")


def bus_uids() -> FrozenSet[int]:
    """uids a system bus daemon runs as on this host: root and the bus users that exist."""
    uids = {0}
    try:
        import pwd
    except ImportError:  # pragma: no cover - not a POSIX host
        return frozenset(uids)
    for name in DBUS_USERS:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    return frozenset(uids)


def _text(value: Any) -> Optional[str]:
    """A single journal field value as text; None for a missing or repeated (list) field."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def journal_origin(entry: Mapping[str, Any], dbus_uids: Iterable[int]) -> str:
    """The origin of one journal entry (``journalctl -o json`` object or ``-o export`` fields).

    Decided from the trusted fields only: ``_TRANSPORT`` kernel/audit; for the syslog/journal
    transports the sender's ``_UID`` and ``_COMM`` (and a ``_PID``) must be those of a system bus
    daemon. Everything else - including ``SYSLOG_IDENTIFIER``, which the sender chooses - proves
    nothing and gives ``journal-unverified``.
    """
    transport = _text(entry.get("_TRANSPORT"))
    if transport == "kernel":
        return "journal-kernel"
    if transport == "audit":
        return "journal-audit"
    if transport in ("syslog", "journal"):
        uid, comm, pid = _text(entry.get("_UID")), _text(entry.get("_COMM")), _text(entry.get("_PID"))
        if uid is not None and uid.isdigit() and int(uid) in set(dbus_uids) and comm in DBUS_COMMS \
                and pid is not None and pid.isdigit():
            return "journal-dbus"
    return "journal-unverified"


def stream_origin(declared: Optional[str]) -> str:
    """The origin of the records of a stream the caller declared (``journal`` entries: per entry)."""
    if declared is None:
        return "unspecified"
    if declared not in DECLARED:
        raise ValueError("unknown origin %r: use one of %s" % (declared, ", ".join(DECLARED)))
    return "journal-unverified" if declared == "journal" else declared


def mark(event: Dict[str, Any], origin: str) -> Dict[str, Any]:
    """Give ``event`` its ``sources`` and ``forgeable`` fields (docs/events.md, *Origin*).

    A dbus daemon vouches for dbus records only: any other kind logged under its name is unverified.
    """
    if origin == "journal-dbus" and event.get("kind") != "dbus":
        origin = "journal-unverified"
    event["sources"] = [origin]
    event["forgeable"] = FORGEABLE[origin]
    return event


def is_forgeable(event: Mapping[str, Any]) -> bool:
    """True only for events the reader marked forgeable (events without the marker predate it)."""
    return event.get("forgeable") is True


def soak_verdict(events: Iterable[Mapping[str, Any]], only_forgeable: bool) -> Dict[str, Any]:
    """What the DENIED events of an enforce soak mean for the rollout of one host.

    * any event with a trusted record: ``rollback`` (a real denial: the profile is too tight);
    * forgeable events only, and the host has a trusted source (``only_forgeable`` false): ``continue``
      - the trusted source saw no denial, so these are reported as unverified and nothing is undone;
    * forgeable events only on a host whose every source is forgeable: ``stop`` - such a record cannot
      be told from a real denial, so it is neither ignored nor allowed to undo the switch: the host stays
      as switched, is reported ``unverified`` and the rollout stops after this batch for a person to look.

    Returns ``{"action", "trusted": [events], "unverified": [events], "reason"}``.
    """
    trusted: List[Mapping[str, Any]] = []
    unverified: List[Mapping[str, Any]] = []
    for ev in events:
        (unverified if is_forgeable(ev) else trusted).append(ev)
    if trusted:
        action, reason = "rollback", "%d new DENIED event(s) from a trusted source" % len(trusted)
    elif not unverified:
        action, reason = "continue", "no new DENIED record"
    elif only_forgeable:
        action = "stop"
        reason = ("%d DENIED event(s) read only from sources any local user can write (%s), and this host has "
                  "no trusted source to check them against: not rolled back and not ignored - the rollout "
                  "stops after this batch; check the host (are these real denials?), then roll back with "
                  "armada.apparmor.restore or run the rollout again" % (len(unverified), _origins(unverified)))
    else:
        action = "continue"
        reason = ("%d DENIED event(s) read only from sources any local user can write (%s) while the trusted "
                  "source saw none: reported as unverified, not rolled back" % (len(unverified), _origins(unverified)))
    return {"action": action, "trusted": trusted, "unverified": unverified, "reason": reason}


def _origins(events: Iterable[Mapping[str, Any]]) -> str:
    names: Set[str] = set()
    for ev in events:
        names.update(str(s) for s in ev.get("sources") or ())
    return ", ".join(sorted(names)) or "unknown origin"
