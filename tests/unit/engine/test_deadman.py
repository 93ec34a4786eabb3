"""deadman engine: unit names, timeout and systemd checks, the systemd-run command line, the armed-timer parse,
and the revert payload running alone (``python -I``, only the zip on sys.path) against a real snapshot."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import backup, deadman

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PY38 = os.path.join(ROOT, ".venv-py38", "bin", "python")
SID = "20261206T171503123456Z"


def test_unit_name_is_the_prefix_and_the_snapshot_id():
    assert deadman.unit_name(SID) == "armada-apparmor-revert-" + SID
    assert deadman.snapshot_of(deadman.unit_name(SID) + ".timer") == SID
    assert deadman.snapshot_of(deadman.unit_name(SID) + ".service") == SID
    assert deadman.snapshot_of("ssh.service") is None
    assert deadman.snapshot_of("armada-apparmor-revert-x;y.timer") is None


@pytest.mark.parametrize("bad", ["", "../x", "a b", "x;rm -rf /", "a-b", "x" * 65, None, 5])
def test_unit_name_refuses_what_is_not_a_snapshot_id(bad):
    with pytest.raises(deadman.DeadmanError, match="not a snapshot id"):
        deadman.unit_name(bad)


def test_timeout_must_outlast_the_soak_plus_the_margin():
    assert deadman.timeout_problem(60 + deadman.MARGIN_SECONDS, 60) is None
    assert deadman.timeout_problem(600, 60) is None
    msg = deadman.timeout_problem(60 + deadman.MARGIN_SECONDS - 1, 60)
    assert "apparmor_enforce_deadman_timeout is 119 s" in msg and "soak (60 s)" in msg and "120 s or more" in msg
    assert deadman.timeout_problem(0, 0) is not None
    assert deadman.timeout_problem(-5, 0) is not None


@pytest.mark.parametrize("timeout,soak", [("600", 60), (600.0, 60), (True, 0), (600, None), (600, "60")])
def test_timeout_must_be_whole_seconds(timeout, soak):
    assert "whole seconds" in deadman.timeout_problem(timeout, soak)


def test_systemd_problem_names_the_way_out():
    assert deadman.systemd_problem(True) is None
    msg = deadman.systemd_problem(False)
    assert "/run/systemd/system" in msg and "apparmor_enforce_deadman: false" in msg


def test_arm_command_is_a_oneshot_behind_a_precise_timer():
    revert = deadman.revert_argv("/usr/bin/python3", "/s/deadman/u.zip", "/bk", SID, "/etc/apparmor.d",
                                 "/s/deadman/u.json", lock_file="/run/l.lock", parser=None, securityfs="/sys/x")
    argv = deadman.arm_argv(deadman.unit_name(SID), 130, revert, SID)
    assert argv[:5] == ["systemd-run", "--unit=armada-apparmor-revert-" + SID, "--on-active=130s",
                        "--timer-property=AccuracySec=1s", "--property=Type=oneshot"]
    # everything after "--" is the revert, passed as argv (no shell)
    assert argv[argv.index("--") + 1:] == revert
    assert revert[:3] == ["/usr/bin/python3", "-I", "-c"]
    assert revert[4:] == ["/s/deadman/u.zip", "--snapshot", SID, "--backup-dir", "/bk", "--apparmor-d",
                          "/etc/apparmor.d", "--result", "/s/deadman/u.json", "--lock-file", "/run/l.lock",
                          "--securityfs", "/sys/x"]
    assert "--lock-file" not in deadman.revert_argv("p", "z", "b", SID, "a", "r")
    with pytest.raises(deadman.DeadmanError, match="unknown revert option"):
        deadman.revert_argv("p", "z", "b", SID, "a", "r", shell="x")


def test_armed_units_are_the_waiting_timers_of_switches():
    out = (
        "armada-apparmor-revert-%s.timer loaded active waiting armada.apparmor dead-man's switch: revert\n"
        "armada-apparmor-revert-20261206T000000000000Z.timer loaded inactive dead armada.apparmor old one\n"
        "apt-daily.timer loaded active waiting Daily apt download activities\n"
        "armada-apparmor-revert-x;y.timer loaded active waiting forged name\n"
        "\n"
        "garbage\n" % SID)
    assert deadman.armed_units(out) == ["armada-apparmor-revert-" + SID]
    assert deadman.armed_units("") == []


@pytest.mark.parametrize("state,result,want", [
    ("inactive", False, False), ("unknown", False, False), ("", False, False),
    ("activating", False, True), ("failed", False, True), ("inactive", True, True)])
def test_fired_means_the_revert_ran_or_runs(state, result, want):
    assert deadman.fired(state, result) is want


def test_paths_live_below_the_state_dir():
    assert deadman.paths("/var/lib/armada-apparmor", "u") == {
        "payload": "/var/lib/armada-apparmor/deadman/u.zip", "result": "/var/lib/armada-apparmor/deadman/u.json"}


def _tree(tmp_path):
    tree = tmp_path / "apparmor.d"
    tree.mkdir()
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(os.path.join("/etc/apparmor.d", sub), str(tree / sub), symlinks=True)
    return tree


COMPLAIN = ("abi <abi/3.0>,\ninclude <tunables/global>\n"
            "profile prog /usr/bin/prog flags=(complain) {\n  /etc/hostname r,\n}\n")


@pytest.mark.parametrize("python", [sys.executable, PY38], ids=["venv", "py38"])
def test_payload_reverts_alone_with_python_isolated(tmp_path, python):
    """The zip is all the revert has: run it with -I (no PYTHONPATH, no site, no cwd) from an empty directory."""
    if not os.path.exists(python):
        pytest.skip("no Python 3.8 venv at %s (make setup builds it)" % python)
    tree = _tree(tmp_path)
    (tree / "prog").write_text(COMPLAIN)
    snap = backup.snapshot(str(tree), str(tmp_path / "bk"), profiles=["prog"], reason="before enforce rollout")
    enforced = COMPLAIN.replace(" flags=(complain)", "")
    (tree / "prog").write_text(enforced)
    zip_path = tmp_path / "state" / "deadman" / "u.zip"
    zip_path.parent.mkdir(parents=True)
    zip_path.write_bytes(deadman.payload())
    with zipfile.ZipFile(str(zip_path)) as archive:
        names = set(archive.namelist())
    assert "ansible_collections/armada/apparmor/plugins/module_utils/backup.py" in names
    assert not any(n.startswith("ansible/") for n in names)
    result = tmp_path / "state" / "deadman" / "u.json"
    argv = deadman.revert_argv(python, str(zip_path), str(tmp_path / "bk"), snap["id"], str(tree), str(result),
                               lock_file=str(tmp_path / "lock"), parser=shutil.which("apparmor_parser"))
    empty = tmp_path / "cwd"
    empty.mkdir()
    proc = subprocess.run(argv, cwd=str(empty), capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                          check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "dead-man's switch fired" in proc.stdout
    assert (tree / "prog").read_text() == COMPLAIN
    record = json.loads(result.read_text())
    assert record["state"] == "reverted" and record["ok"] is True and record["snapshot"] == snap["id"]
    assert record["restore"]["plan"]["write"] == ["prog"]


def test_failed_revert_is_recorded_and_exits_1(tmp_path):
    result = tmp_path / "r.json"
    rc = deadman.main(["--snapshot", SID, "--backup-dir", str(tmp_path / "nothing"), "--apparmor-d",
                       str(tmp_path), "--result", str(result), "--lock-file", str(tmp_path / "lock")])
    record = json.loads(result.read_text())
    assert rc == 1 and record["state"] == "failed" and record["ok"] is False
    assert "no snapshots" in record["error"]
