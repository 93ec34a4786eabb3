"""The argument_spec entries several modules share, next to the doc fragment that documents them
(``plugins/doc_fragments/host.py``: the default fragment, ``BACKUP`` and ``LOCK``).

Why one place: five modules took the same options; a default changed in one copy and not the others
would make the modules disagree about the same host. Each helper returns fresh dicts (AnsibleModule
may fill them in).

Pure standard library, Python 3.8+.
"""
from typing import Any, Dict

from ansible_collections.armada.apparmor.plugins.module_utils import backup, host

Spec = Dict[str, Dict[str, Any]]


def host_options() -> Spec:
    """Where AppArmor is: the policy directory, securityfs, the parser and its features file."""
    return dict(
        apparmor_d=dict(type="path", default=host.APPARMOR_D),
        securityfs=dict(type="path", default=host.SECURITYFS),
        parser=dict(type="path"),
        features_file=dict(type="path"),
    )


def backup_options() -> Spec:
    """The snapshot a changing module takes before it writes (same code as the backup module)."""
    return dict(
        backup=dict(type="bool", default=True),
        backup_dir=dict(type="path", default=backup.BACKUP_DIR),
        backup_keep=dict(type="int", default=backup.DEFAULT_KEEP),
        backup_max_age_days=dict(type="int", default=backup.DEFAULT_MAX_AGE_DAYS),
    )


def lock_options() -> Spec:
    """The host-wide lock (lock.py) a run holds while it changes the host."""
    return dict(
        lock_timeout=dict(type="float", default=10.0),
        lock_file=dict(type="path"),
    )
