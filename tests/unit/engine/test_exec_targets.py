"""Exec targets get profiles (issue 16, docs/answers.md "Where an executed program's accesses go").

Expectations come from aa-logprof (apparmor-utils 3.0.8, aa.py ask_exec/handle_children) and apparmor.d(5):
a ``Px``/``Pix``/``PUx`` target runs in its own profile (named after the program, or the ``->`` name), so the
accesses the kernel logged as ``PARENT//null-PROGRAM`` while the exec had no rule belong to that profile; a
``Cx`` target runs in the child profile ``PARENT//NAME``; ``ix`` inherits the parent. ``ux``/``Ux`` leave the
child unconfined and need ``unconfined_exec: true``. Profiles are compiled with the real apparmor_parser -QK.
"""
import os
import tempfile

import pytest
from aa_support import PARSER, PARSER_MISSING
from test_answers_to_rules import FEATURES

from ansible_collections.armada.apparmor.plugins.module_utils import host, passplan
from ansible_collections.armada.apparmor.plugins.module_utils.answers import AnswersError, to_rules, validate_answers
from ansible_collections.armada.apparmor.plugins.module_utils.profile_model import ProfileFile

P = "/usr/local/bin/fetcher"
CURL = "/usr/bin/curl"
NULL = P + "//null-" + CURL


def ev(label, path, mask="r", kind="file", host_name="web1"):
    return {"kind": kind, "profile": label, "host": host_name, "path": path, "modes": ["ALLOWED"],
            "mask": {"requested": mask, "denied": mask}, "count": 1, "id": "%s|%s|%s" % (label, path, mask)}


# what the lab kernel logs for a complain-mode parent running curl without an exec rule
EVENTS = [ev(P, CURL, "x", kind="exec"), ev(NULL, CURL, "r"), ev(NULL, "/etc/ssl/openssl.cnf", "r"),
          ev(NULL, "/etc/ssl/certs/ca-certificates.crt", "r")]


def exec_answer(mode, **kw):
    a = {"profile": P, "match": {"kind": "exec", "path": CURL}, "answer": "allow", "exec_mode": mode}
    a.update(kw)
    return a


def texts(entry):
    return sorted(r["text"] for r in entry["rules"])


def compile_text(text):
    """apparmor_parser -QK the profile text (with the real tunables and abstractions); fail with its message."""
    if PARSER is None:
        pytest.skip(PARSER_MISSING)
    with tempfile.NamedTemporaryFile("w", suffix=".aa", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        err = host.validate(fh.name, PARSER, features_file=FEATURES if os.path.exists(FEATURES) else None)
    finally:
        os.unlink(fh.name)
    assert err is None, text + err


def profile_text(header, rules, flags="complain"):
    body = "".join("  %s\n" % r for r in rules)
    return "abi <abi/3.0>,\ninclude <tunables/global>\n%s flags=(%s) {\n  include <abstractions/base>\n%s}\n" % (
        header, flags, body)


@pytest.mark.parametrize("mode, exec_rule", [("Px", "/usr/bin/curl Px,"), ("Pix", "/usr/bin/curl mrPix,"),
                                             ("px", "/usr/bin/curl px,"), ("PUx", "/usr/bin/curl PUx,")])
def test_px_target_accesses_become_rules_of_its_own_profile(mode, exec_rule):
    r = to_rules(EVENTS, [exec_answer(mode)], default="allow")
    parent, target = r["profiles"][P], r["profiles"][CURL]
    assert texts(parent) == [exec_rule]
    assert texts(target) == ["/etc/ssl/certs/ca-certificates.crt r,", "/etc/ssl/openssl.cnf r,"]
    assert parent["children"] == {}  # nothing folded into the parent, no null- hat
    assert target["exec_target"] == {"path": CURL, "parents": [P]} and parent["exec_targets"] == [CURL]
    # the program's read of its own binary is covered by the exec answer (aa-logprof never asks about it)
    assert [i["path"] for i in target["ignored"]] == [CURL]
    compile_text(profile_text("profile %s" % P, texts(parent)))
    compile_text(profile_text("profile %s" % CURL, texts(target)))


def test_named_px_target_gets_the_profile_named_after_the_arrow():
    r = to_rules(EVENTS, [exec_answer("Px -> fetcher_curl")], default="allow")
    assert texts(r["profiles"][P]) == ["/usr/bin/curl Px -> fetcher_curl,"]
    target = r["profiles"]["fetcher_curl"]
    assert texts(target) == ["/etc/ssl/certs/ca-certificates.crt r,", "/etc/ssl/openssl.cnf r,"]
    assert target["exec_target"] == {"path": CURL, "parents": [P]}
    assert CURL not in r["profiles"]
    compile_text(profile_text("profile %s" % P, texts(r["profiles"][P])))
    compile_text(profile_text("profile fetcher_curl %s" % CURL, texts(target)))


def test_px_target_questions_are_asked_for_the_target_profile():
    r = to_rules(EVENTS, [exec_answer("Px")])  # default pending: the child's reads are questions
    assert r["profiles"][P]["pending"] == []
    pending = r["profiles"][CURL]["pending"]
    assert sorted(p["path"] for p in pending) == ["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/openssl.cnf"]
    assert {p["label"] for p in pending} == {CURL}
    # and an answer written for the target profile decides them
    r = to_rules(EVENTS, [exec_answer("Px"), {"profile": CURL, "match": {"kind": "file", "path": "/etc/ssl/**"},
                                              "answer": "allow"}])
    assert texts(r["profiles"][CURL]) == ["/etc/ssl/certs/ca-certificates.crt r,", "/etc/ssl/openssl.cnf r,"]


def test_px_target_without_child_events_is_still_created():
    r = to_rules(EVENTS[:1], [exec_answer("Px")])
    assert r["profiles"][CURL]["exec_target"] == {"path": CURL, "parents": [P]}
    assert texts(r["profiles"][CURL]) == []


def test_a_pattern_answer_creates_no_profile_from_names_a_host_logged():
    evs = [ev(P, "/usr/bin/made-up", "x", kind="exec"), ev(P + "//null-/usr/bin/made-up", "/etc/x", "r")]
    answer = {"profile": P, "match": {"kind": "exec", "path": "/usr/bin/*"}, "answer": "allow", "exec_mode": "Px"}
    r = to_rules(evs, [answer], default="allow")
    assert list(r["profiles"]) == [P], list(r["profiles"])
    assert "/etc/x r," in texts(r["profiles"][P])  # folded as before: the reviewer sees them in the parent


@pytest.mark.parametrize("mode, name", [("Cx", CURL), ("Cix", CURL), ("Cx -> curl_child", "curl_child")])
def test_cx_target_accesses_go_to_a_child_profile_that_compiles(mode, name):
    r = to_rules(EVENTS, [exec_answer(mode)], default="allow")
    parent = r["profiles"][P]
    assert list(r["profiles"]) == [P]
    child = parent["children"][name]
    assert texts(child) == ["/etc/ssl/certs/ca-certificates.crt r,", "/etc/ssl/openssl.cnf r,"]
    assert child["add_child"] == {"attachment": CURL} and "hat" not in child
    # written by the profile model the rules module uses: a child profile in the parent's mode
    pf = ProfileFile.parse(profile_text("profile %s" % P, []), "/etc/apparmor.d/x")
    pf.add_rules(P, [r_["text"] for r_ in parent["rules"]])
    pf.add_rules(P + "//" + name, [r_["text"] for r_ in child["rules"]], create=True, attachment=CURL)
    text = pf.render()
    header = "profile %s%s flags=(complain) {" % (name, "" if name == CURL else " " + CURL)
    assert header in text, text
    assert pf.find(P + "//" + name) is not None
    compile_text(text)


def test_ix_folds_into_the_parent():
    r = to_rules(EVENTS, [exec_answer("ix")], default="allow")
    assert list(r["profiles"]) == [P]
    assert texts(r["profiles"][P]) == ["/etc/ssl/certs/ca-certificates.crt r,", "/etc/ssl/openssl.cnf r,",
                                       "/usr/bin/curl mrix,"]
    assert r["profiles"][P]["children"] == {}
    compile_text(profile_text("profile %s" % P, texts(r["profiles"][P])))


@pytest.mark.parametrize("mode", ["ux", "Ux"])
def test_unconfined_exec_needs_unconfined_exec_true(mode):
    with pytest.raises(AnswersError) as err:
        validate_answers([exec_answer(mode)])
    assert "unconfined_exec: true" in str(err.value) and "unconfined" in str(err.value)
    r = to_rules(EVENTS, [exec_answer(mode, unconfined_exec=True)], default="allow")
    assert "/usr/bin/curl %s," % mode in texts(r["profiles"][P])


def test_unconfined_exec_on_a_confined_mode_is_an_error():
    with pytest.raises(AnswersError) as err:
        validate_answers([exec_answer("Px", unconfined_exec=True)])
    assert "only confirms an unconfined exec mode" in str(err.value)


# ---- tracking and enforcing the targets with their parent ---------------------------------------------------

def _record(**profiles):
    return {"version": 1, "profiles": profiles}


def test_convergence_record_keeps_the_targets_and_tracking_follows_them():
    result = to_rules(EVENTS, [exec_answer("Px")], default="allow")
    files = {P: "/etc/apparmor.d/fetcher", CURL: "/etc/apparmor.d/usr.bin.curl"}
    rec = passplan.convergence_record({}, [P], result, files, [P, CURL], 1)
    assert rec["profiles"][P]["exec_targets"] == [CURL]
    assert "exec_targets" not in rec["profiles"][CURL]
    assert passplan.tracked_profiles([P], [], rec) == [P, CURL]
    assert passplan.tracked_profiles([P], []) == [P]
    # a later pass without the exec event keeps the link
    rec2 = passplan.convergence_record(rec, [P, CURL], to_rules([], []), files, [], 1)
    assert rec2["profiles"][P]["exec_targets"] == [CURL]


def _status(modes):
    files = dict(("f%d" % i, {"path": "/etc/apparmor.d/f%d" % i, "profiles": {n: {"mode": m, "flags": [m]}}})
                 for i, (n, m) in enumerate(sorted(modes.items())))
    return {"kernel": {"enabled": True}, "files": files, "loaded": dict(modes)}


def _plan(record, programs=(P,)):
    status = _status({P: "complain", CURL: "complain"})
    return dict((e["profile"], e) for e in passplan.enforce_plan(status, record, list(programs), [], False))


def test_enforce_plan_rolls_out_a_parent_with_its_px_target():
    done = {"passes": 3, "quiet_passes": 2, "threshold": 1, "converged": True, "pending": 0, "exercised": True}
    plan = _plan(_record(**{P: dict(done, exec_targets=[CURL]), CURL: dict(done)}))
    assert {n: e["action"] for n, e in plan.items()} == {P: "enforce", CURL: "enforce"}


def test_enforce_plan_holds_the_parent_back_while_its_target_learns_and_vice_versa():
    done = {"passes": 3, "quiet_passes": 2, "threshold": 1, "converged": True, "pending": 0, "exercised": True}
    learning = {"passes": 1, "quiet_passes": 0, "threshold": 1, "converged": False, "pending": 0, "exercised": True}
    plan = _plan(_record(**{P: dict(done, exec_targets=[CURL]), CURL: learning}))
    assert plan[P]["action"] == "skip" and CURL in plan[P]["reason"] and "together" in plan[P]["reason"]
    assert plan[CURL]["action"] == "skip" and plan[CURL]["reason"].startswith("not converged")
    plan = _plan(_record(**{P: dict(learning, exec_targets=[CURL]), CURL: done}))
    assert plan[CURL]["action"] == "skip" and P in plan[CURL]["reason"]
    assert plan[P]["action"] == "skip"


def test_a_program_the_px_target_runs_follows_the_target_not_the_first_parent():
    """P//null-CURL//null-/usr/bin/cat: cat was run by curl; its accesses go where curl's profile runs it."""
    nested = NULL + "//null-/usr/bin/cat"
    evs = EVENTS + [ev(NULL, "/usr/bin/cat", "x", kind="exec"), ev(nested, "/etc/hostname", "r")]
    r = to_rules(evs, [exec_answer("Px")], default="allow")
    assert "/etc/hostname r," in texts(r["profiles"][CURL]) and "/etc/hostname r," not in texts(r["profiles"][P])
    # curl's exec of cat is a question for curl's profile
    assert [(p["path"], p["label"]) for p in r["profiles"][CURL]["pending"]] == [("/usr/bin/cat", CURL)]
    # answered there with ix, cat's reads stay in curl's profile
    r = to_rules(evs, [exec_answer("Px"), {"profile": CURL, "match": {"kind": "exec", "path": "/usr/bin/cat"},
                                           "answer": "allow", "exec_mode": "ix"}], default="allow")
    assert texts(r["profiles"][CURL]) == ["/etc/hostname r,", "/etc/ssl/certs/ca-certificates.crt r,",
                                          "/etc/ssl/openssl.cnf r,", "/usr/bin/cat mrix,"]
    # without the Px answer everything folds into the first parent, as before
    r = to_rules(evs, [exec_answer("ix")], default="allow")
    assert list(r["profiles"]) == [P] and "/etc/hostname r," in texts(r["profiles"][P])


def test_coverage_checks_a_null_child_against_where_the_exec_rule_runs_it():
    """A logged access of P//null-CURL is covered by the rules of the profile P's exec rule runs curl in."""
    from ansible_collections.armada.apparmor.plugins.module_utils.coverage import ProfileIndex
    read = ev(NULL, "/etc/ssl/openssl.cnf", "r")
    px = "profile %s {\n  /usr/bin/curl Px,\n}\nprofile %s {\n  /etc/ssl/** r,\n}\n" % (P, CURL)
    assert ProfileIndex.from_text(px).decision(read) == "allow"
    cx = "profile %s {\n  /usr/bin/curl Cx -> kid,\n  profile kid /usr/bin/curl {\n    /etc/ssl/** r,\n  }\n}\n" % P
    assert ProfileIndex.from_text(cx).decision(read) == "allow"
    # the parent's own rules do not cover what runs in the target's profile
    px_parent_rule = "profile %s {\n  /usr/bin/curl Px,\n  /etc/ssl/** r,\n}\nprofile %s {\n}\n" % (P, CURL)
    assert ProfileIndex.from_text(px_parent_rule).decision(read) is None
    ix = "profile %s {\n  /usr/bin/curl mrix,\n  /etc/ssl/** r,\n}\n" % P
    assert ProfileIndex.from_text(ix).decision(read) == "allow"
