"""armada.apparmor.deadman through real ansible-playbook on a host WITHOUT systemd (this machine): arming fails
with the way out and writes nothing; the other states find nothing armed and report why a switch could not be
armed. The systemd side (arm, confirm, fire, a host that reverts itself) runs on the lab: test_deadman_lab.py."""
import os

import pytest
from aa_playbook import run_tasks

from ansible_collections.armada.apparmor.plugins.module_utils import deadman

pytestmark = pytest.mark.skipif(os.path.isdir(deadman.SYSTEMD_MARKER),
                                reason="this machine runs systemd: these tests are about a host without it "
                                       "(the systemd paths are tested on the lab, test_deadman_lab.py)")


def _module(state_dir, **args):
    return {"armada.apparmor.deadman": dict(args, state_dir=str(state_dir))}


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_arming_without_systemd_fails_with_the_way_out_and_writes_nothing(tmp_path, check):
    state = tmp_path / "state"
    (res,) = run_tasks(tmp_path, [_module(state, state="armed", snapshot="20261206T171503123456Z", timeout=600,
                                          soak_seconds=60)], check=check)
    assert res["failed"] and "apparmor_enforce_deadman: false" in res["msg"], res
    assert res["systemd"] is False and res["armed"] == []
    assert not state.exists()


def test_reverted_reports_why_no_switch_could_be_armed(tmp_path):
    state = tmp_path / "state"
    ok, short = run_tasks(tmp_path, [
        _module(state, state="reverted", timeout=600, soak_seconds=60),
        _module(state, state="reverted")])
    assert not ok.get("failed") and not ok["changed"] and ok["fired"] == [], ok
    assert "/run/systemd/system" in ok["arm_problem"]
    assert "arm_problem" not in short, "without a timeout there is nothing to check"


def test_confirming_finds_nothing_armed(tmp_path):
    (res,) = run_tasks(tmp_path, [_module(tmp_path / "state", state="confirmed",
                                          name="armada-apparmor-revert-20261206T171503123456Z")])
    assert not res.get("failed") and not res["changed"], res
    assert res["confirmed"] == [] and res["fired"] == []

