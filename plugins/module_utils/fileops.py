"""Atomic file operations for AppArmor policy directories.

Why this exists: ``apparmor_parser`` and the apparmor init script load *every* file in
/etc/apparmor.d that is not on their skip list, so a stray ``x.bak`` or ``x.tmp`` left behind by a
crash becomes a loaded profile after the next boot.  Every temporary name made here therefore starts
with ``.`` and ends with ``~`` -- both are on the skip list shared by libapparmor
(``_aa_is_blacklisted``), the init script and the Python tools (``is_skippable_file``) -- and lives in
the destination's own directory so that the final ``os.replace`` is a same-filesystem atomic rename.

Pure standard library, Python 3.8+.
"""
import errno
import os
import stat
import tempfile
from typing import Optional

# The suffixes libapparmor, the init script and apparmor.common.is_skippable_file() ignore.
SKIPPABLE_SUFFIXES = (
    ".dpkg-new", ".dpkg-old", ".dpkg-dist", ".dpkg-bak", ".dpkg-remove",
    ".pacsave", ".pacnew", ".rpmnew", ".rpmsave", ".orig", ".rej", "~",
)
TEMP_PREFIX = ".armada-"
TEMP_SUFFIX = ".tmp~"


class FileOpError(Exception):
    """A file operation failed; the destination was left as it was."""


def is_skippable_name(name: str) -> bool:
    """True when AppArmor's loaders never treat ``name`` (a basename or path) as a profile file.

    Mirrors the documented skip rules: hidden files, ``README`` and package-manager/editor leftovers.
    """
    base = os.path.basename(name)
    if not base or base.startswith(".") or base == "README":
        return True
    return base.endswith(SKIPPABLE_SUFFIXES)


def _describe(exc: OSError, path: str) -> str:
    """A one-line reason naming the usual causes (read-only fs, full disk, permissions)."""
    code = errno.errorcode.get(exc.errno or 0, "")
    hint = {
        "EROFS": "read-only file system",
        "ENOSPC": "no space left on device",
        "EDQUOT": "disk quota exceeded",
        "EACCES": "permission denied (run with become?)",
        "EPERM": "operation not permitted (run with become?)",
    }.get(code, exc.strerror or str(exc))
    return "%s: %s" % (path, hint)


def _safe_hint(hint: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(hint))[:40]


def make_temp(directory: str, hint: str = "") -> str:
    """Create an empty temp file in ``directory`` whose name AppArmor never loads; return its path."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + _safe_hint(hint) + ".", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise FileOpError(_describe(exc, directory)) from exc
    os.close(fd)
    return tmp


def _fsync_dir(directory: str) -> None:
    """fsync a directory so a rename survives a crash; ignored where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temp(directory: str, data: bytes, hint: str = "", mode: int = 0o644) -> str:
    """Write ``data`` into a fresh skippable temp file in ``directory``, fsynced; return its path.

    The caller validates the temp file and then calls :func:`commit_temp` or :func:`discard_temp`.
    On any error the temp file is removed and :class:`FileOpError` raised.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + _safe_hint(hint) + ".", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise FileOpError(_describe(exc, directory)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except OSError as exc:
        discard_temp(tmp)
        raise FileOpError(_describe(exc, tmp)) from exc
    return tmp


def commit_temp(tmp: str, path: str, like: Optional[str] = None) -> None:
    """Rename the temp file over ``path`` atomically, copying owner/mode from ``like`` (or the old file)."""
    ref = like if like is not None else path
    try:
        try:
            st = os.lstat(ref)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if hasattr(os, "chown"):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except PermissionError:
                    pass
        os.replace(tmp, path)
    except OSError as exc:
        discard_temp(tmp)
        raise FileOpError(_describe(exc, path)) from exc
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def discard_temp(tmp: str) -> None:
    """Remove a temp file, ignoring a file that is already gone."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write(path: str, data: bytes, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new file, never a part.

    ``mode`` defaults to the existing file's mode, else 0644.  Missing parent directories are created.
    """
    directory = os.path.dirname(os.path.abspath(path))
    ensure_dir(directory)
    tmp = write_temp(directory, data, hint=os.path.basename(path), mode=0o644 if mode is None else mode)
    commit_temp(tmp, path, like=None if mode is None else tmp)


def ensure_dir(directory: str, mode: int = 0o755) -> None:
    """mkdir -p with a clean :class:`FileOpError` on failure."""
    try:
        os.makedirs(directory, mode=mode, exist_ok=True)
    except OSError as exc:
        raise FileOpError(_describe(exc, directory)) from exc


def atomic_symlink(target: str, path: str) -> None:
    """Create or replace the symlink ``path -> target`` atomically (used for disable/ links)."""
    directory = os.path.dirname(os.path.abspath(path))
    ensure_dir(directory)
    tmp = make_temp(directory, os.path.basename(path))
    try:
        os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        discard_temp(tmp)
        raise FileOpError(_describe(exc, path)) from exc
    _fsync_dir(directory)


def remove(path: str) -> bool:
    """Remove a file or symlink; return True when something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise FileOpError(_describe(exc, path)) from exc
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


def read_bytes(path: str) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileOpError(_describe(exc, path)) from exc
