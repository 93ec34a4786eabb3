"""Exec targets get profiles (issue 16) on the lab, through profile_fleet: a program learned in complain mode
runs a helper; an answer ``exec_mode: Px`` for the helper gives it its own profile.

On the systemd (journald) host: ``armada-px-demo`` (a two-line script written here) runs the workload's helper
(tests/lab/workload/armada-workload-helper, baked in the image). Pass 1: the kernel runs the helper as
``DEMO//null-HELPER`` (no exec rule yet) and logs its reads there; with the Px answer the update pass writes
``HELPER Px,`` into the demo's profile, creates the helper's profile in complain mode and writes the helper's
reads into it (not into the demo's). Pass 2: the helper now runs under its own profile - the kernel logs its
exec of ``cat`` (still unanswered) with the helper's profile as label, and the pending file asks that question
for the helper's profile. Expectations come from the helper's two lines (``read < /proc/uptime``,
``cat /etc/hostname``) and AppArmor's behaviour, not from the code under test. One learn pass, one update-only
pass (the second needs no learn: the profiles and cursor are set), to keep the lab time short.
State, cursor and backups live in their own directories; everything is removed at the end.
"""
import glob
import os

import pytest
import yaml
from test_journeys import Journey, ansible_yaml

pytestmark = pytest.mark.lab

DEMO = "/usr/local/bin/armada-px-demo"
HELPER = "/usr/local/lib/armada-workload/armada-workload-helper"
STATE = "/var/lib/armada-px-test"
BACKUPS = "/var/backups/armada-px-test"
EXTRA = {"apparmor_programs": [DEMO], "apparmor_learn_exercise": {DEMO: DEMO}, "apparmor_state_dir": STATE,
         "apparmor_backup_dir": BACKUPS, "apparmor_cursor": "armada-px-test", "apparmor_update_default": "allow",
         "apparmor_update_pending_file": "px-pending.yml"}
ANSWERS = {"apparmor_answers_px_test": [
    {"profile": DEMO, "match": {"kind": "exec", "path": HELPER}, "answer": "allow", "exec_mode": "Px"}]}


def _profile_files(j, host):
    """Files of /etc/apparmor.d defining the demo's and the helper's profiles."""
    out = j.must(host, "grep -lE '^(profile )?(%s|%s)( |$)' /etc/apparmor.d/* 2>/dev/null || true" % (DEMO, HELPER))
    return [line for line in out.split() if line]


def _cleanup(j, host):
    for path in _profile_files(j, host):
        j.sh(host, "apparmor_parser -R %s; rm -f %s" % (path, path))
    j.must(host, "rm -rf %s %s %s" % (DEMO, STATE, BACKUPS))


@pytest.fixture(scope="module")
def px(lab, tmp_path_factory):
    j = Journey(lab, str(tmp_path_factory.mktemp("px")))
    hosts = [h for h, v in lab.hosts.items() if v.get("armada_lab_flavour") == "journald"]
    if not hosts:
        pytest.fail("the lab has no journald (systemd) host: boot it with --flavours journald")
    j.hosts = hosts[:1]
    with open(os.path.join(j.inv, "group_vars", "all", "px_test.yml"), "w") as fh:
        yaml.safe_dump(ANSWERS, fh)
    host = j.hosts[0]
    _cleanup(j, host)
    j.must(host, "printf '#!/bin/sh\\n%s >/dev/null\\n' > %s && chmod 755 %s" % (HELPER, DEMO, DEMO))
    yield j, host
    _cleanup(j, host)


def test_px_target_gets_its_own_complain_profile_and_its_accesses(px):
    j, host = px
    j.play("profile_fleet", EXTRA)
    profiles = j.must(host, "cat /sys/kernel/security/apparmor/profiles")
    assert "%s (complain)" % HELPER in profiles, profiles
    assert "%s (complain)" % DEMO in profiles, profiles
    files = _profile_files(j, host)
    demo_file = [f for f in files if "armada-px-demo" in f]
    helper_file = [f for f in files if "armada-px-demo" not in f]
    assert len(demo_file) == 1 and len(helper_file) == 1, files
    demo_text = j.must(host, "cat %s" % demo_file[0])
    helper_text = j.must(host, "cat %s" % helper_file[0])
    assert "%s Px," % HELPER in demo_text, demo_text
    # the helper's read of /proc/uptime, logged as DEMO//null-HELPER, is the helper's rule, not the demo's
    assert "/proc/uptime r," in helper_text, helper_text
    assert "/proc/uptime" not in demo_text, demo_text

    # pass 2 (update only, the demo run over ssh): the helper runs under its own profile; its unanswered exec of
    # cat is logged and asked there
    j.must(host, DEMO)
    out = j.play("profile_fleet", dict(EXTRA, apparmor_learn=False))
    logged = j.must(host, "journalctl -k -o cat | grep -F 'apparmor=\"ALLOWED\"' | grep -F 'operation=\"exec\"' "
                          "| grep -F 'profile=\"%s\"' || true" % HELPER)
    assert "/usr/bin/cat" in logged or "/bin/cat" in logged, logged
    pending = sorted(glob.glob(os.path.join(j.work, "px-pending-*.yml")))
    assert pending, os.listdir(j.work)
    with open(pending[-1]) as fh:
        entries = [e for v in ansible_yaml(fh.read()).values() for e in v]
    cat = [e for e in entries if e["match"].get("kind") == "exec" and str(e["match"].get("path")).endswith("/cat")]
    assert cat and {e["profile"] for e in cat} == {HELPER}, entries
    assert out["rc"] == 0
