"""Snapshots of AppArmor policy: archive, manifest, retention and byte-identical restore.

Why this exists: every module that changes a host takes a snapshot first, so any change can be undone
with ``armada.apparmor.backup state=restored``.  A snapshot is ``<backup_dir>/<id>.tar.gz`` (the files,
plus ``manifest.json``) and a copy of the manifest as ``<backup_dir>/<id>.json`` for fast listing.  The
archive lives outside /etc/apparmor.d: anything inside it could be loaded as a profile.

The manifest records, per path relative to the AppArmor directory: type (file, symlink, dir or
*absent*, for listed paths that did not exist yet -- restore removes them), sha256, permission bits,
symlink target; plus the loaded profile modes, host, time and reason.  Restores never trust the archive
blindly: members are read by the names in the manifest (no ``extractall``), paths are checked to stay
inside the AppArmor directory and every file's sha256 is verified before anything is written.

Pure standard library, Python 3.8+.
"""
import datetime
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.armada.apparmor.plugins.module_utils import fileops, host

BACKUP_DIR = "/var/backups/armada-apparmor"
MANIFEST_VERSION = 1
DEFAULT_KEEP = 20
DEFAULT_MAX_AGE_DAYS = 180


class BackupError(Exception):
    """A snapshot or restore could not be done; nothing was changed."""


# ---------------------------------------------------------------- helpers

def _safe_rel(rel: str) -> str:
    """Reject paths that would leave the AppArmor directory."""
    norm = os.path.normpath(rel)
    if not rel or os.path.isabs(rel) or norm.startswith("..") or norm == "." or "\x00" in rel:
        raise BackupError("unsafe path in snapshot: %r" % rel)
    return norm


# Permission bits a restore never sets: setuid, setgid, writable by others.
UNSAFE_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH
ENTRY_TYPES = ("file", "dir", "symlink", "absent")


def _mode_problem(mode: Any) -> Optional[str]:
    """Why a manifest mode cannot be restored, or None."""
    if not isinstance(mode, str) or not mode or len(mode) > 4 or any(c not in "01234567" for c in mode):
        return "mode %r is not an octal permission" % (mode,)
    if int(mode, 8) & UNSAFE_MODE_BITS:
        return "mode %s would make it setuid, setgid or writable by others" % mode
    return None


def manifest_problems(manifest: Dict[str, Any]) -> List[str]:
    """What makes a snapshot's manifest unsafe to restore (empty = safe), checked before anything is read
    from the archive: paths leaving the AppArmor directory or not normalized, unknown entry types, entries
    under an entry that is a symlink (restoring the link and then the file would write through it), and
    modes that are setuid, setgid or writable by others."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        return ["the manifest has no 'files' mapping"]
    links = {rel for rel, desc in files.items() if isinstance(desc, dict) and desc.get("type") == "symlink"}
    problems = []
    for rel in sorted(files, key=str):
        desc = files[rel]
        try:
            norm = _safe_rel(rel) if isinstance(rel, str) else None
        except BackupError as exc:
            problems.append(str(exc))
            continue
        if norm != rel:
            problems.append("%r: not a normalized path" % (rel,))
            continue
        if not isinstance(desc, dict) or desc.get("type") not in ENTRY_TYPES:
            problems.append("%s: unknown entry %r" % (rel, desc))
            continue
        under = [p for p in _ancestors(rel) if p in links]
        if under:
            problems.append("%s: under %s, a symlink in the snapshot (to %r)"
                            % (rel, under[0], files[under[0]].get("target")))
        if desc["type"] in ("file", "dir") and "mode" in desc:
            bad = _mode_problem(desc["mode"])
            if bad:
                problems.append("%s: %s" % (rel, bad))
    return problems


def host_path_problems(apparmor_d: str, files: Dict[str, Any]) -> List[str]:
    """What makes restoring ``files`` into ``apparmor_d`` go through a symlink on the host (empty = safe):
    a directory above an entry that is a symlink (``local/`` made a link to elsewhere), or a symlink where
    the snapshot has a directory. ``apparmor_d`` is a real path (no symlink in it)."""
    problems = []
    for rel in sorted(files):
        for part in _ancestors(rel) + ([rel] if files[rel].get("type") == "dir" else []):
            full = os.path.join(apparmor_d, part)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                break
            except OSError as exc:
                problems.append("%s: cannot check %s: %s" % (rel, full, exc))
                break
            if stat.S_ISLNK(st.st_mode):
                problems.append("%s: %s is a symlink on the host (to %r)%s"
                                % (rel, full, os.readlink(full), "" if part == rel else
                                   ", the restore would write through it"))
                break
            if not stat.S_ISDIR(st.st_mode):
                break
    return problems


def _ancestors(rel: str) -> List[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    parts = rel.split(os.sep)
    return [os.sep.join(parts[:i]) for i in range(1, len(parts))]


def _refuse(snapshot_id: str, problems: List[str], advice: str) -> None:
    if problems:
        shown = "; ".join(problems[:10]) + ("; and %d more" % (len(problems) - 10) if len(problems) > 10 else "")
        raise BackupError("snapshot %s cannot be restored safely: %s - nothing was restored; %s"
                          % (snapshot_id, shown, advice))


def _rel_of(apparmor_d: str, path: str) -> str:
    """A profile given as a name relative to the AppArmor directory or as a path inside it."""
    full = path if os.path.isabs(path) else os.path.join(apparmor_d, path)
    rel = os.path.relpath(os.path.abspath(full), os.path.abspath(apparmor_d))
    return _safe_rel(rel)


def _walk(apparmor_d: str) -> List[str]:
    """Every path below the AppArmor directory (dirs, files, symlinks), relative, our temp files excluded."""
    out = []
    for root, dirs, files in os.walk(apparmor_d):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            if name.startswith(fileops.TEMP_PREFIX):
                continue
            out.append(os.path.relpath(os.path.join(root, name), apparmor_d))
        # do not descend into symlinked dirs (os.walk default followlinks=False already)
    return out


def _describe(apparmor_d: str, rel: str) -> Dict[str, Any]:
    path = os.path.join(apparmor_d, rel)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # not there, or a file where a parent directory should be
        return {"type": "absent"}
    perm = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return {"type": "symlink", "target": os.readlink(path)}
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir", "mode": "%04o" % perm}
    if stat.S_ISREG(st.st_mode):
        return {"type": "file", "mode": "%04o" % perm, "sha256": host.sha256_file(path), "size": st.st_size}
    return {"type": "other"}


def scope_paths(apparmor_d: str, profiles: Sequence[str]) -> List[str]:
    """The relative paths a listed-profile snapshot covers: the file and its disable/, force-complain/
    and local/ companions (recorded as absent when missing, so a restore removes them)."""
    rels: List[str] = []
    for item in profiles:
        rel = _rel_of(apparmor_d, item)
        base = os.path.basename(rel)
        for cand in (rel, os.path.join("disable", base), os.path.join("force-complain", base),
                     os.path.join("local", base)):
            if cand not in rels:
                rels.append(cand)
    return rels


# A snapshot id (new_id) and the names of its two files in backup_dir.
ID_PATTERN = r"[0-9]{8}T[0-9]{12}Z"
SNAPSHOT_FILE_PATTERN = ID_PATTERN + r"\.(?:tar\.gz|json)"


def new_id() -> str:
    """Sortable snapshot id (ID_PATTERN): UTC time to the microsecond."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + "%06dZ" % now.microsecond


# ---------------------------------------------------------------- snapshot

def snapshot(apparmor_d: str = host.APPARMOR_D, backup_dir: str = BACKUP_DIR, reason: str = "",
             profiles: Optional[Sequence[str]] = None, loaded: Optional[Dict[str, str]] = None,
             keep: int = DEFAULT_KEEP, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> Dict[str, Any]:
    """Archive the AppArmor directory (or only ``profiles``) and the loaded modes; apply retention.

    Returns the manifest plus ``pruned`` (ids removed by retention).  The archive is written under a
    temporary name and renamed, so a full disk never leaves a partial snapshot behind.
    """
    apparmor_d = os.path.abspath(apparmor_d)
    backup_dir = os.path.abspath(backup_dir)
    if backup_dir == apparmor_d or backup_dir.startswith(apparmor_d + os.sep):
        raise BackupError("backup_dir %s must be outside %s (the parser would load it)" % (backup_dir, apparmor_d))
    if not os.path.isdir(apparmor_d):
        raise BackupError("%s is not a directory" % apparmor_d)
    rels = _walk(apparmor_d) if profiles is None else scope_paths(apparmor_d, profiles)
    entries: Dict[str, Any] = {}
    for rel in rels:
        desc = _describe(apparmor_d, rel)
        if desc["type"] == "other":
            continue
        entries[rel] = desc
    sid = new_id()
    manifest = {
        "version": MANIFEST_VERSION, "id": sid, "host": socket.gethostname(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(), "epoch": time.time(),
        "reason": reason, "apparmor_d": apparmor_d, "scope": "all" if profiles is None else "listed",
        "profiles": list(profiles or []), "files": entries, "loaded": dict(loaded or {}),
    }
    try:
        fileops.ensure_dir(backup_dir, 0o700)
        tmp_tar = fileops.make_temp(backup_dir, sid + ".tar.gz")
        try:
            with tarfile.open(tmp_tar, "w:gz") as tar:
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
                _add_bytes(tar, "manifest.json", data)
                for rel, desc in entries.items():
                    if desc["type"] == "file":
                        with open(os.path.join(apparmor_d, rel), "rb") as handle:
                            content = handle.read()
                        if hashlib.sha256(content).hexdigest() != desc["sha256"]:
                            raise BackupError("%s changed while it was archived; retry" % rel)
                        _add_bytes(tar, "files/" + rel, content)
            with open(tmp_tar, "rb") as handle:
                os.fsync(handle.fileno())
            fileops.commit_temp(tmp_tar, os.path.join(backup_dir, sid + ".tar.gz"), like=tmp_tar)
        except BaseException:
            fileops.discard_temp(tmp_tar)
            raise
        fileops.atomic_write(os.path.join(backup_dir, sid + ".json"),
                             json.dumps(manifest, indent=1, sort_keys=True).encode(), mode=0o600)
    except OSError as exc:
        raise BackupError("cannot write snapshot in %s: %s" % (backup_dir, exc)) from exc
    except fileops.FileOpError as exc:
        raise BackupError("cannot write snapshot: %s" % exc) from exc
    os.chmod(os.path.join(backup_dir, sid + ".tar.gz"), 0o600)
    result = dict(manifest)
    result["archive"] = os.path.join(backup_dir, sid + ".tar.gz")
    result["pruned"] = prune(backup_dir, keep, max_age_days, protect=(sid,))
    return result


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------- list / retention

def list_snapshots(backup_dir: str = BACKUP_DIR) -> List[Dict[str, Any]]:
    """Summaries of the snapshots in ``backup_dir``, oldest first (ids sort by time)."""
    out = []
    try:
        names = sorted(os.listdir(backup_dir))
    except FileNotFoundError:
        return []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        sid = name[:-5]
        if not os.path.exists(os.path.join(backup_dir, sid + ".tar.gz")):
            continue
        try:
            with open(os.path.join(backup_dir, name)) as handle:
                man = json.load(handle)
        except (OSError, ValueError):
            continue
        out.append({"id": sid, "time": man.get("time"), "epoch": man.get("epoch"), "host": man.get("host"),
                    "reason": man.get("reason", ""), "scope": man.get("scope"),
                    "profiles": man.get("profiles", []), "files": len(man.get("files", {})),
                    "archive": os.path.join(backup_dir, sid + ".tar.gz")})
    return out


def prune(backup_dir: str, keep: int, max_age_days: int, protect: Sequence[str] = (),
          now: Optional[float] = None) -> List[str]:
    """Remove snapshots beyond the newest ``keep`` or older than ``max_age_days`` (0 = no limit).

    Ids in ``protect`` (the snapshot just taken) are never removed.
    """
    snaps = list_snapshots(backup_dir)
    now = time.time() if now is None else now
    doomed = []
    if keep and keep > 0 and len(snaps) > keep:
        doomed.extend(s["id"] for s in snaps[:len(snaps) - keep])
    if max_age_days and max_age_days > 0:
        limit = now - max_age_days * 86400
        doomed.extend(s["id"] for s in snaps if (s.get("epoch") or now) < limit)
    removed = []
    for sid in sorted(set(doomed)):
        if sid in protect:
            continue
        for suffix in (".tar.gz", ".json"):
            fileops.remove(os.path.join(backup_dir, sid + suffix))
        removed.append(sid)
    return removed


def resolve_id(backup_dir: str, snapshot_id: str = "latest") -> str:
    """'latest' -> the newest id; otherwise check the id exists."""
    snaps = list_snapshots(backup_dir)
    if not snaps:
        raise BackupError("no snapshots in %s" % backup_dir)
    if snapshot_id in ("", "latest", None):
        return snaps[-1]["id"]
    if any(s["id"] == snapshot_id for s in snaps):
        return snapshot_id
    raise BackupError("snapshot %s not found in %s" % (snapshot_id, backup_dir))


def read_snapshot(backup_dir: str, snapshot_id: str) -> Dict[str, Any]:
    """The manifest and the verified file contents of a snapshot: {'manifest':..., 'data': {rel: bytes}}."""
    archive = os.path.join(backup_dir, snapshot_id + ".tar.gz")
    data: Dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            man_member = tar.extractfile("manifest.json")
            if man_member is None:
                raise BackupError("%s has no manifest" % archive)
            manifest = json.loads(man_member.read().decode())
            if not isinstance(manifest, dict):
                raise BackupError("%s: the manifest is not a mapping" % archive)
            _refuse(snapshot_id, manifest_problems(manifest),
                    "the snapshot itself is unsafe (tampered with, or taken of a tree with such modes): restore "
                    "these files by hand or from another snapshot")
            for rel, desc in manifest["files"].items():
                if desc.get("type") != "file":
                    continue
                member = tar.extractfile("files/" + rel)
                if member is None:
                    raise BackupError("%s: %s missing from the archive" % (archive, rel))
                content = member.read()
                if hashlib.sha256(content).hexdigest() != desc.get("sha256"):
                    raise BackupError("%s: %s does not match its sha256 in the manifest" % (archive, rel))
                data[rel] = content
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise BackupError("cannot read snapshot %s: %s" % (archive, exc)) from exc
    return {"manifest": manifest, "data": data}


# ---------------------------------------------------------------- restore

def plan_restore(snap: Dict[str, Any], apparmor_d: str) -> Dict[str, Any]:
    """What a restore would change: paths to write, link, mkdir, chmod and remove (nothing done)."""
    manifest = snap["manifest"]
    files = manifest["files"]
    _refuse(manifest.get("id", "?"), host_path_problems(apparmor_d, files),
            "replace each symlink with the real directory (or restore these files by hand) and run again")
    plan: Dict[str, List[str]] = {"write": [], "link": [], "mkdir": [], "chmod": [], "remove": []}
    for rel in sorted(files):
        want = files[rel]
        have = _describe(apparmor_d, rel)
        if want["type"] == "absent":
            if have["type"] != "absent":
                plan["remove"].append(rel)
        elif want["type"] == "dir":
            if have["type"] != "dir":
                plan["mkdir"].append(rel)
        elif want["type"] == "symlink":
            if have != want:
                plan["link"].append(rel)
        elif want["type"] == "file":
            if have.get("type") != "file" or have.get("sha256") != want["sha256"]:
                plan["write"].append(rel)
            elif have.get("mode") != want.get("mode"):
                plan["chmod"].append(rel)
    if manifest.get("scope") == "all":
        current = _walk(apparmor_d)
        extra = [rel for rel in current if rel not in files]
        # remove deepest first; a dir that vanishes with its parent is listed once
        plan["remove"].extend(sorted(extra, key=lambda r: (-r.count(os.sep), r)))
    return plan


def _top_level_profile(rel: str) -> bool:
    return os.sep not in rel and not fileops.is_skippable_name(rel)


def restore(backup_dir: str = BACKUP_DIR, snapshot_id: str = "latest", apparmor_d: str = host.APPARMOR_D,
            parser: Optional[str] = None, kernel: Optional[Dict[str, Any]] = None,
            features_file: Optional[str] = None, check_mode: bool = False, validate: bool = True,
            reload: bool = True, securityfs: str = host.SECURITYFS) -> Dict[str, Any]:
    """Put the files of a snapshot back byte-identical, remove what was added since, reload.

    Order: read and verify the archive; validate the restored policy in a staging copy (nothing on
    the host is touched if that fails); unload profiles whose files go away or become disabled; write
    files atomically; reload the restored profiles; report the loaded modes against the snapshot's.
    """
    apparmor_d = os.path.realpath(apparmor_d)
    sid = resolve_id(backup_dir, snapshot_id)
    snap = read_snapshot(backup_dir, sid)
    manifest = snap["manifest"]
    plan = plan_restore(snap, apparmor_d)
    changed = any(plan[k] for k in plan)
    result: Dict[str, Any] = {"id": sid, "changed": changed, "plan": plan, "loads": [], "unloads": []}
    if not changed:
        # every file of the snapshot already has its sha256 (plan_restore compared them): verified as it is
        result.update(verified=True, mismatched=[])
    if not changed or check_mode:
        return result
    files = manifest["files"]
    parser_path = host.find_parser(parser) if (validate or reload) else ""
    kernel = kernel if kernel is not None else host.kernel_state(securityfs)
    disabled_after = {os.path.basename(r) for r, d in files.items()
                      if r.startswith("disable" + os.sep) and d["type"] != "absent"}
    if manifest.get("scope") == "listed":
        disabled_after |= {n for n in host.link_names(apparmor_d, "disable")
                           if os.path.join("disable", n) not in files}
    restored_profiles = sorted(r for r, d in files.items() if d["type"] == "file" and _top_level_profile(r))
    if validate:
        _validate_staged(snap, apparmor_d, parser_path, features_file, restored_profiles, disabled_after)
    # unload: top-level profile files that go away, or that are disabled after the restore
    for rel in plan["remove"]:
        if _top_level_profile(rel) and os.path.isfile(os.path.join(apparmor_d, rel)):
            result["unloads"].append(_try_unload(os.path.join(apparmor_d, rel), parser_path, kernel, apparmor_d))
    for name in sorted(disabled_after):
        path = os.path.join(apparmor_d, name)
        if os.path.isfile(path) and os.path.join("disable", name) in plan["link"] + plan["write"]:
            result["unloads"].append(_try_unload(path, parser_path, kernel, apparmor_d))
    try:
        for rel in plan["mkdir"]:
            full = os.path.join(apparmor_d, rel)
            if os.path.lexists(full) and not os.path.isdir(full):
                fileops.remove(full)
            fileops.ensure_dir(full, int(files[rel].get("mode", "0755"), 8))
        for rel in plan["write"]:
            full = os.path.join(apparmor_d, rel)
            if os.path.islink(full) or os.path.isdir(full):
                _remove_any(full)
            fileops.atomic_write(full, snap["data"][rel], mode=int(files[rel].get("mode", "0644"), 8))
        for rel in plan["chmod"]:
            os.chmod(os.path.join(apparmor_d, rel), int(files[rel]["mode"], 8))
        for rel in plan["link"]:
            full = os.path.join(apparmor_d, rel)
            if os.path.isdir(full) and not os.path.islink(full):
                _remove_any(full)
            fileops.atomic_symlink(files[rel]["target"], full)
        for rel in plan["remove"]:
            _remove_any(os.path.join(apparmor_d, rel))
    except (OSError, fileops.FileOpError) as exc:
        raise BackupError("restore of %s stopped: %s (files already restored stay restored; run the "
                          "restore again once the cause is fixed)" % (sid, exc)) from exc
    # verify byte-identical
    mismatched = [rel for rel, d in files.items() if d["type"] == "file"
                  and _describe(apparmor_d, rel).get("sha256") != d["sha256"]]
    result["verified"] = not mismatched
    result["mismatched"] = mismatched
    if reload:
        touched = plan["write"] + plan["link"] + plan["remove"] + plan["mkdir"]
        if any(not _top_level_profile(r) and not r.startswith(("disable" + os.sep, "force-complain" + os.sep))
               for r in touched):
            # an include (abstraction, tunable, local/) changed: every profile may depend on it
            names = host.profile_files(apparmor_d)
        else:
            names = [r for r in touched if _top_level_profile(r)]
            names += [os.path.basename(r) for r in touched if r.startswith(("disable" + os.sep,
                                                                           "force-complain" + os.sep))]
        to_load = [os.path.join(apparmor_d, r) for r in sorted(set(names))
                   if r not in disabled_after and os.path.isfile(os.path.join(apparmor_d, r))]
        for path in to_load:
            result["loads"].append(host.load(path, parser_path, kernel, apparmor_d))
    if kernel.get("enabled"):
        now = host.loaded_profiles(securityfs)
        before = manifest.get("loaded", {})
        result["mode_mismatch"] = [{"profile": p, "snapshot": m, "now": now.get(p, "not loaded")}
                                   for p, m in sorted(before.items()) if now.get(p) != m and "//" not in p]
    return result


def _try_unload(path: str, parser: str, kernel: Dict[str, Any], apparmor_d: str) -> Dict[str, Any]:
    try:
        return host.unload(path, parser, kernel, apparmor_d)
    except host.HostError as exc:
        return {"action": "unload", "path": path, "skipped": True, "reason": str(exc)}


def _remove_any(full: str) -> None:
    if os.path.isdir(full) and not os.path.islink(full):
        shutil.rmtree(full)
    else:
        fileops.remove(full)


def _validate_staged(snap: Dict[str, Any], apparmor_d: str, parser: str, features_file: Optional[str],
                     profiles: List[str], disabled: set) -> None:
    """Compile the restored profiles in a staging copy of the tree as it will be after the restore."""
    manifest = snap["manifest"]
    stage = tempfile.mkdtemp(prefix="armada-restore-")
    try:
        root = os.path.join(stage, "apparmor.d")
        if manifest.get("scope") == "all":
            os.mkdir(root)
        else:
            shutil.copytree(apparmor_d, root, symlinks=True)
        for rel, desc in sorted(manifest["files"].items()):
            full = os.path.join(root, rel)
            if desc["type"] == "dir":
                os.makedirs(full, exist_ok=True)
            elif desc["type"] == "file":
                os.makedirs(os.path.dirname(full), exist_ok=True)
                if os.path.lexists(full):
                    _remove_any(full)
                with open(full, "wb") as handle:
                    handle.write(snap["data"][rel])
            elif desc["type"] == "absent" and os.path.lexists(full):
                _remove_any(full)
        paths = [os.path.join(root, rel) for rel in profiles if rel not in disabled]
        msg = host.validate_many(paths, parser, root, features_file) if paths else None
        if msg:
            raise BackupError("snapshot %s does not compile; nothing was restored:\n%s"
                              % (manifest["id"], msg.replace(root + os.sep, "")))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
