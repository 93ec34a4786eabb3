# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host-wide lock, so two armada.apparmor runs on the same host never interleave.

Why: two plays (or two forks of one play) that read a cursor, write a profile, reload it or take a
backup at the same time race each other - one commits a cursor position the other has not used,
one reloads a profile the other is half-way through editing. Each such step takes this lock first;
a second run waits up to ``timeout`` seconds and then fails with a message that names the run
holding it (``another armada.apparmor run (pid N, started T, doing W) holds the lock ...``).

How: ``fcntl.flock`` on ``/run/armada-apparmor.lock`` (tmpfs, so it vanishes with the host's
boot). flock locks belong to the open file, so the kernel drops the lock when the holder exits or is
killed - a crashed run never leaves a stale lock behind. The file content (pid, start time, what it
does) is only information for the message; it is never trusted for the decision. The file is never
deleted: deleting a lock file lets two runs hold locks on two different inodes of the same name.

The lock is re-entrant inside one process (a module that takes it and then calls engine code that
takes it again does not deadlock itself).

Standard library only: this file runs on managed hosts.
"""

import errno
import fcntl
import json
import os
import time
from typing import Any, Dict, Optional

#: Default lock file: /run is a tmpfs on every systemd host, so the file does not outlive a boot.
DEFAULT_LOCK_PATH = "/run/armada-apparmor.lock"
#: Used when /run does not exist (containers without it, very old hosts).
FALLBACK_LOCK_PATH = "/var/lib/armada-apparmor/armada-apparmor.lock"
#: How often a waiting run retries.
POLL = 0.1

# path -> [fd, depth] of locks this process holds (re-entrancy)
_HELD: Dict[str, list] = {}


class LockBusy(Exception):
    """Another run holds the lock; ``holder`` is what it wrote about itself (may be empty)."""

    def __init__(self, message: str, path: str, holder: Dict[str, Any]) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


class LockError(Exception):
    """The lock file cannot be opened at all (permissions, read-only filesystem)."""


def default_path() -> str:
    """The host-wide lock file: DEFAULT_LOCK_PATH, or FALLBACK_LOCK_PATH when /run is missing."""
    if os.path.isdir(os.path.dirname(DEFAULT_LOCK_PATH)):
        return DEFAULT_LOCK_PATH
    return FALLBACK_LOCK_PATH


def read_holder(path: str) -> Dict[str, Any]:
    """What the current holder wrote into the lock file (``{}`` when unreadable or half-written)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(4096)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, UnicodeError):
        return {}
    return data if isinstance(data, dict) else {}


def busy_message(path: str, holder: Dict[str, Any], waited: float) -> str:
    """The message a second run shows; says who holds the lock and what to do."""
    who = []
    if holder.get("pid"):
        who.append("pid %s" % holder["pid"])
    if holder.get("started"):
        who.append("started %s" % holder["started"])
    if holder.get("what"):
        who.append("doing %s" % holder["what"])
    return ("another armada.apparmor run (%s) holds the lock %s%s; wait for it to finish and run again "
            "(two runs at once on one host would race on cursors, profiles and backups)"
            % (", ".join(who) or "holder unknown", path, " (waited %.1f s)" % waited if waited else ""))


class HostLock:
    """Context manager for the host-wide lock.

    ``with HostLock(what="denials: commit cursor fleet", timeout=10): ...`` - raises LockBusy when
    another process still holds it after ``timeout`` seconds (0: do not wait), LockError when the
    file cannot be opened. ``path`` defaults to :func:`default_path`.
    """

    def __init__(self, path: Optional[str] = None, what: str = "", timeout: float = 0.0) -> None:
        self.path = path or default_path()
        self.what = what
        self.timeout = max(0.0, float(timeout))
        self.acquired = False

    def acquire(self) -> "HostLock":
        """Take the lock (or a nested hold of it); see the class docstring for errors."""
        held = _HELD.get(self.path)
        if held is not None:
            held[1] += 1
            self.acquired = True
            return self
        directory = os.path.dirname(self.path) or "."
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise LockError("cannot open the armada.apparmor lock %s: %s" % (self.path, exc.strerror)) from None
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LockError("cannot lock %s: %s" % (self.path, exc.strerror)) from None
            waited = time.monotonic() - start
            if waited >= self.timeout:
                holder: Dict[str, Any] = {}
                for _ in range(3):  # the holder may be between truncate and write
                    holder = read_holder(self.path)
                    if holder:
                        break
                    time.sleep(0.01)
                os.close(fd)
                raise LockBusy(busy_message(self.path, holder, round(waited, 1) if self.timeout else 0.0),
                               self.path, holder)
            time.sleep(min(POLL, max(0.0, self.timeout - waited)) or POLL)
        info = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "what": self.what}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8") + b"\n", 0)
        except OSError:
            pass  # the information is for messages only; the flock is what counts
        _HELD[self.path] = [fd, 1]
        self.acquired = True
        return self

    def release(self) -> None:
        """Give up this hold; the flock goes when the outermost hold is released."""
        if not self.acquired:
            return
        self.acquired = False
        held = _HELD.get(self.path)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self.path]
        fd = held[0]
        try:
            os.ftruncate(fd, 0)  # no stale holder information once released
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "HostLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def host_lock(what: str = "", timeout: float = 0.0, path: Optional[str] = None) -> HostLock:
    """Shorthand: ``with host_lock("profile: write /etc/apparmor.d/usr.bin.x", timeout=30): ...``."""
    return HostLock(path=path, what=what, timeout=timeout)
