"""Restore never writes through a symlink and never sets unsafe modes (issue 12, item 6).

Real files, directories and symlinks in tmp dirs: a genuine snapshot restored after ``local/`` became a
symlink on the host, crafted snapshots (a symlinked directory then a file under it, setuid/setgid and
world-writable modes, paths that are not normalized), and a fuzz over random trees and manifests. Each
refusal must name the cause and leave the tree and the outside directory byte-identical.
"""
import hashlib
import io
import json
import os
import tarfile

import pytest
from fuzz_support import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import backup

SID = "20261206T100000000000Z"


def state(root):
    """Every path below ``root`` (links not followed): type, content hash or link target, mode."""
    out = {}
    for base, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            full = os.path.join(base, name)
            st_ = os.lstat(full)
            rel = os.path.relpath(full, str(root))
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", oct(st_.st_mode))
            else:
                with open(full, "rb") as handle:
                    out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest(), oct(st_.st_mode))
    return out


def restore(bk, tree, sid="latest", check_mode=False):
    return backup.restore(str(bk), sid, str(tree), validate=False, reload=False, kernel={"enabled": False},
                          check_mode=check_mode)


def write_snapshot(bk, files, data, scope="all", sid=SID):
    """A snapshot written by hand (a crafted or tampered one): manifest ``files``, member contents ``data``."""
    os.makedirs(str(bk), exist_ok=True)
    for rel, content in data.items():
        files[rel].setdefault("sha256", hashlib.sha256(content).hexdigest())
    manifest = {"version": 1, "id": sid, "host": "h", "time": "", "epoch": 0, "reason": "", "scope": scope,
                "apparmor_d": "/etc/apparmor.d", "profiles": [], "files": files, "loaded": {}}
    with tarfile.open(os.path.join(str(bk), sid + ".tar.gz"), "w:gz") as tar:
        for name, content in [("manifest.json", json.dumps(manifest).encode())] + \
                [("files/" + rel, content) for rel, content in data.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with open(os.path.join(str(bk), sid + ".json"), "w") as handle:
        json.dump(manifest, handle)


@pytest.fixture
def world(tmp_path):
    """/etc/apparmor.d-like tree, a backup dir, and an outside directory a restore must never touch."""
    tree = tmp_path / "apparmor.d"
    (tree / "local").mkdir(parents=True)
    (tree / "disable").mkdir()
    (tree / "prof").write_text("profile prof {\n  include if exists <local/prof>\n}\n")
    (tree / "local" / "prof").write_text("# site rules\n")
    os.symlink("../prof", str(tree / "disable" / "prof"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    return tree, tmp_path / "bk", outside


@pytest.mark.parametrize("scope", ["all", "listed"])
def test_genuine_snapshot_after_local_became_a_symlink_is_refused(world, scope):
    tree, bk, outside = world
    snap = backup.snapshot(str(tree), str(bk), profiles=None if scope == "all" else ["prof"])
    # later, on the host: local/ moved elsewhere and linked back; its file edited there
    os.rename(str(tree / "local"), str(outside / "local"))
    os.symlink(str(outside / "local"), str(tree / "local"))
    (outside / "local" / "prof").write_text("# edited since the snapshot\n")
    tree_before, outside_before = state(tree), state(outside)
    for check_mode in (True, False):
        with pytest.raises(backup.BackupError) as err:
            restore(bk, tree, snap["id"], check_mode=check_mode)
        msg = str(err.value)
        assert "snapshot %s cannot be restored safely" % snap["id"] in msg
        assert "local/prof: %s is a symlink on the host (to %r), the restore would write through it" % (
            tree / "local", str(outside / "local")) in msg
        assert "nothing was restored" in msg and "replace each symlink with the real directory" in msg
    assert state(tree) == tree_before and state(outside) == outside_before


def test_a_symlink_where_the_snapshot_has_a_directory_is_refused(world):
    tree, bk, outside = world
    (tree / "local" / "prof").unlink()
    snap = backup.snapshot(str(tree), str(bk))  # local/ is an empty directory in the snapshot
    (tree / "local").rmdir()
    os.symlink(str(outside), str(tree / "local"))
    before = state(tree), state(outside)
    with pytest.raises(backup.BackupError, match=r"local: .*/local is a symlink on the host \(to '.*outside'\) - "):
        restore(bk, tree, snap["id"])
    assert (state(tree), state(outside)) == before


def test_crafted_snapshot_with_a_file_under_a_symlinked_directory_is_refused(world):
    tree, bk, outside = world
    write_snapshot(bk, {"prof": {"type": "file", "mode": "0644"},
                        "evil": {"type": "symlink", "target": str(outside)},
                        "evil/x": {"type": "file", "mode": "0644"}},
                   {"prof": b"profile prof {\n}\n", "evil/x": b"planted\n"})
    # the host already has the link (a first restore of the same snapshot made it): the write would land outside
    os.symlink(str(outside), str(tree / "evil"))
    before = state(tree), state(outside)
    with pytest.raises(backup.BackupError) as err:
        restore(bk, tree, SID)
    assert "evil/x: under evil, a symlink in the snapshot (to %r)" % str(outside) in str(err.value)
    assert "the snapshot itself is unsafe" in str(err.value)
    assert (state(tree), state(outside)) == before
    assert not (outside / "x").exists()


@pytest.mark.parametrize("rel,kind,mode,reason", [
    ("prof", "file", "4755", "mode 4755 would make it setuid, setgid or writable by others"),
    ("prof", "file", "2644", "mode 2644 would make it setuid, setgid or writable by others"),
    ("prof", "file", "0666", "mode 0666 would make it setuid, setgid or writable by others"),
    ("local", "dir", "0777", "mode 0777 would make it setuid, setgid or writable by others"),
    ("local", "dir", "2775", "mode 2775 would make it setuid, setgid or writable by others"),
    ("prof", "file", "99", "mode '99' is not an octal permission"),
    ("prof", "file", "17777", "mode '17777' is not an octal permission"),
    ("prof", "file", 420, "mode 420 is not an octal permission"),
])
def test_unsafe_modes_are_refused(world, rel, kind, mode, reason):
    tree, bk, outside = world
    files = {"prof": {"type": "file", "mode": "0644"}, "local": {"type": "dir", "mode": "0755"},
             "local/prof": {"type": "file", "mode": "0644"}}
    files[rel] = {"type": kind, "mode": mode}
    write_snapshot(bk, files, {"prof": b"profile prof {\n}\n", "local/prof": b"# other\n"})
    before = state(tree)
    with pytest.raises(backup.BackupError, match="%s: %s" % (rel, reason.replace("(", r"\(").replace(")", r"\)"))):
        restore(bk, tree, SID)
    assert state(tree) == before


@pytest.mark.parametrize("rel", ["local/./prof", "local//prof", "local/../prof", "../outside/x", "/etc/passwd",
                                 "local/prof/"])
def test_paths_that_are_not_normalized_or_leave_the_tree_are_refused(world, rel):
    tree, bk, outside = world
    write_snapshot(bk, {rel: {"type": "file", "mode": "0644"}}, {rel: b"x\n"})
    before = state(tree), state(outside)
    with pytest.raises(backup.BackupError, match="cannot be restored safely: .*(unsafe path|not a normalized path)"):
        restore(bk, tree, SID)
    assert (state(tree), state(outside)) == before


def test_a_genuine_snapshot_with_symlinks_still_restores(world):
    """Control: links as entries (disable/prof) and a sticky-free 0755/0644 tree restore byte-identical."""
    tree, bk, outside = world
    snap = backup.snapshot(str(tree), str(bk))
    before = state(tree)
    os.unlink(str(tree / "disable" / "prof"))
    (tree / "local" / "prof").write_text("# edited\n")
    os.chmod(str(tree / "prof"), 0o600)
    result = restore(bk, tree, snap["id"])
    assert result["verified"] and state(tree) == before and state(outside) == {"keep": state(outside)["keep"]}


# ------------------------------------------------------------------ fuzz

NAMES = ["a", "local", "disable"]
RELS = sorted({"/".join(p) for n in range(1, 4) for p in __import__("itertools").product(NAMES, repeat=n)})
ENTRY = st.one_of(
    st.fixed_dictionaries({"type": st.just("file"), "mode": st.sampled_from(["0644", "0600", "4755", "0666"]),
                           "content": st.binary(max_size=8)}),
    st.fixed_dictionaries({"type": st.just("dir"), "mode": st.sampled_from(["0755", "0777"])}),
    st.fixed_dictionaries({"type": st.just("symlink"), "target": st.sampled_from(["OUTSIDE", "../a", "a"])}),
    st.just({"type": "absent"}),
)
HOST = st.sampled_from(["file", "dir", "link-outside", "link-inside", "none"])


@settings(max_examples=max(EXAMPLES // 4, 50), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(manifest=st.dictionaries(st.sampled_from(RELS), ENTRY, min_size=1, max_size=6),
       host=st.dictionaries(st.sampled_from(RELS), HOST, max_size=5), scope=st.sampled_from(["all", "listed"]))
def test_fuzz_restore_never_writes_outside_the_tree(tmp_path_factory, manifest, host, scope):
    """Any manifest over any host tree with symlinks in and out: the outside directory is never touched,
    and a refused restore changes nothing in the tree either."""
    base = tmp_path_factory.mktemp("fz")
    tree, bk, outside = base / "apparmor.d", base / "bk", base / "outside"
    tree.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("keep")
    for rel in sorted(host, key=lambda r: r.count("/")):
        full = tree / rel
        if not full.parent.is_dir() or full.parent.is_symlink() or os.path.lexists(str(full)):
            continue
        kind = host[rel]
        if kind == "file":
            full.write_text("host\n")
        elif kind == "dir":
            full.mkdir()
        elif kind == "link-outside":
            os.symlink(str(outside), str(full))
        elif kind == "link-inside":
            os.symlink(".", str(full))
    files, data = {}, {}
    for rel, entry in manifest.items():
        entry = dict(entry)
        if entry["type"] == "file":
            data[rel] = entry.pop("content")
        if entry.get("target") == "OUTSIDE":
            entry["target"] = str(outside)
        files[rel] = entry
    write_snapshot(bk, files, data, scope=scope)
    tree_before, outside_before = state(tree), state(outside)
    try:
        restore(bk, tree, SID)
    except backup.BackupError as exc:
        msg = str(exc)
        assert ("cannot be restored safely" in msg and "nothing was restored" in msg) or "restore of" in msg, msg
        if "cannot be restored safely" in msg:
            assert state(tree) == tree_before
    assert state(outside) == outside_before
