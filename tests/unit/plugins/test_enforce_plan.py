"""The enforce role's plan on a host whose profile file does not parse: the skip reason must say why.

The status module runs for real on a fixture tree with the real parser; the plan is the role's own filter
(armada.apparmor.enforce_plan), run by ansible-playbook with the role's inputs.
"""
import os

from aa_playbook import make_tree, run_tasks

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
        {"ansible.builtin.set_fact": {"plan": "{{ enforce_status | armada.apparmor.enforce_plan(enforce_record, "
                                              "apparmor_enforce_programs, apparmor_enforce_profiles, "
                                              "apparmor_enforce_force | bool) }}"},
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
