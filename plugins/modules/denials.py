#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.denials`` module: read AppArmor records on a host, return aggregated events."""

DOCUMENTATION = r"""
module: denials
short_description: Read AppArmor log records on a host and return them as aggregated events
version_added: 0.1.0
description:
  - The reading half of C(aa-logprof), for a fleet. Reads AppArmor records from C(auditd)'s
    C(audit.log), the systemd journal, C(kern.log)/C(syslog)/C(messages) or the kernel ring buffer,
    including rotated and C(.gz) files, and returns them folded into distinct events (the event
    schema of C(docs/events.md)), so only aggregated events cross the network.
  - By default (O(sources=auto)) it reads exactly one kernel stream, so no record is counted twice -
    C(audit.log) when C(auditd) runs (the kernel then sends AppArmor records only there); else the
    journal's kernel records; else the first of C(kern.log), C(syslog), C(messages); else C(dmesg).
    The dbus records that C(dbus-daemon)/C(dbus-broker) send through syslog are added from the
    journal (or from C(syslog)/C(messages)) in every case.
  - With O(since), reading starts where the named cursor stopped and the result carries the new
    position as a token. The cursor moves only when asked - O(commit=true) in the same task, or a
    later task with O(commit_token) - so a play that fails after reading loses no events. Check mode
    never moves a cursor. See C(docs/cursor.md).
  - Every event says where its records were read (C(sources)) and whether a local user could have written
    them (C(forgeable)) - plain syslog files can be written by anyone through C(logger); auditd's log, the
    kernel ring buffer and journal entries whose trusted fields prove kernel, audit or dbus-daemon origin
    cannot. Forgeable and trusted sightings of one access are separate events. See C(docs/security.md),
    I(Forged records).
  - Read-only apart from its own cursor files. A missing AppArmor or an unreadable source is reported
    in RV(apparmor) and RV(sources); the task fails for it only with O(fail_on_missing=true).
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host.LOCK
options:
  sources:
    description:
      - What to read, in order. V(auto) (the choice described above), V(journal) (kernel and dbus records
        of the journal), V(dmesg) (the kernel ring buffer), or absolute file paths (their rotations
        C(NAME.1), C(NAME.2.gz), C(NAME-YYYYMMDD.gz) are followed; a path ending in C(.gz) is read as is).
      - A file path is trusted (origin C(auditd)) only when it is auditd's log (the default or the C(log_file) of
        auditd.conf); any other file is read as C(syslog), which a local user can forge. Write V(auditd:/PATH) for
        a file that auditd writes although auditd.conf does not name it - the inventory vouches for it.
      - Each source is read once even when named twice.
    type: list
    elements: str
    default: [auto]
  profiles:
    description:
      - Keep only events of profiles matching one of these AppArmor globs (C(*), C(**), C(?), C([...]), C({a,b})).
        The full label and its parent profile are both tried. Default - all profiles.
    type: list
    elements: str
  modes:
    description:
      - Record classes to keep.
    type: list
    elements: str
    choices: [DENIED, ALLOWED, AUDIT, KILLED, HINT, STATUS, ERROR]
    default: [DENIED, ALLOWED]
  since:
    description:
      - Name of a cursor. Reading starts after the position it stores (per source); a new cursor starts
        like a read without one. The new position is returned in C(cursor.token).
      - Characters allowed - C(A-Z a-z 0-9 _ . @ + -), not starting with a dot or dash.
    type: str
  commit:
    description:
      - Store the new position of O(since) right after a successful read.
      - Leave it false to commit later with O(commit_token), after the events have been safely used.
    type: bool
    default: false
  commit_token:
    description:
      - Commit a token returned by an earlier read of cursor O(since) and read nothing.
      - Refused when the cursor was moved by another run since the token was issued (the positions would skip
        or repeat records), unless O(force=true). Committing the same token twice changes nothing.
    type: str
  position:
    description:
      - Read from a position the caller keeps instead of a cursor stored on the host - a token returned in
        RV(position) by an earlier read with this option, or V(start) for a first read (like a read without a
        cursor). Nothing is written on the host, so the read is safe on hosts that must not change (the
        report role keeps the position per host on the controller).
      - The token is self-checking; a damaged token, or one issued for a named cursor, fails the task.
    type: str
  force:
    description:
      - With O(commit_token), store the token even if the cursor moved since it was issued.
    type: bool
    default: false
  mark:
    description:
      - Start after the first line containing this string, like C(aa-genprof) does with its C(GenProf:) mark.
        Applied to each source separately; a source where the mark is not found contributes nothing
        (C(mark_found) in RV(sources) says so).
      - Write the mark with C(logger -p kern.warn MARK) for the journal or syslog, C(auditctl -m MARK) for C(audit.log).
    type: str
  include_rotated:
    description:
      - On a first read (no cursor, or a source the cursor has not seen), also read the rotated files
        (oldest first) and, for the journal, all boots instead of the current one.
      - Once a cursor holds a position, rotations are always followed from it, whatever this says.
    type: bool
    default: false
  max_events:
    description:
      - Stop adding new distinct events after this many (records of known events still count).
        C(max_events_reached) in RV(stats) says when it happened. Trusted and forgeable events are capped
        separately (this many each), so a flood of forged records cannot push real ones out.
    type: int
  raw_samples:
    description:
      - Return one raw log line with each event, and excerpts of the lines that could not be read in
        C(stats.samples). Off by default - raw lines can hold user data (file names, command lines, user
        names); without it only the parsed event fields and counts leave the host.
    type: bool
    default: false
  skip_covered:
    description:
      - Leave out events that the profile on disk (with its includes) already allows or explicitly denies,
        counted in RV(covered). Needs the profile index of C(module_utils/coverage.py); when it is not
        available the option does nothing and a warning says so.
    type: bool
    default: true
  apparmor_d:
    description:
      - The AppArmor policy directory used by O(skip_covered).
    type: path
    default: /etc/apparmor.d
  host:
    description:
      - Origin name written in each event's C(host) field (records with C(node=) keep their own). Pass
        C({{ inventory_hostname }}) to get inventory names; default - the host's name.
    type: str
  cursor_dir:
    description:
      - Directory of the cursor files (C(NAME.json)).
    type: path
    default: /var/lib/armada-apparmor/cursors
  journal_directory:
    description:
      - Read the journal files of this directory (C(journalctl --directory)) instead of the system journal.
    type: path
  fail_on_missing:
    description:
      - Fail the task when AppArmor is not enabled in the kernel or a source cannot be read. By default
        both are only reported.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads as usual and returns the token; never writes a cursor.
  diff_mode:
    support: none
    description: The only state it changes is its own cursor.
notes:
  - Reading C(audit.log), the journal's kernel records and the ring buffer needs root; use C(become).
  - Engine code is the Python standard library only; the host needs Python 3.8 or newer.
seealso:
  - module: armada.apparmor.status
"""

EXAMPLES = r"""
- name: Denials and complain-mode accesses since the last run (not committed yet)
  armada.apparmor.denials:
    since: fleet
    host: "{{ inventory_hostname }}"
  become: true
  register: aa_log

- name: Commit the position once the events are stored on the controller
  armada.apparmor.denials:
    since: fleet
    commit_token: "{{ aa_log.cursor.token }}"
  become: true

- name: One-shot read of everything, old rotations included, for two profiles
  armada.apparmor.denials:
    include_rotated: true
    profiles: ["/usr/sbin/nginx", "php-fpm*"]
    modes: [DENIED]
  become: true

- name: Read and commit in one go from explicit files
  armada.apparmor.denials:
    sources: [/var/log/audit/audit.log, /var/log/syslog]
    since: nightly
    commit: true
  become: true

- name: aa-genprof style - what happened after a mark
  block:
    - name: Write the mark
      ansible.builtin.command: 'logger -p kern.warn "GenProf: {{ mark }}"'
      changed_when: false
    - name: Exercise the program
      ansible.builtin.command: /usr/local/bin/app --selftest
      changed_when: false
    - name: Events after the mark
      armada.apparmor.denials:
        mark: "GenProf: {{ mark }}"
      register: aa_new
  vars:
    mark: "{{ 999999999 | random | string }}"
  become: true
"""

RETURN = r"""
events:
  description:
    - Aggregated events (identical accesses folded), in the schema of C(docs/events.md) - C(id), C(kind), C(host),
      C(profile), C(parent), C(child), C(operations), C(modes), C(count), C(first_seen), C(last_seen), C(pids),
      C(comms) and the fields of each kind (C(path), C(mask), C(capability), C(family), C(peer), ...).
    - C(sources) lists the origins of its records (C(auditd), C(dmesg), C(journal-kernel), C(journal-audit),
      C(journal-dbus) - not forgeable; C(syslog), C(journal-unverified) - forgeable by any local user).
      C(forgeable) is true when every record of the event came from a forgeable origin; such an event never
      folds with a trusted sighting of the same access (it has its own C(id)).
  returned: always
  type: list
  elements: dict
  sample:
    - id: 02f8e98df64fe3dc
      kind: file
      host: web1
      profile: /usr/bin/x
      parent: /usr/bin/x
      child: null
      operations: [open]
      modes: [DENIED]
      path: /etc/shadow
      mask: {requested: r, denied: r}
      owner: true
      count: 3
      first_seen: 1700000000.1
      last_seen: 1700000093.4
      pids: [811]
      comms: [x]
      sources: [auditd]
      forgeable: false
stats:
  description:
    - Reader statistics - C(lines), C(records), C(events), C(kinds), C(modes), C(filtered), C(skipped) (per reason)
      with sanitised C(samples) (excerpts of the unreadable lines; only with O(raw_samples=true), because they are
      raw log text), C(bytes), C(apparmor_bytes), C(seconds), C(max_events_reached), C(dropped).
  returned: always
  type: dict
  sample: {lines: 120, records: 14, events: 3, kinds: {file: 12, dbus: 2}, skipped: {}, bytes: 23010}
covered:
  description: Events left out by O(skip_covered), by decision, and whether the check was active.
  returned: always
  type: dict
  sample: {active: true, allow: 5, deny: 0}
sources:
  description:
    - One entry per source read - C(name) (its key in the cursor), C(kind) (file, journal, dmesg), C(path),
      C(streams) (all, kernel or dbus), C(reason) it was chosen, C(status) (ok, missing, unreadable, error),
      C(bytes) read, C(files) (path, start, end, compressed), C(notes), C(restarted) (a file shrank or the
      boot changed - read again from the start), C(cursor_lost) (the position was rotated away),
      C(origin) (auditd, dmesg, journal - judged per entry - or syslog), C(forgeable) (every record of it could
      have been written by a local user), and C(mark_found) when O(mark) is set.
  returned: always
  type: list
  elements: dict
  sample:
    - name: file:/var/log/audit/audit.log
      kind: file
      path: /var/log/audit/audit.log
      streams: all
      reason: auditd is running
      origin: auditd
      forgeable: false
      status: ok
      bytes: 52311
      files: [{path: /var/log/audit/audit.log.1, start: 81920, end: 90112, compressed: false}]
      notes: []
      restarted: false
      cursor_lost: false
source_trust:
  description:
    - Which sources read without error can be trusted - C(trusted) and C(forgeable) (source names), and
      C(only_forgeable) - true when no trusted source was read, so no record of this host can be told from a
      forgery (the enforce role stops a rollout on such a host's denial instead of trusting or ignoring it).
  returned: always
  type: dict
  sample: {trusted: [file:/var/log/audit/audit.log], forgeable: ["file:/var/log/syslog#dbus"], only_forgeable: false}
source_notes:
  description: Why O(sources=auto) chose what it chose.
  returned: always
  type: list
  elements: str
  sample: ["auditd is running: kernel AppArmor records are read from /var/log/audit/audit.log only"]
apparmor:
  description: Whether the kernel has AppArmor enabled, and why not.
  returned: always
  type: dict
  sample: {enabled: false, reason: the kernel has no AppArmor (/sys/module/apparmor/parameters/enabled is missing)}
cursor:
  description:
    - The cursor O(since) - C(name), C(token) (the new position; give it to O(commit_token)), C(committed)
      (stored by this task, or would be in check mode), C(existed) (it had a stored position before).
      Null without O(since).
  returned: always
  type: dict
  sample: {name: fleet, token: "aac1.9f2c...", committed: false, existed: true}
position:
  description:
    - With O(position), the position after this read as a token - give it to O(position) next time. Null without it.
  returned: always
  type: str
  sample: "aac1.4f2c9a01b2c3d4e5.eNq..."
transfer:
  description:
    - Sizes, to see what crosses the network - C(read_bytes) (log bytes read), C(apparmor_bytes) (the AppArmor
      record lines among them), C(events_bytes) (JSON size of RV(events)), C(seconds) (wall time of reading
      and parsing).
  returned: always
  type: dict
  sample: {read_bytes: 1048576, apparmor_bytes: 40960, events_bytes: 2048, seconds: 0.02}
"""

import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, host, logsources  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import cursor as cursor_mod  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import lock as lock_mod  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader  # noqa: E402

MODES = ["DENIED", "ALLOWED", "AUDIT", "KILLED", "HINT", "STATUS", "ERROR"]
# Name carried by the tokens of O(position), so a named cursor's token is not taken for one.
POSITION_NAME = "position"


def _position_sources(token):
    """The per-source positions of a token returned in RV(position)."""
    payload = cursor_mod.parse_token(token)
    if payload.get("name") != POSITION_NAME:
        raise cursor_mod.CursorError("the token was issued for cursor %r: give the token returned in 'position' "
                                     "by an earlier read with position, or 'start'" % payload.get("name"))
    return payload["sources"]


def _coverage_index(apparmor_d):
    """The rules engineer's profile index, or (None, why) when it is not available."""
    try:
        from ansible_collections.armada.apparmor.plugins.module_utils.coverage import ProfileIndex
    except ImportError as exc:
        return None, "skip_covered is inactive: the coverage index is not available (%s)" % exc
    try:
        return ProfileIndex.load(apparmor_d), None
    except Exception as exc:  # noqa: BLE001 - any failure to index is reported, reading goes on
        return None, "skip_covered is inactive: cannot index %s (%s)" % (apparmor_d, exc)


def _skip_covered(events, index):
    """Split events into (kept, {"allow": n, "deny": n}) by the index's decision."""
    kept = []
    counts = {"allow": 0, "deny": 0}
    for ev in events:
        decision = index.decision(ev)
        if decision in counts:
            counts[decision] += 1
        else:
            kept.append(ev)
    return kept, counts


def main():
    """Read, aggregate, optionally commit; or only commit a token."""
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(type="list", elements="str", default=["auto"]),
            profiles=dict(type="list", elements="str"),
            modes=dict(type="list", elements="str", choices=MODES, default=["DENIED", "ALLOWED"]),
            since=dict(type="str"),
            commit=dict(type="bool", default=False),
            commit_token=dict(type="str", no_log=False),
            force=dict(type="bool", default=False),
            position=dict(type="str", no_log=False),
            mark=dict(type="str"),
            include_rotated=dict(type="bool", default=False),
            max_events=dict(type="int"),
            raw_samples=dict(type="bool", default=False),
            skip_covered=dict(type="bool", default=True),
            apparmor_d=dict(type="path", default="/etc/apparmor.d"),
            host=dict(type="str"),
            cursor_dir=dict(type="path", default=cursor_mod.DEFAULT_CURSOR_DIR),
            journal_directory=dict(type="path"),
            fail_on_missing=dict(type="bool", default=False),
            **argspec.lock_options(),
        ),
        mutually_exclusive=[["commit", "commit_token"], ["position", "since"]],
        required_by={"commit_token": "since"},
        supports_check_mode=True,
    )
    p = module.params
    if p["commit"] and not p["since"]:
        module.fail_json(msg="commit needs since: the name of the cursor to store the position in")
    if p["max_events"] is not None and p["max_events"] < 1:
        module.fail_json(msg="max_events must be at least 1")
    store = cursor_mod.CursorStore(p["cursor_dir"])
    host_lock = None
    if p["since"] and not module.check_mode:
        what = "denials: %s cursor %s" % ("commit" if p["commit_token"] else "read", p["since"])
        host_lock = lock_mod.HostLock(path=p["lock_file"], what=what, timeout=p["lock_timeout"])
        try:
            host_lock.acquire()
        except (lock_mod.LockBusy, lock_mod.LockError) as exc:
            module.fail_json(msg=str(exc))
    try:
        _run(module, store)
    finally:
        if host_lock is not None:
            host_lock.release()


def _run(module, store):
    """The task body, under the host lock when a cursor is involved."""
    p = module.params
    if p["commit_token"]:
        try:
            res = store.commit(p["since"], p["commit_token"], check_mode=module.check_mode, force=p["force"])
        except (cursor_mod.CursorError, OSError) as exc:
            module.fail_json(msg="cannot commit cursor %s: %s" % (p["since"], exc))
        module.exit_json(changed=res["changed"], cursor={"name": p["since"], "token": p["commit_token"],
                                                         "committed": res["changed"], "existed": True},
                         events=[], stats={}, sources=[], source_notes=[], covered={"active": False},
                         source_trust={}, apparmor=host.apparmor_status(), position=None, transfer={})

    apparmor = host.apparmor_status()
    try:
        srcs, notes = logsources.resolve_sources(p["sources"], journal_directory=p["journal_directory"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    positions = {}
    existed = False
    if p["position"] not in (None, "start"):
        try:
            positions = _position_sources(p["position"])
        except cursor_mod.CursorError as exc:
            module.fail_json(msg="position: %s" % exc)
    if p["since"]:
        try:
            existed = store.exists(p["since"])
            positions = store.load(p["since"])
        except cursor_mod.CursorError as exc:
            module.fail_json(msg=str(exc))

    reader = LogReader(host=p["host"] or socket.gethostname(), profiles=p["profiles"], modes=p["modes"],
                       raw_samples=p["raw_samples"], max_events=p["max_events"])
    started = time.monotonic()
    origins = dict((src.key, src.origin) for src in srcs)

    def feed(data, key):
        reader.feed(data, key, origin=origins[key])

    new_positions, reports = logsources.read_all(srcs, positions, feed,
                                                 include_rotated=p["include_rotated"], mark=p["mark"])
    result = reader.result()
    elapsed = time.monotonic() - started
    if not p["raw_samples"]:
        # the skip samples are raw log text: they leave the host only when asked for (docs/security.md)
        result["stats"]["samples"] = {}
    events = result["events"]

    covered = {"active": False, "allow": 0, "deny": 0}
    if p["skip_covered"] and events:
        index, why = _coverage_index(p["apparmor_d"])
        if index is None:
            module.warn(why)
            covered["reason"] = why
        else:
            events, counts = _skip_covered(events, index)
            covered.update(counts)
            covered["active"] = True

    problems = [r for r in reports if r["status"] != "ok"]
    for r in problems:
        module.warn("source %s: %s (%s)" % (r["name"], r["status"], "; ".join(r["notes"]) or "no detail"))
    if not apparmor["enabled"]:
        module.warn(apparmor["reason"])
    if p["fail_on_missing"] and (problems or not apparmor["enabled"]):
        why = [apparmor["reason"]] if not apparmor["enabled"] else []
        why += ["%s: %s" % (r["name"], "; ".join(r["notes"]) or r["status"]) for r in problems]
        module.fail_json(msg="fail_on_missing: " + " / ".join(why), sources=reports, apparmor=apparmor)

    cursor = None
    changed = False
    if p["since"]:
        token = cursor_mod.make_token(p["since"], positions, new_positions)
        cursor = {"name": p["since"], "token": token, "committed": False, "existed": existed}
        if p["commit"]:
            try:
                res = store.commit(p["since"], token, check_mode=module.check_mode)
            except (cursor_mod.CursorError, OSError) as exc:
                module.fail_json(msg="cannot commit cursor %s: %s" % (p["since"], exc), sources=reports)
            changed = res["changed"]
            cursor["committed"] = res["changed"]

    position = None
    if p["position"] is not None:
        position = cursor_mod.make_token(POSITION_NAME, positions, new_positions)
    transfer = {
        "read_bytes": sum(int(r.get("bytes", 0)) for r in reports),
        "apparmor_bytes": result["stats"].get("apparmor_bytes", 0),
        "events_bytes": len(json.dumps(events, separators=(",", ":"))),
        "seconds": round(elapsed, 3),
    }
    module.exit_json(changed=changed, events=events, stats=result["stats"], covered=covered, sources=reports,
                     source_notes=notes, apparmor=apparmor, cursor=cursor, position=position, transfer=transfer,
                     source_trust=_source_trust(reports))


def _source_trust(reports):
    """Trusted and forgeable sources read without error, and whether only forgeable ones were."""
    ok = [r for r in reports if r["status"] == "ok"]
    trusted = [r["name"] for r in ok if not r["forgeable"]]
    return {"trusted": trusted, "forgeable": [r["name"] for r in ok if r["forgeable"]],
            "only_forgeable": not trusted}


if __name__ == "__main__":
    main()
