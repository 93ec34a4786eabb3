"""backup engine: manifest, retention, tamper detection, path safety, restore plan."""
import hashlib
import io
import json
import os
import tarfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import backup


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "apparmor.d"
    (d / "local").mkdir(parents=True)
    (d / "disable").mkdir()
    (d / "prof").write_text("profile prof {\n}\n")
    (d / "local" / "prof").write_text("# local\n")
    os.symlink("../prof", str(d / "disable" / "prof"))
    return d


def test_manifest_records_files_links_modes(tree, tmp_path):
    snap = backup.snapshot(str(tree), str(tmp_path / "bk"), reason="why", loaded={"prof": "enforce"})
    files = snap["files"]
    assert files["prof"]["type"] == "file" and files["prof"]["mode"] == "0644"
    assert files["prof"]["sha256"] == hashlib.sha256(b"profile prof {\n}\n").hexdigest()
    assert files["disable/prof"] == {"type": "symlink", "target": "../prof"}
    assert files["local"]["type"] == "dir"
    assert snap["loaded"] == {"prof": "enforce"} and snap["reason"] == "why" and snap["host"]
    with open(str(tmp_path / "bk" / (snap["id"] + ".json"))) as handle:
        assert json.load(handle)["files"] == files
    assert oct(os.stat(snap["archive"]).st_mode & 0o777) == oct(0o600)


def test_listed_scope_records_absent_companions(tree, tmp_path):
    snap = backup.snapshot(str(tree), str(tmp_path / "bk"), profiles=["prof", str(tree / "newone")])
    assert snap["files"]["newone"] == {"type": "absent"}
    assert snap["files"]["force-complain/prof"] == {"type": "absent"}
    assert snap["files"]["local/prof"]["type"] == "file"
    with pytest.raises(backup.BackupError, match="unsafe"):
        backup.snapshot(str(tree), str(tmp_path / "bk"), profiles=["../etc/passwd"])


def test_tampered_archive_is_refused(tree, tmp_path):
    bk = tmp_path / "bk"
    snap = backup.snapshot(str(tree), str(bk))
    # rebuild the archive with one member altered but the manifest unchanged
    evil = str(bk / "evil.tar.gz")
    with tarfile.open(snap["archive"]) as src, tarfile.open(evil, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "files/prof":
                data = b"profile prof { /** rwx, }\n"
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    os.replace(evil, snap["archive"])
    (tree / "prof").write_text("changed\n")
    with pytest.raises(backup.BackupError, match="sha256"):
        backup.restore(str(bk), snap["id"], str(tree), validate=False, reload=False)
    assert (tree / "prof").read_text() == "changed\n"


def test_plan_restore_scope_all(tree, tmp_path):
    bk = tmp_path / "bk"
    snap = backup.snapshot(str(tree), str(bk))
    (tree / "added").write_text("x")
    (tree / "sub").mkdir()
    (tree / "sub" / "f").write_text("y")
    os.unlink(str(tree / "disable" / "prof"))
    plan = backup.plan_restore(backup.read_snapshot(str(bk), snap["id"]), str(tree))
    assert plan["link"] == ["disable/prof"]
    assert plan["remove"] == ["sub/f", "added", "sub"]  # deepest first
    assert plan["write"] == [] and plan["mkdir"] == []


def test_prune_keep_and_age(tree, tmp_path):
    bk = str(tmp_path / "bk")
    ids = [backup.snapshot(str(tree), bk, keep=0, max_age_days=0)["id"] for _ in range(4)]
    assert backup.prune(bk, keep=3, max_age_days=0) == ids[:1]
    assert [s["id"] for s in backup.list_snapshots(bk)] == ids[1:]
    future = time.time() + 10 * 86400
    assert backup.prune(bk, keep=0, max_age_days=5, protect=(ids[-1],), now=future) == ids[1:3]
    assert [s["id"] for s in backup.list_snapshots(bk)] == ids[3:]
    assert backup.resolve_id(bk, "latest") == ids[3]
    with pytest.raises(backup.BackupError, match="not found"):
        backup.resolve_id(bk, "20000101T000000000000Z")


def test_backup_dir_inside_tree_refused(tree):
    with pytest.raises(backup.BackupError, match="outside"):
        backup.snapshot(str(tree), str(tree / "bk"))


NAMES = st.text(alphabet="abcxyz.-_ #{}\u00e9", min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..") and not n.startswith(".armada-"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.dictionaries(NAMES, st.binary(max_size=64), min_size=1, max_size=6),
       after=st.dictionaries(NAMES, st.binary(max_size=64), max_size=6),
       links=st.sets(NAMES, max_size=3))
def test_restore_roundtrip_is_byte_identical(tmp_path_factory, before, after, links):
    """Any tree, any later state (files changed, added, removed; links added): restore gives the snapshot back."""
    base = tmp_path_factory.mktemp("rt")
    tree = base / "apparmor.d"
    (tree / "sub").mkdir(parents=True)
    for name, data in before.items():
        (tree / "sub" / name).write_bytes(data)
    snap = backup.snapshot(str(tree), str(base / "bk"))

    def state():
        out = {}
        for root, dirs, files in os.walk(str(tree)):
            for n in dirs + files:
                full = os.path.join(root, n)
                rel = os.path.relpath(full, str(tree))
                if os.path.islink(full):
                    out[rel] = os.readlink(full)
                elif os.path.isdir(full):
                    out[rel] = None
                else:
                    with open(full, "rb") as handle:
                        out[rel] = handle.read()
        return out

    wanted = state()
    for name in before:
        if name not in after:
            os.unlink(str(tree / "sub" / name))
    for name, data in after.items():
        (tree / "sub" / name).write_bytes(data)
    for name in links:
        if not os.path.lexists(str(tree / name)):
            os.symlink("sub/" + name, str(tree / name))
    res = backup.restore(str(base / "bk"), snap["id"], str(tree), validate=False, reload=False)
    assert state() == wanted
    assert res.get("verified", True)
    assert backup.restore(str(base / "bk"), snap["id"], str(tree), validate=False, reload=False)["changed"] is False


def test_restore_of_an_unchanged_tree_is_verified(tree, tmp_path):
    """A rollback after a switch that never happened (the parser refused it) finds every file as snapshotted:
    the result says verified (the plan compared every sha256), as after a restore that wrote files."""
    snap = backup.snapshot(str(tree), str(tmp_path / "bk"), profiles=["prof"])
    res = backup.restore(str(tmp_path / "bk"), snap["id"], str(tree), validate=False, reload=False)
    assert res["changed"] is False and res["verified"] is True and res["mismatched"] == []
    (tree / "local" / "prof").write_text("# edited\n")  # the same call does see a difference
    planned = backup.restore(str(tmp_path / "bk"), snap["id"], str(tree), validate=False, reload=False,
                             check_mode=True)
    assert planned["changed"] is True and "verified" not in planned
