"""The decisions of an update pass and an enforce rollout (module_utils/passplan.py), one at a time.

These were Jinja templates of the update and enforce roles (record.j2, plan.j2, fetch_names.j2,
counts.j2, tracked.j2, host_files.j2) that only a playbook run could exercise.
"""
from ansible_collections.armada.apparmor.plugins.module_utils import passplan
from ansible_collections.armada.apparmor.plugins.module_utils.hostops import conventional_file_name

FILES = {"/usr/bin/a": "/etc/apparmor.d/usr.bin.a", "/usr/bin/b": "/etc/apparmor.d/usr.bin.b"}


def result(**profiles):
    return {"profiles": {name: dict({"rules": [], "deny": [], "pending": []}, **p) for name, p in profiles.items()},
            "stats": {"events": 7}}


# --- tracked profiles and host files -------------------------------------------------------------------------

def test_tracked_profiles_take_profile_else_path_then_the_extra_names_once():
    programs = ["/usr/bin/a", {"path": "/usr/bin/b", "profile": "bee"}, {"path": "/usr/bin/c"}]
    assert passplan.tracked_profiles(programs, ["x", "/usr/bin/a"]) == ["/usr/bin/a", "bee", "/usr/bin/c", "x"]
    assert passplan.tracked_profiles([], []) == []


def test_host_profile_files_maps_every_profile_a_file_defines():
    status = {"files": {"usr.bin.a": {"path": "/d/usr.bin.a", "profiles": {"/usr/bin/a": {}, "other": {}}},
                        "empty": {"path": "/d/empty"}}}
    assert passplan.host_profile_files(status) == {"/usr/bin/a": "/d/usr.bin.a", "other": "/d/usr.bin.a"}
    assert passplan.host_profile_files({}) == {}


# --- convergence record --------------------------------------------------------------------------------------

SEEN = [{"kind": "file", "profile": "/usr/bin/a"}]  # an event of the profile: it was exercised


def record(old, changed=(), tracked=("/usr/bin/a",), res=None, threshold=1, files=FILES, events=SEEN,
           processes=None, programs=()):
    return passplan.convergence_record(old, list(tracked), res or result(), files, list(changed), threshold,
                                       events=events, processes=processes, programs=list(programs))


def test_first_pass_is_never_converged_the_second_quiet_one_is():
    first = record({})
    assert first == {"version": 1, "profiles": {"/usr/bin/a": {
        "passes": 1, "quiet_passes": 1, "rules_added_last": False, "pending": 0, "threshold": 1, "converged": False,
        "exercised": True, "confined": 0, "unconfined": 0}}}
    second = record(first)["profiles"]["/usr/bin/a"]
    assert (second["passes"], second["quiet_passes"], second["converged"]) == (2, 2, True)


def test_a_new_rule_resets_the_quiet_count_and_the_threshold_is_honoured():
    old = {"profiles": {"/usr/bin/a": {"passes": 5, "quiet_passes": 4}}}
    added = record(old, changed=["/usr/bin/a"])["profiles"]["/usr/bin/a"]
    got = (added["passes"], added["quiet_passes"], added["rules_added_last"], added["converged"])
    assert got == (6, 0, True, False)
    old = {"profiles": {"/usr/bin/a": {"passes": 3, "quiet_passes": 1}}}
    assert record(old, threshold="3")["profiles"]["/usr/bin/a"]["converged"] is False  # 2 quiet < 3
    old["profiles"]["/usr/bin/a"]["quiet_passes"] = 2
    assert record(old, threshold="3")["profiles"]["/usr/bin/a"]["converged"] is True


def test_pending_counts_children_and_names_come_from_record_tracked_and_result_if_defined_here():
    res = result(**{"/usr/bin/b": {"pending": [1, 2], "children": {"c": {"pending": [3]}, "d": {}}},
                    "/usr/bin/gone": {"pending": [1]}})
    old = {"profiles": {"/usr/bin/a": {"passes": 1, "quiet_passes": 1}, "/usr/bin/elsewhere": {"passes": 9}}}
    out = record(old, tracked=[], res=res)["profiles"]
    assert sorted(out) == ["/usr/bin/a", "/usr/bin/b"]  # the others are not defined on this host
    assert out["/usr/bin/b"]["pending"] == 3 and out["/usr/bin/a"]["pending"] == 0


def test_a_malformed_record_from_the_host_counts_as_no_history():
    for old in ([], "x", {"profiles": []}, {"profiles": {"/usr/bin/a": "junk"}},
                {"profiles": {"/usr/bin/a": {"passes": "many", "quiet_passes": None}}}):
        entry = record(old)["profiles"]["/usr/bin/a"]
        assert (entry["passes"], entry["quiet_passes"], entry["converged"]) == (1, 1, False), old


def test_quiet_passes_without_evidence_never_converge():
    """A profile nothing ran under stays quiet: without an event or a confined process it is not converged."""
    old = {"profiles": {"/usr/bin/a": {"passes": 4, "quiet_passes": 4}}}
    idle = record(old, events=[])["profiles"]["/usr/bin/a"]
    assert (idle["exercised"], idle["converged"]) == (False, False)
    child = record(old, events=[{"profile": "/usr/bin/a//null-/bin/ls"}])["profiles"]["/usr/bin/a"]
    assert (child["exercised"], child["converged"]) == (True, True)
    running = record(old, events=[], programs=["/usr/bin/a"],
                     processes={"/usr/bin/a": {"confined": 2, "unconfined": 0}})["profiles"]["/usr/bin/a"]
    assert (running["exercised"], running["confined"], running["converged"]) == (True, 2, True)
    sticky = record({"profiles": {"/usr/bin/a": dict(old["profiles"]["/usr/bin/a"], exercised=True)}}, events=[])
    assert sticky["profiles"]["/usr/bin/a"]["converged"] is True


def test_a_program_running_unconfined_blocks_convergence():
    old = {"profiles": {"/usr/bin/a": {"passes": 4, "quiet_passes": 4, "exercised": True}}}
    out = record(old, programs=[{"path": "/usr/sbin/d", "profile": "/usr/bin/a"}],
                 processes={"/usr/sbin/d": {"confined": 1, "unconfined": "3"}})["profiles"]["/usr/bin/a"]
    assert (out["unconfined"], out["converged"]) == (3, False)


# --- fetch names and plan ------------------------------------------------------------------------------------

def test_fetch_names_are_derived_on_the_controller_and_each_host_file_is_fetched_once():
    files = dict(FILES, alias="/etc/apparmor.d/usr.bin.a")
    names = passplan.fetch_names(["/usr/bin/a", "alias", "/usr/bin/b", "/not/here"], result(), files,
                                 conventional_file_name)
    assert names == {"usr.bin.a": "/etc/apparmor.d/usr.bin.a", "usr.bin.b": "/etc/apparmor.d/usr.bin.b"}


def test_fetch_names_fall_back_to_the_profiles_of_the_pass():
    names = passplan.fetch_names([], result(**{"/usr/bin/b": {}}), FILES, conventional_file_name)
    assert names == {"usr.bin.b": "/etc/apparmor.d/usr.bin.b"}


def test_counts_add_the_children_and_end_with_the_fleet_line():
    res = result(**{"/usr/bin/a": {"rules": [1, 2], "deny": [1], "pending": [1],
                                   "children": {"c": {"rules": [1], "deny": [], "pending": [1, 2]}}}})
    assert passplan.pass_counts(res, 4, "", "/ctl/profiles") == {
        "/usr/bin/a": "allowed=3 denied=1 pending=3",
        "(fleet)": "events=7 answers=4 pending file=- profiles dir=/ctl/profiles"}


# --- enforce plan --------------------------------------------------------------------------------------------

def status(mode="complain", loaded="complain", flags=(), enabled=True, errors=()):
    return {"kernel": {"enabled": enabled, "reason": "" if enabled else "no securityfs"},
            "files": {"usr.bin.a": {"path": "/d/usr.bin.a", "profiles": {"/usr/bin/a": {"mode": mode,
                                                                                       "flags": list(flags)}}}},
            "loaded": {"/usr/bin/a": loaded} if loaded else {}, "drift": {"errors": list(errors)}}


CONVERGED = {"profiles": {"/usr/bin/a": {"passes": 3, "quiet_passes": 2, "threshold": 1, "converged": True,
                                         "pending": 0}}}


def plan(st, rec=CONVERGED, programs=("/usr/bin/a",), profiles=(), force=False):
    out = passplan.enforce_plan(st, rec, list(programs), list(profiles), force)
    return [(e["profile"], e["action"], e["reason"]) for e in out]


def test_a_converged_profile_without_pending_answers_is_enforced():
    entry, = passplan.enforce_plan(status(), CONVERGED, ["/usr/bin/a"], [], False)
    assert entry == {"profile": "/usr/bin/a", "file": "/d/usr.bin.a", "mode_before": "complain",
                     "action": "enforce", "reason": "converged, no pending answers"}


def test_each_skip_reason_in_order():
    assert plan(status(enabled=False)) == [("/usr/bin/a", "skip", "AppArmor absent: no securityfs")]
    assert plan(status(), programs=["/usr/bin/z"]) == [("/usr/bin/z", "skip", "no profile file defines it")]
    broken = plan(status(errors=[{"path": "/d/x", "error": "syntax"}]), programs=["/usr/bin/z"])
    assert broken[0][2].startswith("no readable profile file defines it; 1 profile file(s) could not be parsed")
    assert "/d/x (syntax)" in broken[0][2]
    assert plan(status(flags=["unconfined", "attach_disconnected"])) == [
        ("/usr/bin/a", "skip", "unconfined stub (flags unconfined)")]
    assert plan(status(), rec={}) == [("/usr/bin/a", "skip", "not converged: never updated")]
    unconverged = {"profiles": {"/usr/bin/a": {"passes": 1, "quiet_passes": 1, "threshold": 2, "converged": False,
                                               "exercised": True}}}
    assert plan(status(), rec=unconverged) == [("/usr/bin/a", "skip", "not converged: 1 pass(es), 1 in a row "
                                                "without a new rule, 2 needed after 2 passes")]
    never = {"profiles": {"/usr/bin/a": dict(unconverged["profiles"]["/usr/bin/a"], exercised=False)}}
    assert plan(status(), rec=never)[0][2].startswith("never exercised: no pass read an event of it")
    unattached = {"profiles": {"/usr/bin/a": dict(unconverged["profiles"]["/usr/bin/a"], unconfined=2)}}
    assert plan(status(), rec=unattached)[0][2].startswith("not attached: 2 process(es) of its program run")
    pending = {"profiles": {"/usr/bin/a": dict(CONVERGED["profiles"]["/usr/bin/a"], pending="2")}}
    assert plan(status(), rec=pending) == [("/usr/bin/a", "skip", "pending answers: 2")]
    assert plan(status(mode="enforce", loaded="enforce")) == [("/usr/bin/a", "none", "already enforced")]


def test_force_skips_the_record_checks_but_never_the_host_ones():
    assert plan(status(flags=["unconfined"]), rec={}, force=True) == [("/usr/bin/a", "enforce", "forced")]
    assert plan(status(enabled=False), force=True)[0][1] == "skip"
    assert plan(status(), programs=["/usr/bin/z"], force=True)[0][1] == "skip"


def test_without_names_the_plan_covers_the_profiles_of_the_record():
    assert [p for p, _a, _r in plan(status(), programs=[])] == ["/usr/bin/a"]
    assert plan(status(), rec={}, programs=[]) == []
    assert plan(status(), rec="junk from the host", programs=[]) == []
