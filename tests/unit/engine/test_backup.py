"""backup engine: manifest, retention, tamper detection, path safety, restore plan."""
import hashlib
import io
import json
import os
import tarfile
import time

import pytest

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
