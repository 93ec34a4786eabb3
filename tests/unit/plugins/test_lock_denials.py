"""Two runs at once on one host, through real ansible-playbook: the denials module takes the host-wide
lock (plugins/module_utils/lock.py) around its cursor, so while another process holds it the task fails
with a message naming that run, and succeeds once it is released. The other run is a real process."""
import os

from aa_playbook import held_lock, run_tasks

AVC = ('type=AVC msg=audit(1700000000.100:42): apparmor="DENIED" operation="open" profile="/usr/bin/x" '
       'name="/etc/shadow" pid=811 comm="x" requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n')


def test_denials_refuses_while_another_run_holds_the_lock(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text(AVC)
    lock_file = str(tmp_path / "armada-apparmor.lock")
    common = {"sources": [str(log)], "since": "c", "cursor_dir": str(tmp_path / "cursors"), "lock_file": lock_file,
              "skip_covered": False}
    with held_lock(lock_file, "rules: write /etc/apparmor.d/usr.bin.x") as holder:
        busy = run_tasks(tmp_path, [
            {"armada.apparmor.denials": dict(common, lock_timeout=0, commit=True)},
            {"armada.apparmor.denials": dict(common, lock_timeout=1)},
            # no cursor: nothing to race on, so no lock is needed and the read goes on
            {"armada.apparmor.denials": {"sources": [str(log)], "lock_file": lock_file, "lock_timeout": 0,
                                         "skip_covered": False}},
        ], name="busy")
    for res in busy[:2]:
        assert res.get("failed"), res
        assert res["msg"].startswith("another armada.apparmor run (pid %d, started " % holder.pid), res["msg"]
        assert "doing rules: write /etc/apparmor.d/usr.bin.x" in res["msg"] and lock_file in res["msg"]
    assert "waited 1" in busy[1]["msg"]
    assert not os.path.exists(str(tmp_path / "cursors" / "c.json")), "a refused run must not commit"
    assert not busy[2].get("failed") and busy[2]["events"][0]["path"] == "/etc/shadow"
    free = run_tasks(tmp_path, [{"armada.apparmor.denials": dict(common, lock_timeout=0, commit=True)}], name="free")
    assert not free[0].get("failed"), free[0].get("msg")
    assert free[0]["cursor"]["committed"] is True and free[0]["events"][0]["path"] == "/etc/shadow"
