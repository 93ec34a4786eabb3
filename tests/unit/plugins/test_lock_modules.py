"""The changing modules (profile, rules, backup) take the host-wide lock (plugins/module_utils/lock.py),
through real ansible-playbook: while another real process holds it they fail with a message naming that
run and leave the AppArmor tree byte-identical; check mode does not wait for it; once it is released the
same tasks succeed, including the backup taken inside the lock (backup: true)."""
import os
import subprocess
import sys

from aa_playbook import held_lock, make_tree, run_tasks, tree_state

DEMO = """abi <abi/3.0>,
include <tunables/global>

profile armada-demo /usr/bin/armada-demo {
  include <abstractions/base>
  /etc/armada-demo.conf r,
}
"""


def test_changing_modules_refuse_while_another_run_holds_the_lock(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO)
    backups = str(tmp_path / "backups")
    lock_file = str(tmp_path / "armada-apparmor.lock")
    common = {"apparmor_d": tree, "lock_file": lock_file}
    profile = dict(common, name="armada-demo", mode="complain", backup_dir=backups)
    before = tree_state(tree)
    with held_lock(lock_file, "denials: commit cursor fleet") as holder:
        busy = run_tasks(tmp_path, [
            {"armada.apparmor.profile": dict(profile, lock_timeout=0)},
            {"armada.apparmor.profile": dict(profile, lock_timeout=1)},
            {"armada.apparmor.profile": dict(common, path=path, state="absent", backup_dir=backups, lock_timeout=0)},
            {"armada.apparmor.rules": dict(common, profile="armada-demo", path=path, target="profile",
                                           rules=["/etc/armada-demo.d/ r,"], backup_dir=backups, lock_timeout=0)},
            {"armada.apparmor.backup": dict(common, backup_dir=backups, lock_timeout=0)},
            {"armada.apparmor.backup": dict(common, backup_dir=backups, state="restored", lock_timeout=0)},
            # check mode never writes, so it does not wait for the lock
            {"armada.apparmor.profile": dict(profile, lock_timeout=0), "check_mode": True},
        ], name="busy")
        during = tree_state(tree)
    for res in busy[:6]:
        assert res.get("failed") and not res.get("changed"), res
        assert res["msg"].startswith("another armada.apparmor run (pid %d, started " % holder.pid), res["msg"]
        assert "doing denials: commit cursor fleet) holds the lock %s" % lock_file in res["msg"], res["msg"]
    assert "waited 1" in busy[1]["msg"], busy[1]["msg"]
    check = busy[6]
    assert not check.get("failed") and check["changed"] and check["mode"] == "complain", check
    assert during == before, "a refused run must leave the tree byte-identical"
    assert not os.path.exists(backups), "a refused run must not take a snapshot"

    free = run_tasks(tmp_path, [
        {"armada.apparmor.profile": dict(profile, lock_timeout=0)},
        {"armada.apparmor.rules": dict(common, profile="armada-demo", path=path, target="profile",
                                       rules=["/etc/armada-demo.d/ r,"], backup_dir=backups, lock_timeout=0)},
    ], name="free")
    prof, rules = free
    assert not prof.get("failed"), prof.get("msg")
    # backup: true (the default) snapshots inside the lock: the nested code must not wait for its own lock
    assert prof["changed"] and prof["mode"] == "complain" and prof["snapshot_id"], prof
    assert not rules.get("failed"), rules.get("msg")
    assert rules["changed"] and rules["snapshot_id"], rules
    with open(path) as handle:
        text = handle.read()
    assert "flags=(complain)" in text and "/etc/armada-demo.d/ r," in text, text
    # released at the end of each task: the holder information is cleared and another process can take it
    probe = subprocess.run([sys.executable, "-c", "import fcntl,sys; f=open(sys.argv[1]);\n"
                            "try:\n fcntl.flock(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(3)",
                            lock_file], check=False)
    assert probe.returncode == 0
