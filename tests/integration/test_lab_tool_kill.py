"""`tests/lab/lab kill` / `restart` without booting anything: clear errors, and never a signal to a process
that is not this lab's qemu (the real kill and restart run in test_kill_lab.py on the lab)."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tests", "lab", "lab")


def tool(run_dir, *args):
    env = dict(os.environ, ARMADA_LAB_RUN=str(run_dir))
    return subprocess.run([TOOL, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def fake_state(run_dir, pid, image, **extra):
    host = dict({"name": "lab1", "port": 1, "pid": pid, "flavour": "auditd", "console": "c",
                 "started": time.time()}, **extra)
    with open(os.path.join(str(run_dir), "state.json"), "w", encoding="utf-8") as fh:
        json.dump({"image": str(image), "hosts": [host], "started": 0, "ready": 1}, fh)


def test_kill_and_restart_without_a_lab_say_so(tmp_path):
    for cmd in ("kill", "restart"):
        res = tool(tmp_path, cmd, "lab1")
        assert res.returncode == 1 and "no lab running" in res.stderr, (cmd, res.stderr)


def test_unknown_host_is_named_with_the_hosts_there_are(tmp_path):
    fake_state(tmp_path, 0, tmp_path)
    res = tool(tmp_path, "kill", "lab7")
    assert res.returncode == 1 and "no host lab7" in res.stderr and "lab1" in res.stderr, res.stderr


def test_kill_never_signals_a_process_that_is_not_its_qemu(tmp_path):
    # state.json names a live process that is no qemu (e.g. a reused pid): kill must leave it alone
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path) + "/lab1.pid"])
    try:
        fake_state(tmp_path, proc.pid, tmp_path)
        res = tool(tmp_path, "kill", "lab1")
        assert res.returncode == 0 and "not running" in res.stdout, res.stdout + res.stderr
        time.sleep(0.3)
        assert proc.poll() is None, "lab kill signalled a process that is not a lab qemu"
    finally:
        proc.kill()
        proc.wait()


def test_status_shows_a_killed_host_dead_and_how_to_bring_it_back(tmp_path):
    fake_state(tmp_path, 0, tmp_path, killed=time.time())
    res = tool(tmp_path, "status")
    assert res.returncode == 1, res.stdout
    assert "DEAD (lab kill at" in res.stdout and "tests/lab/lab restart lab1" in res.stdout, res.stdout


def test_restart_refuses_when_the_image_is_gone(tmp_path):
    fake_state(tmp_path, 0, tmp_path / "img-gone")
    res = tool(tmp_path, "restart", "lab1")
    assert res.returncode == 1 and "image this lab booted from is gone" in res.stderr, res.stderr
    assert json.loads((tmp_path / "state.json").read_text())["hosts"][0]["pid"] == 0, "state unchanged"
