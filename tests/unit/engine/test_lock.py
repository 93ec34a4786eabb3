"""The host-wide lock (plugins/module_utils/lock.py), with the fault made for real: two processes.

A helper process (a real ``python`` child, not a thread: flock locks are per open file and a thread
would share nothing interesting) takes the lock and holds it until told to stop; the test process then
tries to take it. Expectations come from flock(2): the lock is exclusive across processes, and the
kernel drops it when the holder exits, even when it is killed.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import lock

HERE = os.path.dirname(os.path.abspath(__file__))
COLL_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "build", "collections")

HOLDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.armada.apparmor.plugins.module_utils import lock
with lock.HostLock(path=sys.argv[2], what=sys.argv[3]):
    sys.stdout.write("held\n")
    sys.stdout.flush()
    sys.stdin.readline()          # hold until the test writes a line (or closes stdin)
sys.stdout.write("released\n")
sys.stdout.flush()
"""


def start_holder(path, what="profile: write /etc/apparmor.d/usr.bin.x"):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, COLL_ROOT, path, what], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop_holder(proc):
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    assert proc.wait(timeout=10) == 0


def test_second_process_gets_a_clear_message_naming_the_holder(tmp_path):
    path = str(tmp_path / "armada-apparmor.lock")
    holder = start_holder(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(lock.LockBusy) as info:
            lock.HostLock(path=path, what="denials: read cursor fleet", timeout=0).acquire()
        assert time.monotonic() - t0 < 2, "timeout=0 must not wait"
        msg = str(info.value)
        assert msg.startswith("another armada.apparmor run (pid %d, started " % holder.pid), msg
        assert "doing profile: write /etc/apparmor.d/usr.bin.x" in msg and path in msg
        assert info.value.holder["pid"] == holder.pid
    finally:
        stop_holder(holder)
    # once the holder released it, the lock is free again, and we are recorded as holder
    with lock.HostLock(path=path, what="second") as held:
        assert held.acquired
        assert lock.read_holder(path)["pid"] == os.getpid()
    assert lock.read_holder(path) == {}, "a released lock leaves no holder information behind"


def test_waiting_run_gets_the_lock_when_the_holder_finishes(tmp_path):
    path = str(tmp_path / "l.lock")
    holder = start_holder(path)
    t0 = time.monotonic()
    # release from another thread of control: the holder process ends after 0.5 s
    subprocess.Popen([sys.executable, "-c", "import time,os,sys; time.sleep(0.5); os.kill(%d, %d)"
                      % (holder.pid, signal.SIGTERM)])
    with lock.HostLock(path=path, timeout=10):
        waited = time.monotonic() - t0
    holder.wait(timeout=10)
    assert 0.3 < waited < 5, waited


def test_killed_holder_leaves_no_stale_lock(tmp_path):
    path = str(tmp_path / "l.lock")
    holder = start_holder(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    # the file still says who held it, but flock(2) locks die with their process
    assert lock.read_holder(path)["pid"] == holder.pid
    with lock.HostLock(path=path, timeout=0) as held:
        assert held.acquired


def test_wait_times_out_with_the_waited_time(tmp_path):
    path = str(tmp_path / "l.lock")
    holder = start_holder(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(lock.LockBusy) as info:
            lock.HostLock(path=path, timeout=0.5).acquire()
        assert 0.4 < time.monotonic() - t0 < 3
        assert "waited" in str(info.value)
    finally:
        stop_holder(holder)


def test_reentrant_in_one_process(tmp_path):
    path = str(tmp_path / "l.lock")
    with lock.HostLock(path=path, what="outer"):
        with lock.HostLock(path=path, what="inner", timeout=0):
            pass
        # still held by the outer hold: another process cannot take it
        probe = subprocess.run([sys.executable, "-c", "import fcntl,sys; f=open(sys.argv[1]);\n"
                                "try:\n fcntl.flock(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(3)",
                                path], check=False)
        assert probe.returncode == 3
        assert lock.read_holder(path)["what"] == "outer"


def test_unopenable_lock_file_is_a_clear_error(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    path = str(target / "sub" / "l.lock")
    (target / "sub").write_text("a file where a directory is needed")
    with pytest.raises(lock.LockError) as info:
        lock.HostLock(path=path).acquire()
    assert "cannot open the armada.apparmor lock" in str(info.value)


def test_default_path_is_under_run():
    assert lock.default_path() == (lock.DEFAULT_LOCK_PATH if os.path.isdir("/run") else lock.FALLBACK_LOCK_PATH)
