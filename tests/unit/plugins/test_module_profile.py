"""armada.apparmor.profile through real ansible-playbook on fixture trees.

This machine's kernel has no AppArmor, which exercises the documented 'loading skipped' path; the
real apparmor_parser validates every write against the real abstractions copied into the tree.
"""
import os
import shutil
import subprocess

import pytest
from aa_playbook import make_tree, run_tasks, tree_state

DEMO = """abi <abi/3.0>,
include <tunables/global>

# the demo profile -- this comment must survive mode changes
profile armada-demo /usr/bin/armada-demo {
  include <abstractions/base>
  /etc/armada-demo.conf r,   # trailing comment
}
"""


def _task(tree, tmp_path, **kw):
    opts = {"apparmor_d": tree, "backup_dir": str(tmp_path / "backups")}
    opts.update(kw)
    return {"armada.apparmor.profile": opts}


def _read(path):
    with open(path) as handle:
        return handle.read()


def test_create_then_idempotent_then_mode_change(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    created, again, complain, complain2, enforce = run_tasks(tmp_path, [
        _task(tree, tmp_path, name="armada-demo", path="usr.bin.armada-demo", content=DEMO),
        _task(tree, tmp_path, name="armada-demo", path="usr.bin.armada-demo", content=DEMO),
        _task(tree, tmp_path, name="armada-demo", mode="complain"),
        _task(tree, tmp_path, name="armada-demo", mode="complain"),
        _task(tree, tmp_path, path=path, mode="enforce"),
    ])
    assert created["changed"] and created["previous_mode"] == "absent" and created["mode"] == "enforce", created
    assert created["file"] == path and created["profiles"] == ["armada-demo"]
    # no AppArmor here: loading is reported as skipped with the reason
    assert created["kernel"] == [{"action": "load", "path": path, "skipped": True,
                                  "reason": created["kernel"][0]["reason"]}]
    assert "no AppArmor" in created["kernel"][0]["reason"]
    assert created["snapshot_id"], "backup: true is the default"
    assert not again["changed"] and again["snapshot_id"] is None
    assert complain["changed"] and complain["previous_mode"] == "enforce" and complain["mode"] == "complain"
    assert not complain2["changed"]
    assert enforce["changed"] and enforce["mode"] == "enforce"
    # the file went through complain and back: byte-identical to what we wrote, comments kept
    assert _read(path) == DEMO


def test_mode_written_into_file_flags_and_links(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    os.symlink("../usr.bin.armada-demo", os.path.join(tree, "force-complain", "usr.bin.armada-demo"))
    complain, audit, disabled, enforce = run_tasks(tmp_path, [
        _task(tree, tmp_path, name="armada-demo", mode="complain"),
        _task(tree, tmp_path, name="armada-demo", mode="audit"),
        _task(tree, tmp_path, name="armada-demo", mode="disabled"),
        _task(tree, tmp_path, name="armada-demo", mode="enforce"),
    ])
    assert complain["previous_mode"] == "complain"  # force-complain link
    assert audit["mode"] == "audit" and disabled["mode"] == "disabled", (audit, disabled)
    assert enforce.get("previous_mode") == "disabled" and enforce["mode"] == "enforce", enforce
    assert _read(path) == DEMO
    assert not os.path.lexists(os.path.join(tree, "disable", "usr.bin.armada-demo"))
    # enforce removes force-complain, or the kernel would still complain after the next boot
    assert not os.path.lexists(os.path.join(tree, "force-complain", "usr.bin.armada-demo"))


def test_flags_in_file_after_each_mode(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    seen = {}
    for mode in ("complain", "audit", "kill", "disabled"):
        res, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", mode=mode)], name=mode)
        assert res["changed"], res
        seen[mode] = (_read(path), os.path.islink(os.path.join(tree, "disable", "usr.bin.armada-demo")))
    header = "profile armada-demo /usr/bin/armada-demo"
    assert header + " flags=(complain) {" in seen["complain"][0]
    assert header + " flags=(audit) {" in seen["audit"][0]
    assert header + " flags=(kill) {" in seen["kill"][0]
    assert seen["disabled"] == (seen["kill"][0], True)  # disabling keeps the flags, adds the link
    assert os.readlink(os.path.join(tree, "disable", "usr.bin.armada-demo")) == "../usr.bin.armada-demo"


def test_check_mode_leaves_tree_byte_identical_and_diff_shows_file_and_mode(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    before = tree_state(tree)
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", mode="complain",
                                      content=DEMO.replace("r,   #", "rw,   #"))], check=True, diff=True)
    assert res["changed"]
    assert tree_state(tree) == before
    assert not os.path.exists(str(tmp_path / "backups")), "no snapshot in check mode"
    file_diff, mode_diff = res["diff"]
    assert file_diff["before"] == DEMO
    assert "/etc/armada-demo.conf rw,   # trailing comment" in file_diff["after"]
    assert "profile armada-demo /usr/bin/armada-demo flags=(complain) {" in file_diff["after"]
    assert (mode_diff["before"], mode_diff["after"]) == ("enforce\n", "complain\n")


def test_invalid_profile_leaves_old_file_and_returns_parser_message(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    before = tree_state(tree)
    bad = DEMO.replace("/etc/armada-demo.conf r,", "/etc/armada-demo.conf rzq,")
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", content=bad)])
    assert res.get("failed")
    assert "AppArmor parser error" in res["parser_message"], res
    assert tree_state(tree) == before
    missing = DEMO.replace("abstractions/base", "abstractions/armada-does-not-exist")
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", content=missing)], name="b")
    assert res.get("failed") and "armada-does-not-exist" in res["msg"]
    assert tree_state(tree) == before
    # no stray temp file a parser could load is left behind
    assert not [n for n in os.listdir(tree) if n.startswith(".")]


def test_stub_profiles_are_not_switched_without_force(tmp_path):
    """Debian 12's parser rejects prompt/default_allow, so those stubs are fixture text on disk only."""
    tree = make_tree(tmp_path)
    stubs = {
        "stub-unconfined": "profile stub-unconfined /usr/bin/stub-a flags=(unconfined) {\n  /usr/bin/stub-a mr,\n}\n",
        "stub-prompt": "profile stub-prompt /usr/bin/stub-b flags=(prompt) {\n}\n",
        "stub-allow": "profile stub-allow /usr/bin/stub-c flags=(default_allow) {\n}\n",
    }
    for name, text in stubs.items():
        with open(os.path.join(tree, name), "w") as handle:
            handle.write(text)
    before = tree_state(tree)
    results = run_tasks(tmp_path, [_task(tree, tmp_path, path=name, mode="enforce") for name in stubs])
    for res, flag in zip(results, ("unconfined", "prompt", "default_allow")):
        assert res.get("failed") and "refusing" in res["msg"] and flag in res["msg"], res
    assert tree_state(tree) == before
    forced, = run_tasks(tmp_path, [_task(tree, tmp_path, path="stub-unconfined", mode="complain", force=True)],
                        name="forced")
    assert forced["changed"], forced
    assert "flags=(complain)" in _read(os.path.join(tree, "stub-unconfined"))


def test_absent_removes_file_and_links_and_is_idempotent(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    os.symlink("../usr.bin.armada-demo", os.path.join(tree, "disable", "usr.bin.armada-demo"))
    check, gone, again = run_tasks(tmp_path, [
        dict(_task(tree, tmp_path, name="armada-demo", state="absent"), check_mode=True),
        _task(tree, tmp_path, name="armada-demo", state="absent"),
        _task(tree, tmp_path, name="armada-demo", state="absent"),
    ])
    assert check["changed"] and gone["changed"] and not again["changed"]
    assert gone["kernel"][0]["skipped"] and gone["snapshot_id"]
    assert not os.path.lexists(path)
    assert not os.path.lexists(os.path.join(tree, "disable", "usr.bin.armada-demo"))
    # the snapshot taken before removal brings it back
    restored, = run_tasks(tmp_path, [{"armada.apparmor.backup": {
        "apparmor_d": tree, "backup_dir": str(tmp_path / "backups"), "state": "restored", "id": gone["snapshot_id"]}}],
        name="restore")
    assert restored["changed"] and _read(path) == DEMO
    assert os.readlink(os.path.join(tree, "disable", "usr.bin.armada-demo")) == "../usr.bin.armada-demo"


def test_missing_parser_fails_cleanly(tmp_path):
    tree = make_tree(tmp_path)
    before = tree_state(tree)
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", content=DEMO,
                                      parser=str(tmp_path / "no-such-parser"))])
    assert res.get("failed") and "apparmor_parser not found" in res["msg"]
    assert tree_state(tree) == before


def test_read_only_and_full_apparmor_dir_fail_cleanly(tmp_path):
    """A real tmpfs as the AppArmor directory: remounted read-only, then too small for the new text."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % proc.stderr.decode().strip())
    try:
        tree = make_tree(mnt)
        path = os.path.join(tree, "usr.bin.armada-demo")
        with open(path, "w") as handle:
            handle.write(DEMO)
        # fill the file system up to its last 16 KiB
        vfs = os.statvfs(str(mnt))
        with open(os.path.join(str(mnt), "filler"), "wb") as handle:
            handle.write(b"\0" * (vfs.f_bavail * vfs.f_frsize - 16384))
        before = tree_state(tree)
        big = DEMO.replace("/etc/armada-demo.conf r,", "/etc/armada-demo.conf r,\n" + "  /srv/x r,\n" * 4000)
        full, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", content=big)], name="full")
        assert full.get("failed") and "no space left" in full["msg"], full
        assert tree_state(tree) == before
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        ro, = run_tasks(tmp_path, [_task(tree, tmp_path, name="armada-demo", mode="complain")], name="ro")
        assert ro.get("failed") and "read-only file system" in ro["msg"], ro
        assert tree_state(tree) == before
        assert not [n for n in os.listdir(tree) if n.startswith(".")]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(str(mnt), ignore_errors=True)
