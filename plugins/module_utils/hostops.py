"""Validate-then-write of AppArmor policy files, shared by the ``profile`` and ``rules`` modules.

Why this exists: a change must never leave a host with a profile that does not compile, nor with a
half-written file.  New contents are first staged in a private temporary directory *outside* the
AppArmor directory and compiled with ``apparmor_parser -QK -I <stage> -I <apparmor_d>`` (the stage
shadows the files being changed, everything else -- abstractions, tunables, local/ -- comes from the
host), so a change to an include is checked through the profiles that use it.  Only when every target
compiles are the files replaced, each with a same-directory temp file and an atomic rename.

Pure standard library, Python 3.8+.
"""
import os
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

from ansible_collections.armada.apparmor.plugins.module_utils import fileops, host


class ValidationError(host.HostError):
    """The new policy does not compile; nothing was written.  ``str()`` is the parser's message."""


def validate_staged(changes: Dict[str, Optional[bytes]], targets: Sequence[str], parser: str,
                    apparmor_d: str = host.APPARMOR_D, features_file: Optional[str] = None) -> None:
    """Compile ``targets`` (paths relative to ``apparmor_d``) as they would be after ``changes``.

    ``changes`` maps relative paths to new bytes.  Raises :class:`ValidationError` with the parser's
    message (stage paths rewritten to the real ones) when anything fails to compile.
    """
    if not targets:
        return
    stage = tempfile.mkdtemp(prefix="armada-validate-")
    try:
        for rel, data in changes.items():
            if data is None:
                continue
            full = os.path.join(stage, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as handle:
                handle.write(data)
        paths = [os.path.join(stage, rel) if changes.get(rel) is not None else os.path.join(apparmor_d, rel)
                 for rel in targets]
        args = ["-QK", "--base", apparmor_d, "-I", stage, "-I", apparmor_d]
        if features_file:
            args += ["-M", features_file]
        rc, _out, err = host.run_parser(args + paths, parser)
        if rc != 0:
            msg = (err or "apparmor_parser exited with %d" % rc).replace(stage.rstrip("/") + "/",
                                                                          apparmor_d.rstrip("/") + "/")
            raise ValidationError(msg)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_changes(changes: Dict[str, Optional[bytes]], apparmor_d: str = host.APPARMOR_D,
                  old: Optional[Dict[str, Optional[bytes]]] = None) -> List[str]:
    """Write (atomically) or remove each changed file; return the relative paths touched.

    Each file is replaced atomically, but a change can span two files (a profile and its ``local/``
    include).  When one of them cannot be written (full disk, read-only file system) and ``old`` gives the
    previous contents (``None`` = did not exist), the files already written are put back, so the change is
    all or nothing; the :class:`fileops.FileOpError` raised says so, or names the files it could not put back.
    """
    done: List[str] = []
    for rel in sorted(changes):
        full = os.path.join(apparmor_d, rel)
        data = changes[rel]
        try:
            if data is None:
                if fileops.remove(full):
                    done.append(rel)
            else:
                fileops.atomic_write(full, data)
                done.append(rel)
        except fileops.FileOpError as exc:
            if old is None or not done:
                raise
            stuck = put_back(reversed(done), old, apparmor_d)
            if stuck:
                raise fileops.FileOpError("%s; and the files already written could not be put back: %s"
                                          % (exc, "; ".join(stuck))) from exc
            raise fileops.FileOpError("%s; %s was put back, nothing was changed"
                                      % (exc, ", ".join(os.path.join(apparmor_d, r) for r in done))) from exc
    return done


def put_back(rels: Iterable[str], old: Dict[str, Optional[bytes]], apparmor_d: str = host.APPARMOR_D) -> List[str]:
    """Restore each file (relative to ``apparmor_d``) to its previous contents, ``old[rel]`` (None: it did
    not exist, so remove it) - the undo of a change the parser or the disk refused half-way.

    Goes on past a file it cannot restore and returns those errors (empty: everything is as it was)."""
    stuck: List[str] = []
    for rel in rels:
        try:
            if old.get(rel) is None:
                fileops.remove(os.path.join(apparmor_d, rel))
            else:
                fileops.atomic_write(os.path.join(apparmor_d, rel), old[rel])  # type: ignore[arg-type]
        except fileops.FileOpError as exc:
            stuck.append(str(exc))
    return stuck


def put_back_note(stuck: Sequence[str]) -> str:
    """What the user is told after :func:`put_back`."""
    if not stuck:
        return "the previous files were put back"
    return "the previous files could NOT all be put back (restore them from the snapshot): %s" % "; ".join(stuck)


def profile_file_for(name: str, apparmor_d: str, parser: Optional[str]) -> Optional[str]:
    """The file (relative) that defines profile ``name``: the Debian-style file name first
    (``/usr/bin/foo`` -> ``usr.bin.foo``), then every profile file, asked with ``apparmor_parser -N``."""
    conventional = conventional_file_name(name)
    candidates = [conventional] + [f for f in host.profile_files(apparmor_d) if f != conventional]
    candidates = [rel for rel in candidates if os.path.isfile(os.path.join(apparmor_d, rel))]
    parser_path = host.find_parser(parser)
    # one parser run for the files after the conventional one (Debian 13 ships ~100 profile files)
    disabled = set(host.link_names(apparmor_d, "disable"))
    known = host.profile_names_many([os.path.join(apparmor_d, rel) for rel in candidates[1:] if rel not in disabled],
                                    parser_path, apparmor_d) if candidates[1:] else {}
    for rel in candidates:
        full = os.path.join(apparmor_d, rel)
        names = known.get(full)
        if names is None:
            try:
                names = host.profile_names(full, parser_path, apparmor_d)
            except host.HostError:
                continue
        if name in names:
            return rel
    return None


def conventional_file_name(name: str) -> str:
    """Debian/Ubuntu naming: the profile's path without the leading '/', slashes as dots."""
    base = name.lstrip("/").replace("/", ".")
    return base or "profile"
