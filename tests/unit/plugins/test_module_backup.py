"""armada.apparmor.backup through real ansible-playbook on fixture trees (kernel without AppArmor here)."""
import os

from aa_playbook import make_tree, run_tasks, tree_state

PROFILE = """abi <abi/3.0>,
include <tunables/global>

# keep this comment
profile armada-demo /usr/bin/armada-demo flags=(complain) {
  include <abstractions/base>
  /etc/armada-demo.conf r,
}
"""


def _opts(tree, bdir, **kw):
    opts = {"apparmor_d": tree, "backup_dir": bdir}
    opts.update(kw)
    return opts


def test_snapshot_modify_restore_is_byte_identical(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    with open(os.path.join(tree, "armada-demo"), "w") as handle:
        handle.write(PROFILE)
    os.symlink("../armada-demo", os.path.join(tree, "force-complain", "armada-demo"))
    before = tree_state(tree)
    snap, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, reason="test")}], name="snap")
    assert snap["changed"] and snap["id"], snap
    assert tree_state(tree) == before  # a snapshot never touches the tree
    # modify: change a profile, add a new one, drop a link, change a mode bit
    with open(os.path.join(tree, "armada-demo"), "a") as handle:
        handle.write("# edited\n")
    with open(os.path.join(tree, "armada-new"), "w") as handle:
        handle.write("profile armada-new { }\n")
    os.unlink(os.path.join(tree, "force-complain", "armada-demo"))
    os.chmod(os.path.join(tree, "tunables", "global"), 0o600)
    assert tree_state(tree) != before
    modified = tree_state(tree)
    check, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, state="restored")}], check=True,
                       name="check")
    assert tree_state(tree) == modified  # check mode: nothing restored
    restored, again = run_tasks(tmp_path, [
        {"armada.apparmor.backup": _opts(tree, bdir, state="restored", id=snap["id"])},
        {"armada.apparmor.backup": _opts(tree, bdir, state="restored")},
    ], name="restore")
    assert check["changed"] and check["plan"]["remove"] == ["armada-new"], check
    assert check["plan"]["write"] == ["armada-demo"]
    assert check["plan"]["link"] == ["force-complain/armada-demo"]
    assert check["plan"]["chmod"] == ["tunables/global"]
    assert restored["changed"] and restored["verified"], restored
    assert tree_state(tree) == before
    # no AppArmor in this kernel: the unload of the added profile and the reload are skipped, with the reason
    assert restored["unloads"] and all(u["skipped"] and u["reason"] for u in restored["unloads"])
    assert restored["loads"] and all(x["skipped"] for x in restored["loads"])
    assert not again["changed"]


def test_check_mode_and_list_and_retention(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    results = run_tasks(tmp_path, [
        {"armada.apparmor.backup": _opts(tree, bdir), "check_mode": True},
        {"armada.apparmor.backup": _opts(tree, bdir, keep=2)},
        {"armada.apparmor.backup": _opts(tree, bdir, keep=2)},
        {"armada.apparmor.backup": _opts(tree, bdir, keep=2, reason="third")},
        {"armada.apparmor.backup": _opts(tree, bdir, state="list")},
    ])
    assert results[0]["changed"] and results[0]["id"] is None
    ids = [r["id"] for r in results[1:4]]
    assert len(set(ids)) == 3
    assert results[3]["pruned"] == [ids[0]]
    listed = results[4]["snapshots"]
    assert [s["id"] for s in listed] == ids[1:]
    assert listed[-1]["reason"] == "third"
    assert sorted(os.listdir(bdir)) == sorted([i + ".json" for i in ids[1:]] + [i + ".tar.gz" for i in ids[1:]])


def test_listed_profiles_restore_removes_profile_created_after(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    snap, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, profiles=["armada-demo"])}], name="a")
    with open(os.path.join(tree, "armada-demo"), "w") as handle:
        handle.write(PROFILE)
    os.symlink("../armada-demo", os.path.join(tree, "disable", "armada-demo"))
    restored, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, state="restored")}], name="b")
    assert restored["changed"], restored
    assert sorted(restored["plan"]["remove"]) == ["armada-demo", "disable/armada-demo"]
    assert not os.path.lexists(os.path.join(tree, "armada-demo"))
    assert not os.path.lexists(os.path.join(tree, "disable", "armada-demo"))


def test_restore_refuses_snapshot_that_does_not_compile_and_changes_nothing(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    with open(os.path.join(tree, "broken"), "w") as handle:
        handle.write("profile broken { /x rzq, }\n")  # 'z', 'q' are not permissions
    run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir)}], name="a")
    os.unlink(os.path.join(tree, "broken"))
    with open(os.path.join(tree, "good"), "w") as handle:
        handle.write("profile good { }\n")
    before = tree_state(tree)
    res, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, state="restored")}], name="b")
    assert res.get("failed"), res
    assert "does not compile" in res["msg"] and "broken" in res["msg"]
    assert tree_state(tree) == before


def test_backup_dir_inside_apparmor_d_is_refused(tmp_path):
    tree = make_tree(tmp_path)
    res, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, os.path.join(tree, "bk"))}])
    assert res.get("failed") and "outside" in res["msg"]
    assert not os.path.exists(os.path.join(tree, "bk"))


def test_diff_of_restore_shows_file_contents(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    with open(os.path.join(tree, "armada-demo"), "w") as handle:
        handle.write(PROFILE)
    run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir)}], name="a")
    with open(os.path.join(tree, "armada-demo"), "w") as handle:
        handle.write(PROFILE.replace("r,", "rw,"))
    res, = run_tasks(tmp_path, [{"armada.apparmor.backup": _opts(tree, bdir, state="restored")}], diff=True,
                     name="b")
    assert res["diff"][0]["before"] == PROFILE.replace("r,", "rw,")
    assert res["diff"][0]["after"] == PROFILE
