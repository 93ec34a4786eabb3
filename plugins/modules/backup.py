#!/usr/bin/python
# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``armada.apparmor.backup`` module: snapshot, list and restore AppArmor policy."""

DOCUMENTATION = r"""
module: backup
short_description: Snapshot and restore AppArmor profiles and their modes
version_added: 0.1.0
description:
  - V(present) archives O(apparmor_d) (or only the listed O(profiles) with their C(disable/), C(force-complain/)
    and C(local/) companions) and the loaded profile modes into C(<backup_dir>/<id>.tar.gz), with a manifest
    (sha256 per file, permissions, symlink targets, modes, host, time, reason) also kept as C(<id>.json).
    Retention (O(keep), O(max_age_days)) is applied after each snapshot; the new one is never removed.
  - V(restored) puts back V(latest) or a given O(id) - files byte-identical (verified by sha256 afterwards),
    files added since the snapshot removed and their profiles unloaded, the mode flags and links as they were;
    the restored policy is compiled in a staging copy first (nothing is touched if it fails), then reloaded.
  - A restore never writes through a symlink and never sets unsafe modes - it fails, changing nothing, when an entry of
    the snapshot lies under an entry that is a symlink, a directory above an entry (or where the snapshot has a
    directory) is a symlink on the host (for example C(local/) made a link to another disk), or a recorded mode is
    setuid, setgid or writable by others. O(apparmor_d) is resolved to its real path.
  - V(list) returns the snapshots.
  - The M(armada.apparmor.profile) and M(armada.apparmor.rules) modules call the same code before they change
    anything (their C(backup) option) and return the snapshot id.
author:
  - armada.apparmor developers (@armada)
extends_documentation_fragment:
  - armada.apparmor.host
  - armada.apparmor.host.LOCK
options:
  state:
    description:
      - V(present) takes a snapshot, V(restored) restores one, V(list) lists them.
    type: str
    choices: [present, restored, list]
    default: present
  backup_dir:
    description:
      - Directory of the archives; must be outside O(apparmor_d) (anything in it could be loaded as a profile).
    type: path
    default: /var/backups/armada-apparmor
  profiles:
    description:
      - Profile files (names relative to O(apparmor_d) or paths inside it) to snapshot instead of the whole directory.
      - A listed file that does not exist is recorded as absent, so restoring removes it.
    type: list
    elements: str
  reason:
    description:
      - Free text stored in the manifest.
    type: str
    default: ""
  id:
    description:
      - The snapshot to restore; V(latest) is the newest.
    type: str
    default: latest
  keep:
    description:
      - Retention - keep at most this many snapshots (0 = no limit).
    type: int
    default: 20
  max_age_days:
    description:
      - Retention - remove snapshots older than this many days (0 = no limit).
    type: int
    default: 180
  reload:
    description:
      - After a restore, reload the restored profiles (C(apparmor_parser -r)) and unload removed ones (C(-R)).
    type: bool
    default: true
  validate:
    description:
      - Compile the restored policy with C(apparmor_parser -QK) in a staging copy before touching anything.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: V(present) reports a change without writing; V(restored) reports the plan without applying it.
  diff_mode:
    support: full
    description: V(restored) shows each file that would be written or removed.
notes:
  - Needs root for O(apparmor_d), O(backup_dir) and the kernel; use C(become).
  - Modes live in the files (flags and links), so restoring the files restores the modes; a mode that was set
    only in the kernel at snapshot time is reported in RV(mode_mismatch).
seealso:
  - module: armada.apparmor.profile
  - module: armada.apparmor.status
"""

EXAMPLES = r"""
- name: Snapshot before a rollout
  armada.apparmor.backup:
    reason: before enforce rollout
  become: true
  register: snap

- name: Roll back to it
  armada.apparmor.backup:
    state: restored
    id: "{{ snap.id }}"
  become: true

- name: Snapshot two profiles only, keep 5
  armada.apparmor.backup:
    profiles: [usr.sbin.nginx, usr.bin.man]
    keep: 5
  become: true

- name: List snapshots
  armada.apparmor.backup:
    state: list
  become: true
  register: snaps
"""

RETURN = r"""
id:
  description: The snapshot taken or restored.
  returned: when state is present or restored
  type: str
  sample: 20261125T130513336078Z
snapshot_id:
  description: Same as RV(id), under the name the other modules use.
  returned: when state is present or restored
  type: str
archive:
  description: Path of the archive.
  returned: when state is present
  type: str
  sample: /var/backups/armada-apparmor/20261125T130513336078Z.tar.gz
files:
  description: Number of entries (files, links, dirs, absent markers) in the snapshot.
  returned: when state is present
  type: int
pruned:
  description: Snapshot ids removed by retention.
  returned: when state is present
  type: list
  elements: str
plan:
  description: Relative paths the restore writes, links, creates (mkdir), chmods and removes.
  returned: when state is restored
  type: dict
  sample: {write: [usr.bin.man], link: [], mkdir: [], chmod: [], remove: [usr.bin.new]}
verified:
  description: Every restored file matches its sha256 in the manifest.
  returned: when state is restored and something changed
  type: bool
loads:
  description: Kernel loads done (or skipped, with the reason).
  returned: when state is restored
  type: list
  elements: dict
unloads:
  description: Kernel unloads done (or skipped, with the reason).
  returned: when state is restored
  type: list
  elements: dict
mode_mismatch:
  description: Profiles whose loaded mode after the restore differs from the snapshot's.
  returned: when state is restored and the kernel has AppArmor
  type: list
  elements: dict
snapshots:
  description: The snapshots, oldest first, each with id, time, host, reason, scope, profiles, files, archive.
  returned: when state is list
  type: list
  elements: dict
"""

import contextlib  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.armada.apparmor.plugins.module_utils import argspec, backup, host  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils import lock as lock_mod  # noqa: E402

DIFF_LIMIT = 256 * 1024


def _text(data):
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT or b"\x00" in data:
        return "(%d bytes, not shown)\n" % len(data)
    return data.decode("utf-8", "replace")


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "restored", "list"]),
            backup_dir=dict(type="path", default=backup.BACKUP_DIR),
            profiles=dict(type="list", elements="str"),
            reason=dict(type="str", default=""),
            id=dict(type="str", default="latest"),
            keep=dict(type="int", default=backup.DEFAULT_KEEP),
            max_age_days=dict(type="int", default=backup.DEFAULT_MAX_AGE_DAYS),
            reload=dict(type="bool", default=True),
            validate=dict(type="bool", default=True),
            **argspec.host_options(), **argspec.lock_options(),
        ),
        supports_check_mode=True,
    )
    p = module.params
    ad = os.path.abspath(p["apparmor_d"])
    try:
        if p["state"] == "list":
            module.exit_json(changed=False, snapshots=backup.list_snapshots(p["backup_dir"]))
        if p["state"] == "present" and module.check_mode:
            module.exit_json(changed=True, id=None, snapshot_id=None, msg="a snapshot would be taken")
        # the host-wide lock: a snapshot taken while another run rewrites profiles would archive a mix, a restore
        # would interleave with its writes and reloads; check mode never writes, so it does not wait
        if module.check_mode:
            held = contextlib.nullcontext()
        elif p["state"] == "present":
            held = lock_mod.host_lock("backup: snapshot %s" % ad, timeout=p["lock_timeout"], path=p["lock_file"])
        else:
            held = lock_mod.host_lock("backup: restore %s into %s" % (p["id"], ad), timeout=p["lock_timeout"],
                                      path=p["lock_file"])
        with held:
            _present_or_restored(module, ad)
    except (lock_mod.LockBusy, lock_mod.LockError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (backup.BackupError, host.HostError, OSError) as exc:
        module.fail_json(msg=str(exc))


def _present_or_restored(module, ad):
    """Take a snapshot or restore one (outside check mode: under the host lock)."""
    p = module.params
    if p["state"] == "present":
        kernel = host.kernel_state(p["securityfs"])
        loaded = host.loaded_profiles(p["securityfs"]) if kernel["enabled"] else {}
        snap = backup.snapshot(ad, p["backup_dir"], reason=p["reason"], profiles=p["profiles"], loaded=loaded,
                               keep=p["keep"], max_age_days=p["max_age_days"])
        module.exit_json(changed=True, id=snap["id"], snapshot_id=snap["id"], archive=snap["archive"],
                         files=len(snap["files"]), pruned=snap["pruned"], scope=snap["scope"],
                         kernel=kernel)
    diffs = []
    if module._diff:
        planned = backup.restore(p["backup_dir"], p["id"], ad, check_mode=True, securityfs=p["securityfs"])
        snap = backup.read_snapshot(p["backup_dir"], planned["id"])
        for rel in planned["plan"]["write"] + planned["plan"]["remove"]:
            full = os.path.join(ad, rel)
            before = None
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as handle:
                    before = handle.read()
            diffs.append({"before_header": full, "after_header": full, "before": _text(before),
                          "after": _text(snap["data"].get(rel))})
    res = backup.restore(p["backup_dir"], p["id"], ad, parser=p["parser"], features_file=p["features_file"],
                         check_mode=module.check_mode, validate=p["validate"], reload=p["reload"],
                         securityfs=p["securityfs"])
    out = dict(res, snapshot_id=res["id"])
    if diffs:
        out["diff"] = diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
