"""Exec targets get profiles (issue 16) through the real plugins: the rules module writes a Cx target's child
profile (compiled by apparmor_parser before the write), the to_rules filter attributes a Px target's
accesses to its own profile and refuses an unconfirmed ux, the enforce_plan filter keeps parent and target
together. Runs through real ansible-playbook (aa_playbook)."""
import os

from aa_playbook import make_tree, run_tasks
from aa_support import PARSER

from ansible_collections.armada.apparmor.plugins.module_utils import host

P = "/usr/local/bin/fetcher"
CURL = "/usr/bin/curl"
PARENT = """abi <abi/3.0>,
include <tunables/global>

profile %s flags=(complain) {
  include <abstractions/base>
}
""" % P


def ev(label, path, mask="r", kind="file"):
    return {"kind": kind, "profile": label, "host": "web1", "path": path, "modes": ["ALLOWED"],
            "mask": {"requested": mask, "denied": mask}, "count": 1, "id": "%s|%s|%s" % (label, path, mask)}


EVENTS = [ev(P, CURL, "x", kind="exec"), ev(P + "//null-" + CURL, "/etc/ssl/openssl.cnf")]


def answer(mode, **kw):
    a = {"profile": P, "match": {"kind": "exec", "path": CURL}, "answer": "allow", "exec_mode": mode}
    a.update(kw)
    return a


def test_rules_module_writes_a_cx_target_as_a_child_profile_in_the_parents_mode(tmp_path):
    tree = make_tree(tmp_path)
    path = os.path.join(tree, "usr.local.bin.fetcher")
    with open(path, "w") as handle:
        handle.write(PARENT)
    result, again = run_tasks(tmp_path, [
        {"set_fact": {"r": "{{ events | armada.apparmor.to_rules([answer], default='allow') }}"},
         "vars": {"events": EVENTS, "answer": answer("Cx")}},
        {"armada.apparmor.rules": {"apparmor_d": tree, "backup_dir": str(tmp_path / "b"), "profile": P,
                                   "entry": "{{ r.profiles['%s'] }}" % P, "target": "profile", "reload": False}},
        {"armada.apparmor.rules": {"apparmor_d": tree, "backup_dir": str(tmp_path / "b"), "profile": P,
                                   "entry": "{{ r.profiles['%s'] }}" % P, "target": "profile", "reload": False}},
    ])[1:]
    assert result["changed"] and not result.get("failed"), result
    with open(path) as handle:
        text = handle.read()
    # the child starts as aa-logprof starts one (its saved child of a Cx answer, apparmor-utils 3.0.8): the base
    # abstraction and the program's own mapping, then the child's rules
    assert ("  profile /usr/bin/curl flags=(complain) {\n    include <abstractions/base>\n    /usr/bin/curl mr,\n"
            "    /etc/ssl/openssl.cnf r,\n  }\n") in text, text
    assert "  /usr/bin/curl Cx,\n" in text
    assert not again["changed"], again  # idempotent: the child exists now
    if PARSER:
        assert host.validate(path, PARSER, apparmor_d=tree) is None


def test_to_rules_filter_gives_a_px_target_its_own_profile_and_refuses_unconfirmed_ux(tmp_path):
    px, ux, ux_ok = run_tasks(tmp_path, [
        {"debug": {"msg": "{{ events | armada.apparmor.to_rules([a], default='allow') }}"},
         "vars": {"events": EVENTS, "a": answer("Px")}},
        {"debug": {"msg": "{{ events | armada.apparmor.to_rules([a]) }}"},
         "vars": {"events": EVENTS, "a": answer("ux")}},
        {"debug": {"msg": "{{ events | armada.apparmor.to_rules([a]) }}"},
         "vars": {"events": EVENTS, "a": answer("ux", unconfined_exec=True)}},
    ])
    profiles = px["msg"]["profiles"]
    assert [r["text"] for r in profiles[CURL]["rules"]] == ["/etc/ssl/openssl.cnf r,"]
    assert [r["text"] for r in profiles[P]["rules"]] == ["/usr/bin/curl Px,"]
    assert profiles[CURL]["exec_target"] == {"path": CURL, "parents": [P]}
    assert ux.get("failed") and "unconfined_exec: true" in ux["msg"], ux
    assert not ux_ok.get("failed"), ux_ok


def test_enforce_plan_filter_skips_a_parent_whose_px_target_is_not_converged(tmp_path):
    done = {"passes": 3, "quiet_passes": 2, "threshold": 1, "converged": True, "pending": 0, "exercised": True}
    record = {"version": 1, "profiles": {P: dict(done, exec_targets=[CURL]),
                                         CURL: {"passes": 1, "quiet_passes": 0, "threshold": 1, "converged": False}}}
    status = {"kernel": {"enabled": True}, "loaded": {P: "complain", CURL: "complain"},
              "files": {"a": {"path": "/etc/apparmor.d/a", "profiles": {P: {"mode": "complain"}}},
                        "b": {"path": "/etc/apparmor.d/b", "profiles": {CURL: {"mode": "complain"}}}}}
    (out,) = run_tasks(tmp_path, [
        {"debug": {"msg": "{{ status | armada.apparmor.enforce_plan(record, programs=[p], profiles=[],"
                          " force=false) }}"},
         "vars": {"status": status, "record": record, "p": P}}])
    plan = dict((e["profile"], e) for e in out["msg"])
    assert set(plan) == {P, CURL}  # the target is planned although only the parent is listed
    assert plan[P]["action"] == "skip" and "together with /usr/bin/curl" in plan[P]["reason"], plan
    assert plan[CURL]["action"] == "skip"
