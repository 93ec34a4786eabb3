"""aa-logprof's interactive knowledge in the answers engine (issue 17, docs/answers.md).

Expectations are written from aa-logprof itself (apparmor-utils 3.0.8: aa.py build_x_functions, ask_exec,
ask_addhat, ask_the_questions; logprof.conf [qualifiers] and [globs]) and from apparmor.d(5), never from the
output of the code under test:
- exec qualifiers: /usr/bin/bash = icnu (no own profile: no bare px/Px/pix/Pix), /bin/mount = u (ux/Ux
  only), /usr/bin/cat = icn; a program outside the table gets every mode (ipcnu);
- mode: complain-mode (ALLOWED) events default to Allow, enforce-mode (DENIED) ones to Deny;
- hats: "Add hat" writes an empty ^hat into the profile; "Deny" writes nothing;
- breadth: /**, /*, writes to @{HOME}/** and profile "*" with match {} are refused without broad: true.
Rule texts are compiled with the real apparmor_parser (test_answers_to_rules.compiled).
"""
import os
import tempfile

import pytest
from test_answers_to_rules import FEATURES, compiled, fev, parser_or_none

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, breadth, host, suggest
from ansible_collections.armada.apparmor.plugins.module_utils.answers import AnswersError, to_rules, validate_answers

P = "/usr/sbin/nginx"


def compiled_with_tunables(texts):
    """Compile rule lines in a profile that includes tunables/global (the real ones, /etc/apparmor.d)."""
    parser = parser_or_none()
    if parser is None or not os.path.exists("/etc/apparmor.d/tunables/global"):
        pytest.skip("apparmor_parser / tunables not installed (make apt installs apparmor)")
    text = "abi <abi/3.0>,\ninclude <tunables/global>\nprofile armada_t {\n%s}\n" % "".join("  %s\n" % t for t in texts)
    with tempfile.NamedTemporaryFile("w", suffix=".aa", delete=False, encoding="utf-8") as fh:
        fh.write(text)
    try:
        err = host.validate(fh.name, parser, features_file=FEATURES if os.path.exists(FEATURES) else None)
    finally:
        os.unlink(fh.name)
    assert err is None, text + err


def exec_answer(path, mode, **kw):
    a = {"profile": P, "match": {"kind": "exec", "path": path}, "answer": "allow", "exec_mode": mode}
    if mode in ("ux", "Ux"):  # confirmed, as an unconfined child needs (issue 16; test_exec_targets.py)
        a["unconfined_exec"] = True
    a.update(kw)
    return a


def problems(answers, **kw):
    with pytest.raises(AnswersError) as err:
        validate_answers(answers, **kw)
    return [p["message"] for p in err.value.problems]


# ---- exec qualifiers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, mode", [
    ("/usr/bin/bash", "Px"), ("/usr/bin/bash", "px"), ("/usr/bin/bash", "Pix"), ("/bin/dash", "pix"),
    ("/usr/bin/bash", "PUx"), ("/usr/bin/mount", "ix"), ("/usr/bin/mount", "Cx"), ("/usr/bin/cat", "Ux"),
    ("/usr/bin/cat", "Px"), ("/usr/bin/python3", "ux"),
])
def test_answer_giving_a_program_a_mode_the_qualifiers_forbid_is_an_error(path, mode):
    msgs = problems([exec_answer(path, mode)])
    assert len(msgs) == 1 and ("exec mode %s is not allowed for %s" % (mode, path)) in msgs[0], msgs
    assert "apparmor_update_exec_qualifiers" in msgs[0]


@pytest.mark.parametrize("path, mode", [
    ("/usr/bin/bash", "ix"), ("/usr/bin/bash", "Cx"), ("/usr/bin/bash", "cix"), ("/usr/bin/bash", "Ux"),
    ("/usr/bin/bash", "Px -> other"), ("/usr/bin/bash", "CUx -> helper"), ("/usr/bin/mount", "Ux"),
    ("/usr/bin/cat", "Cx"), ("/usr/bin/cat", "Pix -> cat"),
    # outside the table every mode is offered, and the fallbacks apparmor.d(5) knows are accepted
    ("/usr/bin/logger", "Px"), ("/usr/bin/logger", "pux"), ("/usr/bin/logger", "PUx"), ("/usr/bin/logger", "cux"),
    ("/usr/bin/logger", "CUx"),
])
def test_modes_the_qualifiers_allow_are_accepted_and_compile(path, mode):
    r = compiled(to_rules([fev(path, "x", kind="exec")], [exec_answer(path, mode)]))
    assert len(r["profiles"][P]["rules"]) == 1, r
    assert r["profiles"][P]["rules"][0]["exec_mode"] == mode.split()[0]


def test_a_glob_answer_covering_a_restricted_program_is_an_error():
    msgs = problems([dict(exec_answer("/usr/bin/*", "Px"), glob="/usr/bin/*")])
    assert any("/usr/bin/bash" in m for m in msgs) and any("/usr/bin/mount" in m for m in msgs), msgs


def test_a_pattern_match_is_checked_per_event():
    answer = exec_answer("/usr/bin/*sh", "Px")
    r = to_rules([fev("/usr/bin/bash", "x", kind="exec"), fev("/usr/bin/fish", "x", kind="exec")], [answer])
    entry = r["profiles"][P]
    assert [x["text"] for x in entry["rules"]] == ["/usr/bin/fish Px,"]
    assert [x["path"] for x in entry["pending"]] == ["/usr/bin/bash"]
    assert "not allowed for /usr/bin/bash" in entry["pending"][0]["reason"]
    assert r["errors"] and "not allowed for /usr/bin/bash" in r["errors"][0]["message"]


def test_inventory_extends_the_table_exact_entries_replace_globs_restrict():
    ev = [fev("/usr/bin/bash", "x", kind="exec"), fev("/opt/tools/run", "x", kind="exec")]
    answers = [exec_answer("/usr/bin/bash", "Px"), exec_answer("/opt/tools/run", "Px")]
    with pytest.raises(AnswersError):
        to_rules(ev, answers)
    r = to_rules(ev, answers[:1], qualifiers={"/usr/bin/bash": "ipcnu"})
    assert [x["text"] for x in r["profiles"][P]["rules"]] == ["/usr/bin/bash Px,"]
    r = to_rules(ev, [exec_answer("/opt/tools/*", "Px")], qualifiers={"/opt/tools/*": "icn"})
    assert "not allowed for /opt/tools/run" in r["profiles"][P]["pending"][-1]["reason"]


@pytest.mark.parametrize("extra, needle", [
    ({"/usr/bin/bash": "ipx"}, "letters out of"), ({"/usr/bin/bash": ""}, "letters out of"),
    ({"/usr/bin/bash": "ii"}, "each once"), ({"bash": "i"}, "absolute"), ({"/usr/bin/{a": "i"}, "not a valid"),
    (["/usr/bin/bash"], "must be a mapping"),
])
def test_a_typo_in_the_inventory_table_is_an_error(extra, needle):
    with pytest.raises(ValueError) as err:
        to_rules([], [], qualifiers=extra)
    assert needle in str(err.value)


def test_pending_exec_offers_only_the_modes_the_table_allows():
    evs = [fev("/usr/bin/dash", "x", kind="exec"), fev("/usr/bin/mount", "x", kind="exec"),
           fev("/usr/bin/logger", "x", kind="exec")]
    entries = {e["match"]["path"]: e for e in suggest.pending_list(to_rules(evs, []))}
    # icnu: inherit, child, unconfined - never the program's own profile (no bare p)
    assert entries["/usr/bin/dash"]["suggestions"]["exec_modes"] == ["ix", "Cx", "Cix", "cx", "cix", "Ux", "ux"]
    assert entries["/usr/bin/mount"]["suggestions"]["exec_modes"] == ["Ux", "ux"]
    assert entries["/usr/bin/logger"]["suggestions"]["exec_modes"] == ["ix", "Px", "Cx", "Pix", "Cix", "px", "cx",
                                                                     "pix", "cix", "Ux", "ux"]
    # the inventory table reaches the pending file through to_rules
    extended = suggest.pending_list(to_rules(evs[:1], [], qualifiers={"/usr/bin/dash": "i"}))
    assert extended[0]["suggestions"]["exec_modes"] == ["ix"]


# ---- the mode decides the default -----------------------------------------------------------------------

def test_enforce_denial_is_never_allowed_by_default_allow_and_is_flagged():
    denied = fev("/etc/secret", "r", modes=["DENIED"])
    killed = fev("/etc/other", "r", modes=["KILLED"])
    complain = fev("/etc/nginx/nginx.conf", "r", modes=["ALLOWED"])
    both = fev("/etc/both", "r", modes=["ALLOWED", "DENIED"])  # merged: the profile was enforced at some point
    r = compiled(to_rules([denied, killed, complain, both], [], default="allow"))
    entry = r["profiles"][P]
    assert [x["text"] for x in entry["rules"]] == ["/etc/nginx/nginx.conf r,"]
    pending = {x["path"]: x for x in entry["pending"]}
    assert sorted(pending) == ["/etc/both", "/etc/other", "/etc/secret"]
    for item in pending.values():
        assert item["possible_intrusion"] is True and "possible intrusion" in item["reason"]
    block = {e["match"]["path"]: e for e in suggest.pending_list(r)}
    assert block["/etc/secret"]["possible_intrusion"] is True
    assert block["/etc/secret"]["suggestions"]["default_answer"] == "deny"
    validate_answers(list(block.values()))  # pastes back as is


def test_an_answer_naming_an_enforce_denial_decides_it():
    denied = fev("/etc/secret", "r", modes=["DENIED"])
    r = compiled(to_rules([denied], [{"profile": P, "match": {"kind": "file", "path": "/etc/secret"},
                                      "answer": "allow"}], default="allow"))
    assert [x["text"] for x in r["profiles"][P]["rules"]] == ["/etc/secret r,"]


def test_complain_mode_pending_suggests_allow_without_the_flag():
    r = to_rules([fev("/etc/x", "r", modes=["ALLOWED"])], [])
    item = suggest.pending_list(r)[0]
    assert item["suggestions"]["default_answer"] == "allow" and "possible_intrusion" not in item


# ---- hats -----------------------------------------------------------------------------------------------

APACHE = "/usr/sbin/apache2"


def hat_event(target, modes=("ALLOWED",), profile=APACHE):
    return {"kind": "change_hat", "profile": profile, "host": "web1", "target": target, "modes": list(modes),
            "operations": ["change_hat"], "count": 1, "id": "hat-" + target}


def test_an_allowed_change_hat_adds_the_hat():
    ans = {"profile": APACHE, "match": {"kind": "change_hat", "target": APACHE + "//HANDLING_UNTRUSTED_INPUT"},
           "answer": "allow"}
    r = to_rules([hat_event(APACHE + "//HANDLING_UNTRUSTED_INPUT")], [ans])
    child = r["profiles"][APACHE]["children"]["HANDLING_UNTRUSTED_INPUT"]
    assert child["hat"] is True and child["add_hat"] == {"events": ["hat-" + APACHE + "//HANDLING_UNTRUSTED_INPUT"],
                                                         "hosts": ["web1"], "answers": [0]}
    assert r["stats"]["allowed"] == 1 and r["profiles"][APACHE]["pending"] == []


def test_change_hat_from_inside_a_hat_goes_to_the_top_profile():
    ev = hat_event(APACHE + "//OTHER", profile=APACHE + "//DEFAULT_URI")
    r = to_rules([ev], [{"profile": APACHE, "match": {"kind": "change_hat"}, "answer": "allow"}])
    assert "add_hat" in r["profiles"][APACHE]["children"]["OTHER"]


def test_a_denied_hat_adds_nothing_and_a_foreign_target_stays_pending():
    deny = {"profile": APACHE, "match": {"kind": "change_hat"}, "answer": "deny"}
    r = to_rules([hat_event(APACHE + "//X")], [deny])
    assert r["profiles"][APACHE]["children"] == {} and "denies the hat" in r["profiles"][APACHE]["ignored"][0]["reason"]
    allow = dict(deny, answer="allow")
    r = to_rules([hat_event("/usr/sbin/other//X"), hat_event(APACHE + "//a//b")], [allow])
    assert r["profiles"][APACHE]["children"] == {}
    assert all("not a hat of" in p["reason"] for p in r["profiles"][APACHE]["pending"])


def test_pending_change_hat_shows_the_hat_and_enforce_hats_are_not_default_allowed():
    r = to_rules([hat_event(APACHE + "//H1"), hat_event(APACHE + "//H2", modes=["DENIED"])], [], default="allow")
    assert list(r["profiles"][APACHE]["children"]) == ["H1"]
    item = suggest.pending_list(r)[0]
    assert item["match"]["target"] == APACHE + "//H2" and item["suggestions"]["hat"] == "H2"
    assert item["possible_intrusion"] is True


# ---- too broad by accident ------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    {"profile": P, "match": {"kind": "file", "path": "/srv/x"}, "answer": "allow", "glob": "/**"},
    {"profile": P, "match": {"kind": "file", "path": "/srv"}, "answer": "allow", "glob": "/*"},
    {"profile": P, "match": {"kind": "file", "path": "/srv/x"}, "answer": "allow", "glob": "/*/**"},
    {"profile": P, "match": {"kind": "file", "path": "/home/bob/x"}, "answer": "allow", "glob": "@{HOME}/**"},
    {"profile": P, "match": {"kind": "file", "path": "/home/bob/x", "mask": "rw"}, "answer": "allow",
     "glob": "/home/**"},
    {"profile": "*", "match": {}, "answer": "allow"},
    {"profile": "**", "match": {"kind": "file"}, "answer": "allow"},
    {"profile": "*", "match": {"kind": "file", "path": "/**"}, "answer": "allow"},
    {"profile": "*", "match": {"kind": "capability", "mask": "x"}, "answer": "allow"},
])
def test_broad_answers_are_refused_unless_they_say_so(answer):
    msgs = problems([answer])
    assert msgs and all("broad: true" in m for m in msgs), msgs
    validate_answers([dict(answer, broad=True)])


@pytest.mark.parametrize("answer", [
    {"profile": P, "match": {"kind": "file", "path": "/home/bob/x", "mask": "r"}, "answer": "allow",
     "glob": "@{HOME}/**"},  # reading, not writing
    {"profile": P, "match": {"kind": "file", "path": "/etc/ssl/x"}, "answer": "allow", "glob": "/etc/ssl/**"},
    {"profile": P, "match": {"kind": "exec", "path": "/usr/bin/dash"}, "answer": "allow", "exec_mode": "ix",
     "glob": "/{,usr/}bin/dash"},
    {"profile": P, "match": {}, "answer": "allow"},  # one profile, everything: a learning answer, named
    {"profile": "*", "match": {"kind": "file", "path": "/etc/ssl/**"}, "answer": "allow"},
    {"profile": "*", "match": {}, "answer": "deny"},  # forbidding widely is not an accident
    {"profile": "*", "match": {"kind": "file", "path": "/**"}, "answer": "ignore"},
])
def test_narrow_answers_and_denies_are_not_broad(answer):
    validate_answers([answer])


def test_broad_must_be_a_boolean():
    msgs = problems([{"profile": "*", "match": {}, "answer": "allow", "broad": "yes"}])
    assert any("broad must be true or false" in m for m in msgs), msgs


def test_an_include_granting_home_writes_is_broad(tmp_path):
    abst = tmp_path / "abstractions"
    abst.mkdir()
    (abst / "user-write").write_text("owner @{HOME}/** w,\n")
    (abst / "wide").write_text("include <abstractions/narrow>\n/** r,\n")
    (abst / "narrow").write_text("/etc/ssl/certs/* r,\n")
    (tmp_path / "tunables").mkdir()
    (tmp_path / "tunables" / "global").write_text("@{HOME}=@{HOMEDIRS}/*/ /root/\n@{HOMEDIRS}=/home/\n")
    reader = breadth.include_reader(str(tmp_path))

    def inc(name, **kw):
        a = {"profile": P, "match": {"kind": "file", "path": "/etc/ssl/certs/a"}, "answer": "allow",
             "include": "abstractions/" + name}
        a.update(kw)
        return a
    msgs = problems([inc("user-write"), inc("wide")], include_rules=reader)
    assert len(msgs) == 2 and "user-write grants /home/*/**" in msgs[0] and "wide grants /**" in msgs[1], msgs
    validate_answers([inc("narrow"), inc("user-write", broad=True), inc("missing")], include_rules=reader)
    assert breadth.include_reader(str(tmp_path / "nowhere")) is None  # no abstractions: not judged


# ---- suggestions with tunables --------------------------------------------------------------------------

@pytest.mark.parametrize("path, tunable", [
    ("/home/bob/.config/app.conf", "@{HOME}/.config/app.conf"),
    ("/root/.bashrc", "@{HOME}/.bashrc"),
    ("/proc/4242/status", "@{PROC}/@{pid}/status"),
    ("/proc/4242/task/4243/comm", "@{PROC}/@{pid}/task/@{tid}/comm"),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/@{multiarch}/libssl.so.3"),
    ("/usr/lib/aarch64-linux-gnu/perl5/5.36/Socket.pm", "/usr/lib/@{multiarch}/perl{,5}/**"),
])
def test_tunable_suggestions_cover_the_path_and_paste_back(path, tunable):
    globs = suggest.glob_suggestions(path)
    assert tunable in globs
    variables = breadth.with_standard_variables(None)
    for g in globs:
        assert aaglob.matches(g, path, variables=variables), (g, path)
    ev = fev(path, "r")
    entry = suggest.pending_list(to_rules([ev], []))[0]
    entry.update(answer="allow", glob=tunable)
    rules = to_rules([ev], [entry], variables=variables)["profiles"][P]["rules"]
    assert [x["path"] for x in rules] == [tunable] and rules[0]["perms"] == "r"
    compiled_with_tunables([x["text"] for x in rules])
