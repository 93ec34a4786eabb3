"""Options shared by the modules that look at or change AppArmor on a host."""


class ModuleDocFragment:
    """Host location options: the AppArmor directory, securityfs, the parser and its features."""

    DOCUMENTATION = r"""
options:
  apparmor_d:
    description:
      - The AppArmor policy directory.
      - Change it only for tests or chroots; the kernel-side steps always act on the running kernel.
    type: path
    default: /etc/apparmor.d
  securityfs:
    description:
      - Where AppArmor's securityfs is mounted (loaded profiles, policy hashes).
    type: path
    default: /sys/kernel/security/apparmor
  parser:
    description:
      - Path of C(apparmor_parser).
      - By default C(/sbin/apparmor_parser), C(/usr/sbin/apparmor_parser) or the first one on E(PATH).
    type: path
  features_file:
    description:
      - A features file passed to C(apparmor_parser -M) when compiling for validation or drift checks.
      - By default the parser uses the running kernel's features, or the C(policy-features) of its C(parser.conf)
        when the kernel has no AppArmor.
    type: path
"""

    BACKUP = r"""
options:
  backup:
    description:
      - Take a snapshot of the files this task changes (and the loaded modes) before changing anything,
        with the same code as M(armada.apparmor.backup). The snapshot id is returned as RV(ignore:snapshot_id).
      - No snapshot is taken when nothing changes, nor in check mode.
    type: bool
    default: true
  backup_dir:
    description:
      - Directory of the snapshot archives; it must be outside O(apparmor_d).
    type: path
    default: /var/backups/armada-apparmor
  backup_keep:
    description:
      - Retention, applied after each snapshot - keep at most this many snapshots (0 = no limit).
    type: int
    default: 20
  backup_max_age_days:
    description:
      - Retention - remove snapshots older than this many days (0 = no limit). The newest snapshot is never removed.
    type: int
    default: 180
"""

    LOCK = r"""
options:
  lock_timeout:
    description:
      - Outside check mode, a task that changes the host holds the host-wide armada.apparmor lock for the whole
        change, so two runs on one host never interleave - M(armada.apparmor.profile), M(armada.apparmor.rules)
        and M(armada.apparmor.backup) from reading the files they change to the last write, reload, backup or
        restore (lost rules, a reload of a half-edited profile); M(armada.apparmor.denials) with C(since) from
        loading the cursor to committing it; M(armada.apparmor.state) while it writes its files.
      - When another run holds the lock, wait this many seconds, then fail with a message naming that run (pid,
        start time, what it does); nothing is changed.
    type: float
    default: 10
  lock_file:
    description:
      - The host-wide lock file (shared by every armada.apparmor module). Default - C(/run/armada-apparmor.lock).
    type: path
"""
