# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dead-man's switch for the enforce rollout: a host-local revert that fires unless the controller confirms.

Why: a profile that breaks ``sshd``, ``sudo`` or ``python3`` in enforce mode also cuts the controller off from
the host it would have to roll back. Before the switch, the enforce role arms a systemd timer on the host
(``systemd-run --on-active=``, a transient unit ``armada-apparmor-revert-<snapshot id>``) that restores the
snapshot taken before the switch - the same ``backup.restore`` as ``armada.apparmor.backup state=restored``:
byte-identical files, staged compile first, ``apparmor_parser -r``. After a good soak the controller confirms
(stops the timer), after a bad one it rolls back and stops it too; when the controller loses the host, the
timer fires and the host reverts itself, like a network device's commit-confirmed.

The revert must run with only what is on the host: the collection is not installed there (Ansible ships its
code per task). So arming writes the engine files the revert needs (:data:`PAYLOAD_MODULES`, stdlib only) into
a zip next to the state and the timer runs ``python3 -I -c`` with that zip on ``sys.path`` (:func:`revert_argv`,
:func:`main`). Everything here is pure decisions and the host-side revert; the module runs systemctl.

Pure standard library, Python 3.8+.
"""
import argparse
import importlib
import inspect
import io
import json
import os
import re
import time
import zipfile
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.armada.apparmor.plugins.module_utils import backup, fileops, host, lock

UNIT_PREFIX = "armada-apparmor-revert-"
#: Seconds the timeout must leave beyond the soak for the tasks around it (switch, checks, log reads, confirm).
MARGIN_SECONDS = 60
#: Present on a host booted with systemd (sd_booted(3)).
SYSTEMD_MARKER = "/run/systemd/system"
#: How long a firing revert waits for the host-wide lock (a controller task may still hold it).
REVERT_LOCK_TIMEOUT = 300.0
PACKAGE = "ansible_collections.armada.apparmor.plugins.module_utils"
#: The engine modules the revert imports (this one and what backup.restore and the lock need).
PAYLOAD_MODULES = ("deadman", "backup", "fileops", "host", "lock")
_SNAPSHOT_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")
# -c program of the timer: argv[1] is the payload zip, the rest goes to main()
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from ansible_collections.armada.apparmor.plugins.module_utils import deadman; "
         "sys.exit(deadman.main(sys.argv[2:]))")


class DeadmanError(Exception):
    """The switch cannot be armed, confirmed or fired as asked; the message says what to do."""


def unit_name(snapshot_id: str) -> str:
    """The systemd unit (without .timer/.service) of the switch that reverts to ``snapshot_id``."""
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.match(snapshot_id):
        raise DeadmanError("snapshot id %r is not a snapshot id of the backup module (letters and digits)"
                           % (snapshot_id,))
    return UNIT_PREFIX + snapshot_id


def snapshot_of(unit: str) -> Optional[str]:
    """The snapshot id a switch unit name reverts to, or None when it is not such a name."""
    for suffix in (".timer", ".service"):
        if unit.endswith(suffix):
            unit = unit[:-len(suffix)]
    if not unit.startswith(UNIT_PREFIX):
        return None
    sid = unit[len(UNIT_PREFIX):]
    return sid if _SNAPSHOT_ID.match(sid) else None


def timeout_problem(timeout: Any, soak_seconds: Any) -> Optional[str]:
    """Why ``timeout`` cannot guard a soak of ``soak_seconds`` (None = fine): it must outlast the soak plus
    :data:`MARGIN_SECONDS`, or the host reverts a good switch before the controller can confirm it."""
    if isinstance(timeout, bool) or not isinstance(timeout, int) or isinstance(soak_seconds, bool) \
            or not isinstance(soak_seconds, int):
        return "apparmor_enforce_deadman_timeout and apparmor_enforce_soak_seconds must be whole seconds"
    least = max(soak_seconds, 0) + MARGIN_SECONDS
    if timeout < least:
        return ("apparmor_enforce_deadman_timeout is %d s but must be at least the soak (%d s) plus %d s for the "
                "tasks around it, so %d s or more (size it for your slowest host: the host reverts a switch the "
                "controller has not confirmed in time)" % (timeout, soak_seconds, MARGIN_SECONDS, least))
    return None


def systemd_problem(booted: bool) -> Optional[str]:
    """Why no switch can be armed on a host (None = it can): it needs systemd as init for the timer."""
    if booted:
        return None
    return ("this host was not booted with systemd (%s is missing), so the dead-man's switch cannot be armed: "
            "a profile that breaks ssh would leave it switched with nothing to revert it. Set "
            "apparmor_enforce_deadman: false for such hosts to roll out without it" % SYSTEMD_MARKER)


def paths(state_dir: str, unit: str) -> Dict[str, str]:
    """Where a switch keeps its files on the host: the payload zip and the revert's result."""
    base = os.path.join(state_dir, "deadman", unit)
    return {"payload": base + ".zip", "result": base + ".json"}


#: Optional restore settings passed through to the revert (the module's host options and lock file).
REVERT_OPTIONS = ("lock_file", "parser", "securityfs", "features_file")


def revert_argv(python: str, payload: str, backup_dir: str, snapshot_id: str, apparmor_d: str, result: str,
                **options: Optional[str]) -> List[str]:
    """The command the timer runs: ``python -I -c BOOT payload`` + the revert's arguments for :func:`main`
    (``options``: any of :data:`REVERT_OPTIONS`, left out when empty)."""
    argv = [python, "-I", "-c", _BOOT, payload, "--snapshot", snapshot_id, "--backup-dir", backup_dir,
            "--apparmor-d", apparmor_d, "--result", result]
    for name in REVERT_OPTIONS:
        if options.get(name):
            argv += ["--" + name.replace("_", "-"), str(options[name])]
    unknown = set(options) - set(REVERT_OPTIONS)
    if unknown:
        raise DeadmanError("unknown revert option(s): %s" % ", ".join(sorted(unknown)))
    return argv


def arm_argv(unit: str, timeout: int, revert: Sequence[str], snapshot_id: str) -> List[str]:
    """The ``systemd-run`` command that arms the switch: a oneshot service (so ``systemctl start`` waits for it)
    behind a timer firing ``timeout`` seconds from now (accuracy 1 s, not the default minute)."""
    return ["systemd-run", "--unit=" + unit, "--on-active=%ds" % timeout, "--timer-property=AccuracySec=1s",
            "--property=Type=oneshot",
            "--description=armada.apparmor dead-man's switch: revert to snapshot %s unless the controller "
            "confirms" % snapshot_id, "--"] + list(revert)


def armed_units(list_units_output: str) -> List[str]:
    """Switch units whose timer is still waiting, from ``systemctl list-units --all --plain --no-legend
    --type=timer 'armada-apparmor-revert-*'`` (columns UNIT LOAD ACTIVE SUB DESCRIPTION)."""
    out = []
    for line in list_units_output.splitlines():
        cols = line.split()
        if len(cols) >= 4 and snapshot_of(cols[0]) and cols[0].endswith(".timer") and cols[2] == "active":
            out.append(cols[0][:-len(".timer")])
    return sorted(set(out))


def fired(service_state: str, result_exists: bool) -> bool:
    """Whether a switch has fired: its revert ran or runs (result written, or the service not merely inactive)."""
    return result_exists or service_state.strip() in ("activating", "active", "deactivating", "failed")


# ---------------------------------------------------------------- the payload and the revert (runs on the host)

def payload() -> bytes:
    """A zip of the engine modules the revert imports, read from wherever this code was loaded (the task's
    AnsiballZ zip on a host, the source tree in tests), with the package ``__init__`` files around them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        parts = PACKAGE.split(".")
        for depth in range(1, len(parts) + 1):
            archive.writestr("/".join(parts[:depth]) + "/__init__.py", "")
        for name in PAYLOAD_MODULES:
            source = inspect.getsource(importlib.import_module(PACKAGE + "." + name))
            archive.writestr("/".join(parts) + "/%s.py" % name, source)
    return buf.getvalue()


def revert(backup_dir: str, snapshot_id: str, apparmor_d: str, lock_file: Optional[str] = None,
           lock_timeout: float = REVERT_LOCK_TIMEOUT, parser: Optional[str] = None,
           securityfs: str = host.SECURITYFS, features_file: Optional[str] = None) -> Dict[str, Any]:
    """Restore ``snapshot_id`` under the host-wide lock (what the timer does when it fires)."""
    with lock.host_lock("dead-man's switch: revert to snapshot %s" % snapshot_id, timeout=lock_timeout,
                        path=lock_file):
        return backup.restore(backup_dir, snapshot_id, apparmor_d, parser=parser, securityfs=securityfs,
                              features_file=features_file)


def _write_result(path: str, data: Dict[str, Any]) -> None:
    fileops.atomic_write(path, json.dumps(data, indent=1, sort_keys=True, default=str).encode(), mode=0o600)


def main(argv: Sequence[str]) -> int:
    """Entry point of a firing switch: record that it fired, revert, record the outcome (also on stdout, which
    the journal keeps). Exit 0 when the snapshot is back and verified, 1 otherwise (the unit shows failed)."""
    parser = argparse.ArgumentParser(prog="armada-apparmor-revert")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--backup-dir", required=True)
    parser.add_argument("--apparmor-d", required=True)
    parser.add_argument("--result", required=True)
    for name in REVERT_OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"))
    args = parser.parse_args(list(argv))
    started = time.time()
    record: Dict[str, Any] = {"snapshot": args.snapshot, "fired": started, "state": "reverting"}
    _write_result(args.result, record)
    try:
        res = revert(args.backup_dir, args.snapshot, args.apparmor_d, lock_file=args.lock_file, parser=args.parser,
                     securityfs=args.securityfs or host.SECURITYFS, features_file=args.features_file)
        record.update(state="reverted", ok=bool(res.get("verified")), restore=res)
    except (backup.BackupError, host.HostError, lock.LockBusy, lock.LockError, fileops.FileOpError,
            OSError) as exc:
        record.update(state="failed", ok=False, error=str(exc))
    record["finished"] = time.time()
    _write_result(args.result, record)
    print("armada.apparmor dead-man's switch fired: %s" % json.dumps(
        {k: record[k] for k in ("snapshot", "state", "ok", "error") if k in record}, sort_keys=True))
    return 0 if record["ok"] else 1
