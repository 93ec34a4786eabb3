"""Answers schema: validation errors name the offending answer; matching and precedence (docs/answers.md).

Expectations come from docs/answers.md and AppArmor glob semantics (``*`` stops at ``/``, ``**`` does
not), not from running the code.
"""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import answers as A


def ev(kind="file", profile="/usr/sbin/nginx", **kw):
    e = {"kind": kind, "profile": profile, "host": kw.pop("host", "web1"), "count": 1, "id": kw.pop("id", "e1")}
    if "mask" in kw:
        e["mask"] = {"requested": kw.pop("mask"), "denied": ""}
    e.update(kw)
    return e


def problems_of(answers):
    with pytest.raises(A.AnswersError) as info:
        A.validate_answers(answers)
    return info.value.problems


# ---- validation ----------------------------------------------------------------------------------

def test_valid_examples_from_the_issue_pass():
    answers = [
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/var/log/nginx/**"}, "answer": "allow",
         "glob": "/var/log/nginx/*.log", "owner": True, "audit": False},
        {"profile": "/usr/sbin/nginx", "match": {"kind": "exec", "path": "/usr/bin/logger"}, "answer": "allow",
         "exec_mode": "Px"},
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/etc/ssl/**"}, "answer": "allow",
         "include": "abstractions/ssl_certs"},
        {"profile": "*", "match": {"kind": "file", "path": "@{HOME}/.ssh/**"}, "answer": "deny"},
    ]
    # the first answer's glob /var/log/nginx/*.log does NOT cover /var/log/nginx/** (subdirectories,
    # other suffixes): the issue's own example is rejected, with the reason.
    probs = problems_of(answers)
    assert len(probs) == 1
    assert probs[0]["index"] == 0
    assert "does not cover" in probs[0]["message"]
    answers[0]["match"]["path"] = "/var/log/nginx/*.log"
    parsed = A.validate_answers(answers)
    assert [a.answer for a in parsed] == ["allow", "allow", "allow", "deny"]
    assert parsed[1].exec_mode == "Px"


def test_unknown_keys_are_reported_with_the_answer():
    bad = {"profile": "p", "match": {"kind": "file", "pth": "/x"}, "answer": "allow", "globb": "/x"}
    probs = problems_of([bad])
    msgs = " | ".join(p["message"] for p in probs)
    assert "globb" in msgs and "pth" in msgs
    assert all(p["answer"] is bad and p["index"] == 0 for p in probs)


def test_error_text_names_index_and_answer():
    with pytest.raises(A.AnswersError) as info:
        A.validate_answers([{"profile": "p", "match": {}, "answer": "allow"}, {"profile": "p", "match": {},
                                                                                 "answer": "maybe"}])
    text = str(info.value)
    assert "answer #1" in text and '"maybe"' in text


@pytest.mark.parametrize("answer, fragment", [
    ({"profile": "p", "match": {"kind": "exec", "path": "/bin/x"}, "answer": "allow", "exec_mode": "rx"},
     "not one of"),
    ({"profile": "p", "match": {"kind": "file", "path": "/x"}, "answer": "allow", "exec_mode": "ix"},
     "only allowed for exec"),
    ({"profile": "p", "match": {"kind": "exec", "path": "/bin/x"}, "answer": "allow", "exec_mode": "ix -> other"},
     "cannot have a named target"),
    ({"profile": "p", "match": {"kind": "exec", "path": "/bin/x"}, "answer": "allow", "exec_mode": "Ux",
      "exec_target": "t"}, "cannot have a named target"),
    ({"profile": "p", "match": {"kind": "exec", "path": "/bin/x"}, "answer": "allow"}, "needs exec_mode"),
    ({"profile": "p", "match": {"kind": "exec", "path": "/bin/x"}, "answer": "deny", "exec_mode": "ix"},
     "makes no sense"),
    ({"profile": "p", "match": {"kind": "capability"}, "answer": "allow", "glob": "/x"}, "file and exec"),
    ({"profile": "p", "match": {"kind": "file", "path": "/a/b"}, "answer": "allow", "glob": "/c/*"},
     "does not cover"),
    ({"profile": "p", "match": {"kind": "file", "path": "/a/**"}, "answer": "allow", "glob": "/a/*"},
     "does not cover"),
    ({"profile": "p", "match": {"kind": "file"}, "answer": "deny", "include": "abstractions/base"},
     "only meaningful with answer allow"),
    ({"profile": "p", "match": {"kind": "file"}, "answer": "allow", "include": "/etc/apparmor.d/x"},
     "relative path"),
    ({"profile": "p", "match": {"kind": "file"}, "answer": "allow", "include": "../../etc/shadow"},
     "relative path"),
    ({"profile": "p", "match": {"kind": "nope"}, "answer": "allow"}, "not an event kind"),
    ({"profile": "", "match": {}, "answer": "allow"}, "non-empty"),
    ({"profile": "p", "answer": "allow"}, "missing required key 'match'"),
    ({"profile": "p", "match": {"kind": "file"}, "answer": "allow", "owner": "yes"}, "true or false"),
    ({"profile": "p", "match": {"kind": "dbus"}, "answer": "allow", "owner": True}, "file and exec rules only"),
    ({"profile": "p", "match": {"path": {"a": 1}}, "answer": "allow"}, "value must be"),
    ({"profile": "p", "match": {"kind": "file", "path": "/a/{b"}, "answer": "allow", "glob": "/a/**"},
     "not a valid AppArmor pattern"),
])
def test_invalid_answers(answer, fragment):
    probs = problems_of([answer])
    assert any(fragment in p["message"] for p in probs), probs
    assert all(p["answer"] is answer for p in probs)


def test_not_a_list_and_not_a_mapping():
    assert "got a mapping" in problems_of({"profile": "p"})[0]["message"]
    assert "must be a mapping" in problems_of(["allow"])[0]["message"]
    assert A.validate_answers(None) == []


def test_list_of_lists_is_flattened_like_the_roles_concatenation():
    group = [{"profile": "p", "match": {"kind": "capability"}, "answer": "allow"}]
    host = [{"profile": "p", "match": {"kind": "file"}, "answer": "ignore"}]
    parsed = A.validate_answers([group, host])
    assert [(a.index, a.answer) for a in parsed] == [(0, "allow"), (1, "ignore")]


def test_informational_keys_of_a_pending_block_are_accepted():
    pasted = {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/srv/a", "mask": "r"},
              "answer": "allow", "owner": False,
              "suggestions": {"globs": ["/srv/a", "/srv/*"]}, "hosts": ["w1"], "counts": {"w1": 2},
              "reason": "no answer matches", "id": "abcd"}
    assert A.validate_answers([pasted])[0].answer == "allow"


def test_exec_mode_arrow_form_and_exec_target():
    a = A.validate_answers([{"profile": "p", "match": {"kind": "exec"}, "answer": "allow",
                             "exec_mode": "Px -> logger"}])[0]
    assert (a.exec_mode, a.exec_target) == ("Px", "logger")
    b = A.validate_answers([{"profile": "p", "match": {"kind": "exec"}, "answer": "allow",
                             "exec_mode": "Cx", "exec_target": "helper"}])[0]
    assert (b.exec_mode, b.exec_target) == ("Cx", "helper")


# ---- matching ------------------------------------------------------------------------------------

def one(answer):
    return A.validate_answers([answer])[0]


def test_path_globs_follow_apparmor_semantics():
    star = one({"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/var/log/nginx/*"},
                "answer": "allow"})
    assert A.answer_matches(star, ev(path="/var/log/nginx/a.log"), "/usr/sbin/nginx")
    assert not A.answer_matches(star, ev(path="/var/log/nginx/old/a.log"), "/usr/sbin/nginx")
    dstar = one({"profile": "/usr/sbin/nginx", "match": {"path": "/var/log/nginx/**"}, "answer": "allow"})
    assert A.answer_matches(dstar, ev(path="/var/log/nginx/old/a.log"), "/usr/sbin/nginx")
    assert not A.answer_matches(dstar, ev(path="/var/log/nginxx/a"), "/usr/sbin/nginx")


def test_kind_and_profile_must_match():
    a = one({"profile": "/usr/sbin/nginx", "match": {"kind": "file"}, "answer": "allow"})
    assert not A.answer_matches(a, ev(kind="capability", capname="chown"), "/usr/sbin/nginx")
    assert not A.answer_matches(a, ev(), "/usr/sbin/apache2")


def test_star_profile_means_every_profile_and_globs_do_not_cross_slash():
    every = one({"profile": "*", "match": {}, "answer": "ignore"})
    assert A.answer_matches(every, ev(), "/usr/sbin/nginx")
    usr = one({"profile": "/usr/sbin/*", "match": {}, "answer": "ignore"})
    assert A.answer_matches(usr, ev(), "/usr/sbin/nginx")
    assert not A.answer_matches(usr, ev(), "/usr/sbin/x//hat")


def test_literal_profile_name_with_glob_characters_matches_itself():
    name = "/usr{,{/lib,/lib32,/lib64}/wine}/bin/wine{,-preloader,server}{,-staging-*,-vanilla-*}"
    a = one({"profile": name, "match": {}, "answer": "allow"})
    assert A.answer_matches(a, ev(profile=name), name)


def test_mask_matches_when_requested_is_a_subset():
    a = one({"profile": "p", "match": {"kind": "file", "mask": "rw"}, "answer": "allow"})
    assert A.answer_matches(a, ev(mask="r"), "p")
    assert A.answer_matches(a, ev(mask="wr"), "p")
    assert not A.answer_matches(a, ev(mask="rwk"), "p")
    d = one({"profile": "p", "match": {"kind": "dbus", "mask": "send"}, "answer": "allow"})
    assert A.answer_matches(d, ev(kind="dbus", mask="send"), "p")
    assert not A.answer_matches(d, ev(kind="dbus", mask="receive send"), "p")


def test_capability_by_name_and_number_and_lists_mean_any():
    a = one({"profile": "p", "match": {"kind": "capability", "capability": ["setuid", "net_raw"]}, "answer": "allow"})
    assert A.answer_matches(a, ev(kind="capability", capability=7, capname="setuid"), "p")
    assert not A.answer_matches(a, ev(kind="capability", capability=0, capname="chown"), "p")
    n = one({"profile": "p", "match": {"capability": 7}, "answer": "allow"})
    assert A.answer_matches(n, ev(kind="capability", capability=7, capname="setuid"), "p")


def test_escaped_glob_characters_are_literal():
    a = one({"profile": "p", "match": {"path": "/tmp/a\\*"}, "answer": "allow"})
    assert A.answer_matches(a, ev(path="/tmp/a*"), "p")
    assert not A.answer_matches(a, ev(path="/tmp/ab"), "p")


def test_variables_expand_when_known_and_match_nothing_when_unknown():
    a = one({"profile": "*", "match": {"path": "@{HOME}/.ssh/**"}, "answer": "deny"})
    variables = {"HOME": ["/home/*/", "/root/"]}
    assert A.answer_matches(a, ev(path="/home/bob/.ssh/id_rsa"), "p", variables)
    assert A.answer_matches(a, ev(path="/root/.ssh/id_rsa"), "p", variables)
    assert not A.answer_matches(a, ev(path="/home/bob/.ssh/id_rsa"), "p", {})


def test_host_key_requires_every_host_to_match():
    a = one({"profile": "p", "match": {"host": "web*"}, "answer": "allow"})
    merged = ev()
    merged["hosts"] = {"web1": 1, "web2": 3}
    assert A.answer_matches(a, merged, "p")
    merged["hosts"]["db1"] = 1
    assert not A.answer_matches(a, merged, "p")


# ---- precedence ----------------------------------------------------------------------------------

def test_deny_wins_over_a_more_specific_allow_and_the_conflict_is_reported():
    answers = A.validate_answers([
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/home/bob/.ssh/known_hosts"},
         "answer": "allow"},
        {"profile": "*", "match": {"path": "/home/*/.ssh/**"}, "answer": "deny"},
    ])
    d = A.decide(answers, ev(path="/home/bob/.ssh/known_hosts"), "/usr/sbin/nginx")
    assert d.answer.index == 1 and d.conflict_with.index == 0


def test_more_specific_answer_wins_then_list_order():
    answers = A.validate_answers([
        {"profile": "*", "match": {"kind": "file", "path": "/srv/**"}, "answer": "ignore"},
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/srv/**"}, "answer": "allow"},
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/srv/www/**"}, "answer": "ignore"},
        {"profile": "/usr/sbin/nginx", "match": {"kind": "file", "path": "/srv/www/**"}, "answer": "allow"},
    ])
    # exact profile beats the "*" answer; longer literal /srv/www/ beats /srv/; tie -> earlier (#2)
    assert A.decide(answers, ev(path="/srv/www/x"), "/usr/sbin/nginx").answer.index == 2
    assert A.decide(answers, ev(path="/srv/data/x"), "/usr/sbin/nginx").answer.index == 1
    assert A.decide(answers, ev(path="/srv/data/x"), "/usr/sbin/apache2").answer.index == 0


def test_pending_answers_only_apply_when_nothing_else_matches():
    answers = A.validate_answers([
        {"profile": "p", "match": {"kind": "file", "path": "/a/b"}, "answer": "pending"},
        {"profile": "p", "match": {"kind": "file", "path": "/a/*"}, "answer": "allow"},
    ])
    assert A.decide(answers, ev(path="/a/b"), "p").answer.index == 1
    only = A.validate_answers([answers[0].raw])
    assert A.decide(only, ev(path="/a/b"), "p").answer.answer == "pending"
    assert A.decide(only, ev(path="/a/c"), "p").answer is None
