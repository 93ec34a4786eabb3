#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.deadman`` module: arm, confirm or fire the enforce rollout's dead-man's switch."""

DOCUMENTATION = r"""
module: deadman
short_description: Arm, confirm or fire a host-local revert of an enforce switch (a dead-man's switch)
version_added: 0.2.0
description:
  - V(armed) arms a systemd timer (C(systemd-run --on-active=), transient unit C(armada-apparmor-revert-<snapshot>))
    that restores O(snapshot) O(timeout) seconds from now - the same restore as M(armada.apparmor.backup)
    C(state=restored) (byte-identical files, compiled in a staging copy first, reloaded with C(apparmor_parser -r)) -
    unless the controller confirms first. The restore runs with only what is on the host - C(python3) and the engine
    files of this collection, written next to the state as C(<state_dir>/deadman/<unit>.zip).
  - V(confirmed) disarms (stops the timer of O(name), or of every armed switch); it fails when the switch has
    already fired (the host reverted itself before the controller confirmed), after waiting for that revert to end.
  - V(reverted) fires O(name) (or every armed switch) now and waits for the revert - what the enforce role does
    with a switch an interrupted run left armed, before it reads the host's state. With O(timeout) it also returns
    RV(arm_problem), why a switch with that timeout could not be armed on this host (it does not fail for it).
  - Each firing writes its outcome to C(<state_dir>/deadman/<unit>.json) and to the journal. Arming a switch to a
    snapshot whose switch fired before keeps that record as C(<unit>.<time it was written>.json).
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host
options:
  state:
    description:
      - V(armed), V(confirmed) or V(reverted), see above.
    type: str
    choices: [armed, confirmed, reverted]
    required: true
  snapshot:
    description:
      - The snapshot (M(armada.apparmor.backup) id) the switch restores. Required with V(armed); may be empty in
        check mode (where the snapshot is not taken).
    type: str
  timeout:
    description:
      - Seconds until the switch fires. With V(armed) it must be at least O(soak_seconds) + 60.
      - With V(reverted), only checked (RV(arm_problem)).
    type: int
  soak_seconds:
    description:
      - The soak the switch has to outlast (checked against O(timeout)).
    type: int
    default: 0
  name:
    description:
      - The switch unit (RV(unit) of V(armed)) to confirm or fire; by default every armed switch.
    type: str
  state_dir:
    description:
      - The state directory on the host; the switch keeps its files in C(deadman/) below it.
    type: path
    default: /var/lib/armada-apparmor
  backup_dir:
    description:
      - Directory of the snapshots (as in M(armada.apparmor.backup)).
    type: path
    default: /var/backups/armada-apparmor
  lock_file:
    description:
      - The host-wide lock file the revert takes (as the other modules' C(lock_file)).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports what would be armed, confirmed or fired; runs no systemctl command that changes anything.
  diff_mode:
    support: none
    description: The change is a timer, not a file.
notes:
  - Needs systemd as init (C(/run/systemd/system)); V(armed) fails clearly on other hosts, V(confirmed) and
    V(reverted) find nothing armed there.
  - The timer is transient - it does not survive a reboot. A local root can stop it; see docs/security.md.
  - Use C(become).
  - The role C(armada.apparmor.enforce) arms, confirms and fires it around each host's switch (its README).
seealso:
  - module: armada.apparmor.backup
"""

EXAMPLES = r"""
- name: Arm before switching to enforce
  armada.apparmor.deadman:
    state: armed
    snapshot: "{{ snap.id }}"
    timeout: 600
    soak_seconds: 60
  become: true
  register: switch

- name: Confirm after a good soak
  armada.apparmor.deadman:
    state: confirmed
    name: "{{ switch.unit }}"
  become: true

- name: Fire whatever an interrupted run left armed
  armada.apparmor.deadman:
    state: reverted
  become: true
"""

RETURN = r"""
unit:
  description: The switch unit armed (without C(.timer) / C(.service)).
  returned: when state is armed
  type: str
  sample: armada-apparmor-revert-20261206T171503123456Z
fires_at:
  description: When the switch fires unless confirmed (seconds since the epoch, host clock).
  returned: when state is armed and not in check mode
  type: float
command:
  description: The C(systemd-run) command line that armed (or would arm) the switch.
  returned: when state is armed
  type: list
  elements: str
systemd:
  description: Whether the host runs systemd (a switch can be armed).
  returned: always
  type: bool
armed:
  description: The switch units whose timer was waiting when the task started.
  returned: always
  type: list
  elements: str
confirmed:
  description: The switches disarmed (or that would be, in check mode).
  returned: when state is confirmed
  type: list
  elements: str
arm_problem:
  description: Why a switch with O(timeout) could not be armed here (no systemd, timeout too short); empty when it can.
  returned: when state is reverted and timeout is given
  type: str
fired:
  description: The switches that had fired or were fired, each with its outcome (C(state) C(reverted) or
    C(failed), C(ok), the restore result or the error).
  returned: when state is confirmed or reverted
  type: list
  elements: dict
"""

import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, backup, deadman, fileops  # noqa: E402

LIST_UNITS = ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--type=timer",
              deadman.UNIT_PREFIX + "*"]


def _armed(module, booted):
    if not booted:
        return []
    rc, out, err = module.run_command(LIST_UNITS)
    if rc != 0:
        module.fail_json(msg="cannot list the armed switches (%s): %s" % (" ".join(LIST_UNITS), err.strip()))
    return deadman.armed_units(out)


def _read_result(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _outcome(module, unit):
    """Wait until the fired revert of ``unit`` has ended; return its recorded outcome."""
    files = deadman.paths(module.params["state_dir"], unit)
    deadline = time.time() + deadman.REVERT_LOCK_TIMEOUT + 60
    while True:
        rc, out, err = module.run_command(["systemctl", "is-active", unit + ".service"])
        record = _read_result(files["result"])
        if out.strip() not in ("activating", "deactivating") and record.get("state") != "reverting":
            break
        if time.time() > deadline:
            break
        time.sleep(1)
    return dict(record, unit=unit, service=out.strip())


def _confirm(module, units, booted, armed):
    confirmed, fired = [], []
    for unit in units:
        files = deadman.paths(module.params["state_dir"], unit)
        if module.check_mode:
            if unit in armed:
                confirmed.append(unit)
            continue
        if unit in armed:
            module.run_command(["systemctl", "stop", unit + ".timer"])
        rc, out, err = module.run_command(["systemctl", "is-active", unit + ".service"]) if booted else (0, "", "")
        if deadman.fired(out, os.path.exists(files["result"])):
            fired.append(_outcome(module, unit))
            continue
        fileops.remove(files["payload"])
        if unit in armed:
            confirmed.append(unit)
    result = dict(changed=bool(confirmed) and not module.check_mode, systemd=booted, armed=armed,
                  confirmed=confirmed, fired=fired)
    if fired:
        module.fail_json(msg="the dead-man's switch fired before the controller confirmed: the host reverted "
                             "itself to snapshot %s (%s) - the soak and its tasks took longer than the timeout; "
                             "raise apparmor_enforce_deadman_timeout"
                             % (", ".join(f.get("snapshot", "?") for f in fired),
                                ", ".join(f.get("state", "?") for f in fired)), **result)
    module.exit_json(**result)


def _revert(module, units, booted, armed):
    todo = [u for u in units if u in armed]
    p = module.params
    extra = {}
    if p["timeout"] is not None:
        extra["arm_problem"] = (deadman.systemd_problem(booted)
                                or deadman.timeout_problem(p["timeout"], p["soak_seconds"]) or "")
    if module.check_mode:
        module.exit_json(changed=bool(todo), systemd=booted, armed=armed, fired=[{"unit": u} for u in todo], **extra)
    fired = []
    for unit in todo:
        module.run_command(["systemctl", "start", unit + ".service"])
        module.run_command(["systemctl", "stop", unit + ".timer"])
        outcome = _outcome(module, unit)
        fileops.remove(deadman.paths(module.params["state_dir"], unit)["payload"])
        fired.append(outcome)
    if not module.params["name"]:
        # payloads of switches that fired on their own while the controller was away: nothing runs them any more
        for stale in glob.glob(os.path.join(module.params["state_dir"], "deadman", deadman.UNIT_PREFIX + "*.zip")):
            fileops.remove(stale)
    failed = [f for f in fired if not f.get("ok")]
    changed = any((f.get("restore") or {}).get("changed") for f in fired)
    if failed:
        module.fail_json(msg="a dead-man's switch left armed by an interrupted run was fired and its revert failed: "
                             "%s; restore the snapshot with armada.apparmor.restore"
                             % "; ".join("%s: %s" % (f["unit"], f.get("error", f.get("state", "?"))) for f in failed),
                         changed=changed, systemd=booted, armed=armed, fired=fired, **extra)
    module.exit_json(changed=changed, systemd=booted, armed=armed, fired=fired, **extra)


def _arm(module, booted, armed):
    p = module.params
    problem = deadman.systemd_problem(booted) or deadman.timeout_problem(p["timeout"], p["soak_seconds"])
    if problem:
        module.fail_json(msg=problem, systemd=booted, armed=armed)
    if module.check_mode and not p["snapshot"]:
        module.exit_json(changed=True, unit=deadman.UNIT_PREFIX + "SNAPSHOT", command=[], systemd=booted, armed=armed,
                         msg="a switch reverting to the snapshot taken before the switch would be armed")
    try:
        unit = deadman.unit_name(p["snapshot"])
    except deadman.DeadmanError as exc:
        module.fail_json(msg=str(exc))
    if armed:
        module.fail_json(msg="another dead-man's switch is armed on this host (%s): another enforce run is soaking "
                             "here, or an interrupted one left it; the enforce role fires it at its start "
                             "(armada.apparmor.deadman state=reverted)" % ", ".join(armed), systemd=booted,
                         armed=armed)
    files = deadman.paths(p["state_dir"], unit)
    cmd = deadman.arm_argv(unit, p["timeout"], deadman.revert_argv(
        sys.executable, files["payload"], p["backup_dir"], p["snapshot"], os.path.abspath(p["apparmor_d"]),
        files["result"], **{k: p[k] for k in deadman.REVERT_OPTIONS}), p["snapshot"])
    if module.check_mode:
        module.exit_json(changed=True, unit=unit, command=cmd, systemd=booted, armed=armed)
    try:
        if not os.path.isfile(os.path.join(p["backup_dir"], p["snapshot"] + ".tar.gz")):
            module.fail_json(msg="snapshot %s is not in %s: nothing to revert to" % (p["snapshot"], p["backup_dir"]))
        fileops.ensure_dir(os.path.dirname(files["payload"]), 0o700)
        if os.path.exists(files["result"]):
            # the record of an earlier firing of a switch to the same snapshot: kept, under its firing time
            kept = "%s.%d.json" % (files["result"][:-len(".json")], os.stat(files["result"]).st_mtime)
            os.replace(files["result"], kept)
        fileops.atomic_write(files["payload"], deadman.payload(), mode=0o600)
    except (fileops.FileOpError, OSError) as exc:
        module.fail_json(msg="cannot write the switch's revert program: %s" % exc)
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        fileops.remove(files["payload"])
        module.fail_json(msg="systemd-run could not arm the dead-man's switch (rc %d): %s" % (rc, err.strip()),
                         command=cmd)
    module.exit_json(changed=True, unit=unit, command=cmd, fires_at=time.time() + p["timeout"], systemd=booted,
                     armed=armed)


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["armed", "confirmed", "reverted"]),
            snapshot=dict(type="str"),
            timeout=dict(type="int"),
            soak_seconds=dict(type="int", default=0),
            name=dict(type="str"),
            state_dir=dict(type="path", default="/var/lib/armada-apparmor"),
            backup_dir=dict(type="path", default=backup.BACKUP_DIR),
            lock_file=dict(type="path"),
            **argspec.host_options(),
        ),
        required_if=[("state", "armed", ("snapshot", "timeout"))],
        supports_check_mode=True,
    )
    p = module.params
    booted = os.path.isdir(deadman.SYSTEMD_MARKER)
    armed = _armed(module, booted)
    units = [p["name"]] if p["name"] else armed
    if p["state"] == "armed":
        _arm(module, booted, armed)
    elif p["state"] == "confirmed":
        _confirm(module, units, booted, armed)
    else:
        _revert(module, units, booted, armed)


if __name__ == "__main__":
    main()
