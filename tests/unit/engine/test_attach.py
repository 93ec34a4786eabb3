"""Attachment and evidence (module_utils/attach.py): the processes of a listed program that run unconfined
are restarted through their service or reported "not attached", and a profile converges only once a pass
has seen it at work. The process counts come from a fake /proc tree through the real scan."""
import os

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import attach, host
from ansible_collections.armada.apparmor.plugins.module_utils.report import processes_by_profile

NGINX = "/usr/sbin/nginx"
TOOL = "/usr/local/bin/tool"


def fake_proc(base, procs):
    """A /proc-like tree: pid -> (exe, label written to attr/current)."""
    for pid, (exe, label) in procs.items():
        d = base / str(pid)
        (d / "attr").mkdir(parents=True)
        os.symlink(exe, str(d / "exe"))
        (d / "attr" / "current").write_text(label + "\n")
    return str(base)


def scan(tmp_path, procs):
    return host.program_processes([NGINX, TOOL], fake_proc(tmp_path / "proc", procs))


def test_a_daemon_started_before_its_profile_is_restarted_through_its_service(tmp_path):
    procs = scan(tmp_path, {1: (NGINX, "unconfined"), 2: (NGINX, "unconfined"), 3: (TOOL, "unconfined")})
    programs = [{"path": NGINX, "service": "nginx"}, {"path": "/usr/sbin/nginx-debug", "service": "nginx"},
                TOOL]
    plan = attach.restart_plan(programs, procs)
    assert plan == {"restart": ["nginx"],
                    "not_attached": [{"path": TOOL, "profile": TOOL, "unconfined": 1}]}


def test_confined_or_absent_processes_need_no_restart(tmp_path):
    procs = scan(tmp_path, {1: (NGINX, "/usr/sbin/nginx (complain)"), 2: ("/usr/bin/other", "unconfined")})
    assert attach.restart_plan([{"path": NGINX, "service": "nginx"}, TOOL], procs) == {"restart": [],
                                                                                        "not_attached": []}


def test_evidence_from_events_or_confined_processes_is_kept(tmp_path):
    procs = scan(tmp_path, {1: (NGINX, "/usr/sbin/nginx (complain)"), 2: (NGINX, "/usr/sbin/nginx (complain)"),
                            3: (TOOL, "unconfined")})
    by_profile = processes_by_profile({NGINX: NGINX, TOOL: "tool"}, procs)
    assert by_profile == {NGINX: {"confined": 2, "unconfined": 0}, "tool": {"confined": 0, "unconfined": 1}}
    assert attach.evidence({}, False, by_profile[NGINX]) == {"exercised": True, "confined": 2, "unconfined": 0}
    assert attach.evidence({}, False, by_profile["tool"]) == {"exercised": False, "confined": 0,
                                                               "unconfined": 1}
    assert attach.evidence({}, True, None)["exercised"] is True
    # once exercised, always exercised (a later quiet pass with the daemon stopped keeps it)
    assert attach.evidence({"exercised": True}, False, None) == {"exercised": True, "confined": 0,
                                                                  "unconfined": 0}
    # host data: junk counts count 0, a truthy non-bool "exercised" is not evidence
    assert attach.evidence({"exercised": "yes"}, False, {"confined": "x", "unconfined": -3}) == {
        "exercised": False, "confined": 0, "unconfined": 0}


@pytest.mark.parametrize("passes,quiet,exercised,unconfined,want", [
    (2, 1, True, 0, True),
    (1, 1, True, 0, False),    # one pass is never enough
    (2, 0, True, 0, False),    # the last pass added a rule
    (3, 3, False, 0, False),   # quiet because nothing ran: never exercised
    (3, 3, True, 2, False),    # exercised once, but processes of its program run unconfined now
])
def test_convergence_needs_evidence(passes, quiet, exercised, unconfined, want):
    assert attach.is_converged(passes, quiet, 1, exercised, unconfined) is want


def test_enforce_is_told_why_a_profile_lacks_evidence():
    assert attach.blocked_reason({"exercised": True, "unconfined": 0}) == ""
    assert attach.blocked_reason({"exercised": False}).startswith("never exercised: ")
    # a record written before the evidence fields existed: the evidence was never checked
    assert attach.blocked_reason({"passes": 4, "quiet_passes": 3, "converged": True}).startswith("never exercised")
    reason = attach.blocked_reason({"exercised": True, "unconfined": 2})
    assert reason.startswith("not attached: 2 process(es)") and "service" in reason
    assert attach.blocked_reason(None).startswith("never exercised")


def test_program_entries_are_validated():
    assert attach.program_entry(NGINX) == {"path": NGINX, "profile": NGINX, "exercise": "", "service": ""}
    assert attach.program_entry({"path": NGINX, "service": "php8.2-fpm.service", "profile": "nginx"}) == {
        "path": NGINX, "profile": "nginx", "exercise": "", "service": "php8.2-fpm.service"}
    bad = [
        ({"path": NGINX, "servce": "nginx"}, "unknown key(s) servce"),
        ({"path": "nginx"}, "absolute program path"),
        ({"path": NGINX, "service": "nginx; reboot"}, "not a systemd unit name"),
        ({"path": NGINX, "service": "--force"}, "not a systemd unit name"),
        ({"path": NGINX, "service": ["nginx"]}, "service must be a string"),
        (42, "each entry is a path or a mapping"),
    ]
    for entry, message in bad:
        with pytest.raises(attach.ProgramError, match=message.replace("(", r"\(").replace(")", r"\)")):
            attach.program_entry(entry)
        with pytest.raises(attach.ProgramError):
            attach.restart_plan([entry], {})
