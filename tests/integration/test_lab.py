"""The lab gives real AppArmor hosts: reachable with become, AppArmor on, and a kernel that writes DENIED
records after a profile load, on every flavour (auditd -> audit.log, no auditd -> kernel log, systemd -> journal).

Expectations come from AppArmor's record format (libapparmor's test_multi corpus shows the same
`audit(SECONDS.MILLIS:SERIAL): apparmor="DENIED" operation="open" ... name=... requested_mask="r"` shape)
and from what the workload does (tests/lab/workload/armada-workload), not from the code under test.
"""
import os
import re

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDIT_STAMP = re.compile(r"audit\((\d+\.\d+):\d+\)")
JOURNAL_STAMP = re.compile(r"(\d+\.\d+) ")


@pytest.fixture(scope="session")
def facts(lab):
    return lab.playbook("lab_facts.yml", limit=sorted(lab.hosts))


def test_hosts_reachable_with_become_and_distinct(lab, facts):
    assert sorted(facts) == sorted(lab.hosts)
    for host, f in facts.items():
        assert f["uid"] == 0, "%s: become did not give root" % host
        assert f["hostname"] == host, "each guest carries its inventory name as hostname"
    assert len({f["hostname"] for f in facts.values()}) == len(facts)


def test_groups_cover_canary_and_both_flavours(lab):
    assert lab.groups["canary"] == ["lab1"]
    assert sorted(lab.groups["canary"] + lab.groups["rest"]) == sorted(lab.hosts)
    assert sorted(lab.groups["auditd"] + lab.groups["kernlog"] + lab.groups.get("journald", [])) == sorted(lab.hosts)
    if len(lab.hosts) >= 2:
        assert lab.groups["auditd"] and lab.groups["kernlog"], "a lab of 2+ hosts offers both flavours"


def test_apparmor_enabled_in_guest_kernel(facts):
    for host, f in facts.items():
        assert f["aa_enabled"] == "Y", "%s: AppArmor is not enabled in the guest kernel" % host
        assert f["aa_fs"] is True, "%s: securityfs apparmor interface missing" % host
        assert f["kernel"].startswith("6.1."), "the lab runs Debian bookworm's 6.1 kernel"


def test_auditd_runs_only_on_auditd_flavour(lab, facts):
    for host, f in facts.items():
        running = bool(f["auditd_pid"])
        assert running == (host in lab.groups["auditd"]), "%s: auditd running=%s" % (host, running)


def _records_for(result):
    # split on newlines only: auditd's enriched records hold a \x1d separator that str.splitlines() would cut at
    lines = result["records"].split("\n")
    assert lines and lines[0].startswith("source="), result
    return lines[0][len("source="):], lines[1:]


@pytest.fixture(scope="session")
def denied(lab):
    """One playbook run on the first host of each flavour, in parallel (tasks cost ~3 s per host under TCG)."""
    hosts = sorted({lab.first(f) for f in ("auditd", "kernlog", "journald") if lab.groups.get(f)})
    use_module = os.path.exists(os.path.join(ROOT, "plugins", "modules", "profile.py"))
    return lab.playbook("lab_denied.yml", limit=hosts, extra={"use_profile_module": use_module})


@pytest.mark.parametrize("flavour, source", [("auditd", "audit.log"), ("kernlog", "dmesg"), ("journald", "journal")])
def test_denied_record_written_by_kernel_after_load(lab, denied, flavour, source):
    if flavour == "journald" and not lab.groups.get("journald"):
        pytest.skip("this lab has no systemd-booted host "
                    "(boot one: tests/lab/lab up 3 --flavours auditd,kernlog,journald)")
    host = lab.first(flavour)
    res = denied[host]
    run = res["run"].split("\n")
    loaded_at = float(run[0])
    assert "normal_rc=0" in run, "the hand-written profile must allow a normal cycle: %s" % res
    assert "extra_rc=1" in run, "reading extra.txt must be refused by the enforcing profile: %s" % res
    assert any(line.startswith("armada-workload (enforce)") for line in run), run
    assert any("Permission denied" in line and "extra.txt" in line for line in res["stderr"].split("\n")), res["stderr"]

    got_source, records = _records_for(res)
    assert got_source == source
    fresh = []
    for rec in records:
        # audit.log / dmesg: the kernel's audit(SECONDS.MILLIS:SERIAL); journal: its realtime stamp (short-unix)
        m = JOURNAL_STAMP.match(rec) if source == "journal" else AUDIT_STAMP.search(rec)
        assert m, "a DENIED record without a time stamp: %s" % rec
        if float(m.group(1)) > loaded_at:
            fresh.append(rec)
    extra = [r for r in fresh if 'name="/etc/armada-workload/extra.txt"' in r]
    assert extra, "no DENIED record for extra.txt after the load at %.3f on %s: %s" % (loaded_at, host, records)
    rec = extra[-1]
    for field in ('apparmor="DENIED"', 'operation="open"', 'profile="armada-workload"', 'requested_mask="r"',
                  'denied_mask="r"', 'comm="armada-workload"'):
        assert field in rec, (field, rec)
    # the normal cycle (config, log, state, helper exec, capability, socket) raised nothing
    assert fresh == extra, "the normal cycle was denied something: %s" % [r for r in fresh if r not in extra]
