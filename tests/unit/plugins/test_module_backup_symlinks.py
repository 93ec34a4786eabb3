"""armada.apparmor.backup state=restored through real ansible-playbook: a genuine snapshot restored after
``local/`` became a symlink on the host fails with a clear message and changes nothing, inside the tree or
where the link points (issue 12, item 6)."""
import os

from aa_playbook import make_tree, run_tasks, tree_state

PROFILE = "abi <abi/3.0>,\ninclude <tunables/global>\nprofile armada-demo /usr/bin/armada-demo {\n" \
          "  include if exists <local/armada-demo>\n}\n"


def test_restore_through_a_symlinked_local_dir_is_refused_and_changes_nothing(tmp_path):
    tree = make_tree(tmp_path)
    bdir = str(tmp_path / "backups")
    outside = tmp_path / "elsewhere"
    with open(os.path.join(tree, "armada-demo"), "w") as handle:
        handle.write(PROFILE)
    with open(os.path.join(tree, "local", "armada-demo"), "w") as handle:
        handle.write("/etc/armada-demo.conf r,\n")
    snap, = run_tasks(tmp_path, [{"armada.apparmor.backup": {"apparmor_d": tree, "backup_dir": bdir,
                                                             "profiles": ["armada-demo"]}}], name="snap")
    assert snap["changed"] and snap["id"], snap
    # later, on the host: local/ moved to another disk and linked back, its file edited there
    os.rename(os.path.join(tree, "local"), str(outside))
    os.symlink(str(outside), os.path.join(tree, "local"))
    (outside / "armada-demo").write_text("/srv/** rw,\n")
    before = tree_state(tree), tree_state(str(outside))
    restore = {"apparmor_d": tree, "backup_dir": bdir, "state": "restored", "id": snap["id"]}
    checked, = run_tasks(tmp_path, [{"armada.apparmor.backup": restore}], check=True, diff=True, name="check")
    real, = run_tasks(tmp_path, [{"armada.apparmor.backup": restore}], name="restore")
    for res in (checked, real):
        assert res["failed"], res
        assert "snapshot %s cannot be restored safely" % snap["id"] in res["msg"]
        assert "local/armada-demo: %s/local is a symlink on the host (to %r), the restore would write through " \
               "it" % (tree, str(outside)) in res["msg"], res["msg"]
        assert "nothing was restored" in res["msg"]
    assert (tree_state(tree), tree_state(str(outside))) == before
    assert (outside / "armada-demo").read_text() == "/srv/** rw,\n"
