"""The enforce role's plan on a host whose profile file does not parse: the skip reason must say why.

The status module runs for real on a fixture tree with the real parser; the plan is the role's own
template (roles/enforce/templates/plan.j2), rendered by ansible-playbook with the role's inputs.
"""
import os

from aa_playbook import ROOT, make_tree, run_tasks

PLAN = os.path.join(ROOT, "roles", "enforce", "templates", "plan.j2")
PROFILE = """abi <abi/3.0>,
include <tunables/global>
profile armada-plan /usr/local/bin/armada-plan {
  include <abstractions/base>
  include if exists <local/armada-plan>
}
"""


def plan_for(tmp_path, tree):
    # a securityfs tree with nothing loaded: the plan's "AppArmor absent" skip comes before the file check
    sfs = tmp_path / "securityfs"
    (sfs / "features").mkdir(parents=True, exist_ok=True)
    (sfs / "profiles").write_text("")
    status, plan = run_tasks(tmp_path, [
        {"armada.apparmor.status": {"apparmor_d": tree, "securityfs": str(sfs), "check_drift": False}},
        {"ansible.builtin.set_fact": {"plan": "{{ lookup('ansible.builtin.template', '%s') | from_json }}" % PLAN},
         "vars": {"enforce_status": "{{ r0 }}", "enforce_record": {}, "apparmor_enforce_programs": [],
                  "apparmor_enforce_profiles": ["armada-plan"], "apparmor_enforce_force": False}},
    ])
    assert not plan.get("failed"), plan
    entry, = plan["ansible_facts"]["plan"]
    return status, entry


def test_a_profile_file_that_does_not_parse_is_named_in_the_skip_reason(tmp_path):
    tree = make_tree(tmp_path)
    with open(os.path.join(tree, "armada-plan"), "w") as fh:
        fh.write(PROFILE)
    local = os.path.join(tree, "local", "armada-plan")
    with open(local, "w") as fh:
        fh.write("/srv/data r\n")  # a hand edit without the closing comma: a syntax error

    status, entry = plan_for(tmp_path, tree)
    assert status["kernel"]["enabled"] is True
    assert [e["path"] for e in status["drift"]["errors"]] == [os.path.join(tree, "armada-plan")], status["drift"]
    assert entry["action"] == "skip"
    assert os.path.join(tree, "armada-plan") in entry["reason"], entry
    assert "could not be parsed" in entry["reason"] and "fix them" in entry["reason"], entry

    # the same tree with the edit fixed: the profile is found, the plan moves on to convergence
    with open(local, "w") as fh:
        fh.write("/srv/data r,\n")
    status, entry = plan_for(tmp_path, tree)
    assert status["drift"]["errors"] == []
    assert entry["action"] == "skip" and entry["reason"] == "not converged: never updated", entry
    assert entry["file"] == os.path.join(tree, "armada-plan")


def test_a_profile_without_evidence_is_skipped_with_that_reason(tmp_path):
    """A profile quiet for passes because nothing ran is "never exercised"; one whose program runs unconfined
    is "not attached" - neither is switched, and the reason says so instead of counting passes."""
    tree = make_tree(tmp_path)
    with open(os.path.join(tree, "armada-plan"), "w") as fh:
        fh.write(PROFILE)
    sfs = tmp_path / "securityfs"
    (sfs / "features").mkdir(parents=True, exist_ok=True)
    (sfs / "profiles").write_text("")
    quiet = {"passes": 3, "quiet_passes": 2, "threshold": 1, "pending": 0, "converged": False}
    records = [dict(quiet, exercised=False, confined=0, unconfined=0),
               dict(quiet, exercised=True, confined=0, unconfined=2)]
    tasks = [{"armada.apparmor.status": {"apparmor_d": tree, "securityfs": str(sfs), "check_drift": False}}]
    for rec in records:
        tasks.append({"ansible.builtin.set_fact": {
            "plan": "{{ lookup('ansible.builtin.template', '%s') | from_json }}" % PLAN},
            "vars": {"enforce_status": "{{ r0 }}", "enforce_record": {"profiles": {"armada-plan": rec}},
                     "apparmor_enforce_programs": [], "apparmor_enforce_profiles": ["armada-plan"],
                     "apparmor_enforce_force": False}})
    _status, never, unattached = run_tasks(tmp_path, tasks)
    (never,), (unattached,) = never["ansible_facts"]["plan"], unattached["ansible_facts"]["plan"]
    assert never["action"] == "skip" and never["reason"].startswith("never exercised: "), never
    assert unattached["action"] == "skip" and unattached["reason"].startswith("not attached: 2 process(es)"), \
        unattached
