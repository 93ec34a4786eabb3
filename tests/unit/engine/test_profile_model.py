"""Profile model: every real profile/abstraction and every corpus .profile parses and renders back
byte-identical; edits (rules, hats, flags) change only what was asked and compile with the real
apparmor_parser (includes resolved under /etc/apparmor.d)."""
import difflib
import glob
import os

import pytest
from armada_corpus import vendored_file
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecore_support import COUNTS, EXAMPLES, compile_profile, count, hostile_name, hostile_path

from ansible_collections.armada.apparmor.plugins.module_utils import profile_model as pm
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError

APPARMOR_D = "/etc/apparmor.d"
MAN = os.path.join(APPARMOR_D, "usr.bin.man")


def _corpus():
    from armada_corpus import corpus_dir

    return corpus_dir()


def _real_files():
    files = sorted(glob.glob(os.path.join(_corpus(), "*.profile")))
    files += [vendored_file("logprof", "ping.bin.ping")]
    for pattern in ("*", "abstractions/*", "abstractions/*/*", "tunables/*"):
        files += [f for f in sorted(glob.glob(os.path.join(APPARMOR_D, pattern))) if os.path.isfile(f)]
    return [f for f in files if os.path.exists(f)]


def _read(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def test_every_real_file_round_trips_and_every_rule_parses():
    files = _real_files()
    assert len(files) > 150
    rules = 0
    for path in files:
        text = _read(path)
        pf = pm.ProfileFile.parse(text, path)
        assert pf.render() == text, path
        for prof in pf.all_profiles():
            for pr in prof.rules:
                assert pr.rule is not None, (path, pr.text, pr.error)
                rules += 1
        for pr in pf.toplevel_rules:
            assert pr.rule is not None, (path, pr.text, pr.error)
            rules += 1
    print("\nprofile_model: %d files, %d rules parsed" % (len(files), rules))


def test_structure_of_ping_profile():
    text = _read(vendored_file("logprof", "ping.bin.ping"))
    pf = pm.ProfileFile.parse(text)
    assert pf.abi == "abi/5.0"
    assert [i.target for i in pf.includes] == ["tunables/global"]
    (prof,) = pf.profiles
    assert prof.name == "ping" and prof.attachment == "/{usr/,}bin/{,iputils-}ping"
    targets = [(i.target, i.if_exists) for i in prof.includes]
    assert targets[:4] == [("abstractions/base", False), ("abstractions/consoles", False),
                           ("abstractions/nameservice", False), ("local/bin.ping", True)]
    kinds = set(pr.rule.kind for pr in prof.rules)
    assert {"capability", "network", "file"} <= kinds


def test_children_hats_and_man_profile():
    pf = pm.ProfileFile.parse(_read(MAN))
    names = [p.full_name for p in pf.all_profiles()]
    assert names == ["/usr/bin/man", "man_groff", "man_filter"]
    text = "profile a /usr/bin/a {\n  /x r,\n  ^h1 {\n    /y r,\n  }\n  hat h2 {\n  }\n  profile c {\n  }\n}\n"
    pf = pm.ProfileFile.parse(text)
    assert [p.full_name for p in pf.all_profiles()] == ["a", "a//h1", "a//h2", "a//c"]
    assert pf.find("a//h1").is_hat and not pf.find("a//c").is_hat
    assert pf.find("/usr/bin/a") is pf.profiles[0]  # by attachment


def test_variables_and_comments():
    text = "@{X} = /a /b\n@{X} += \"/c d\"\n# top comment\n/p {\n  @{Y}=/q\n  /r r, # trailing\n}\n"
    pf = pm.ProfileFile.parse(text)
    assert pf.variables == {"X": ["/a", "/b", "/c d"]}
    assert pf.profiles[0].variables == {"Y": ["/q"]}
    comments = [s.text for s in pf.statements if s.kind == "comment"]
    assert comments == ["# top comment", "# trailing"]


def _diff(a, b):
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_add_rules_keeps_layout_and_compiles():
    original = _read(MAN)
    pf = pm.ProfileFile.parse(original)
    added = pf.add_rules("man_groff", [parse_rule("/srv/man/** r,"), "capability net_raw,"], comment="added by test")
    assert added == ["/srv/man/** r,", "capability net_raw,"]
    new = pf.render()
    # only three added lines, indented like their neighbours, inside man_groff
    assert _diff(original, new) == ["+  # added by test", "+  /srv/man/** r,", "+  capability net_raw,"]
    groff = pm.ProfileFile.parse(new).find("man_groff")
    assert parse_rule("/srv/man/** r,") in [pr.rule for pr in groff.rules]
    # again: nothing to add
    assert pf.add_rules("man_groff", ["/srv/man/** r,"]) == []
    ok, out = compile_profile(new)
    assert ok, out


def test_add_rules_refuses_bad_input_and_changes_nothing():
    pf = pm.ProfileFile.parse(_read(MAN))
    before = pf.render()
    with pytest.raises(RuleParseError):
        pf.add_rules("man_groff", ["/ok r,", "/x r, /** rwx,"])
    with pytest.raises(pm.ProfileError):
        pf.add_rules("no_such_profile", ["/ok r,"])
    assert pf.render() == before


def test_add_rules_one_line_profile_and_new_hat():
    pf = pm.ProfileFile.parse("profile x { /a r, }\n")
    pf.add_rules("x", ["/b w,"])
    assert [pr.rule.render() for pr in pf.find("x").rules] == ["/a r,", "/b w,"]
    pf.add_rules("x//null-/bin/true", ["/c r,"], create=True)
    hat = pf.find("x//null-/bin/true")
    assert hat is not None and hat.is_hat and [pr.rule.render() for pr in hat.rules] == ["/c r,"]
    ok, out = compile_profile(pf.render())
    assert ok, out


def test_add_include():
    pf = pm.ProfileFile.parse("include <tunables/global>\nprofile x {\n  /a r,\n}\n")
    assert pf.add_include("x", "abstractions/base") is True
    assert pf.add_include("x", "abstractions/base") is False
    with pytest.raises(pm.ProfileError):
        pf.add_include("x", "abstractions/x> /** rwx,")
    ok, out = compile_profile(pf.render())
    assert ok, out


HEADERS = [
    "/usr/bin/foo {\n  /a r,\n}\n",
    "profile foo /usr/bin/foo flags=(attach_disconnected) {\n  /a r,\n}\n",
    "profile foo flags=(complain, attach_disconnected) {\n}\n",
    'profile "foo bar" /usr/bin/foo {\n  ^hat {\n  }\n}\n',
]


@pytest.mark.parametrize("text", HEADERS)
def test_set_profile_mode_round_trip(text):
    for mode in ("complain", "kill", "unconfined", "enforce"):
        new = pm.set_profile_mode(text, None, mode)
        assert pm.get_profile_mode(new) == mode
        # other flags survive
        if "attach_disconnected" in text:
            assert "attach_disconnected" in pm.get_profile_flags(new)
        ok, out = compile_profile(new)
        assert ok, out
    # back to enforce; nothing else in the file changed except the header line(s)
    new = pm.set_profile_mode(pm.set_profile_mode(text, None, "complain"), None, "enforce")
    assert all(ln.lstrip("+-").rstrip().endswith("{") for ln in _diff(text, new))


def test_set_profile_mode_named_and_hats():
    text = HEADERS[3]
    new = pm.set_profile_mode(text, "foo bar", "complain")
    assert pm.get_profile_flags(new, "foo bar") == ["complain"]
    assert pm.get_profile_flags(new, "foo bar//hat") == ["complain"]  # nested hats follow
    assert pm.set_profile_mode(new, "foo bar", "complain") == new  # idempotent
    with pytest.raises(pm.ProfileError):
        pm.set_profile_mode(text, "nope", "complain")
    with pytest.raises(pm.ProfileError):
        pm.set_profile_mode(text, None, "sideways")


@pytest.mark.parametrize("bad", ["profile x {\n  /a r,\n", "}\n", "profile x {\n  /a r\n}\n",
                                 'profile x {\n  "/a r,\n}\n'])
def test_structural_errors(bad):
    with pytest.raises(pm.ProfileError):
        pm.ProfileFile.parse(bad)


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_name, st.sampled_from(["/a r,", "capability net_raw,"]))
def test_fuzz_hostile_hat_names(name, rule):
    """A hat named by a log (``//null-...`` children, hostile comm names) is written so the parser
    reads one hat with exactly that name, or refused with a clear error."""
    count("profile_model.hostile_hats")
    pf = pm.ProfileFile.parse("profile p {\n  /p r,\n}\n")
    try:
        pf.add_rules("p//" + name, [rule], create=True)
    except pm.ProfileError as exc:
        assert "hat name" in str(exc)
        count("profile_model.hostile_hats_refused")
        return
    hat = pm.ProfileFile.parse(pf.render()).find("p//" + name)
    assert hat is not None and hat.name == name
    ok, out = compile_profile(pf.render())
    assert ok, out


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None)  # each case compiles man + abstractions
@given(st.lists(hostile_path, min_size=1, max_size=3), st.sampled_from(["r", "w", "mr", "k"]))
def test_fuzz_hostile_rules_added_to_a_real_profile(paths, mask):
    """Rules built from hostile log paths, added to usr.bin.man: the file re-parses to exactly the old
    rules plus the new ones (no rule split, merged or swallowed by a comment) and compiles."""
    from ansible_collections.armada.apparmor.plugins.module_utils.rules import rule_from_event

    count("profile_model.hostile_rules")
    pf = pm.ProfileFile.parse(_read(MAN))
    before = [pr.rule for pr in pf.find("man_filter").rules]
    rules = [rule_from_event({"kind": "file", "path": p, "mask": {"requested": mask, "denied": mask}}) for p in paths]
    pf.add_rules("man_filter", rules)
    after = [pr.rule for pr in pm.ProfileFile.parse(pf.render()).find("man_filter").rules]
    expected = list(before)
    for rule in rules:
        if rule not in expected:
            expected.append(rule)
    assert after == expected
    ok, out = compile_profile(pf.render())
    assert ok, out


def test_zz_case_count():
    print("\nfuzz cases: %s" % {k: v for k, v in COUNTS.items() if k.startswith("profile_model.")})
    assert COUNTS.get("profile_model.hostile_hats", 0) >= min(EXAMPLES, 10)
    assert COUNTS.get("profile_model.hostile_rules", 0) >= 10


LOCAL = """# added by armada
/srv/#cache/** r,
/srv/a r,#a comment right after the comma
  /srv/b r,   # kept: another rule
# /srv/#cache/** r, (a comment, not a rule)
"""


def test_local_include_removes_a_rule_with_a_hash_in_its_path():
    # apparmor_parser reads '#' as a comment only where a token starts (line start, after a blank or a
    # ',' ending a rule): /srv/#cache/** is one path. The profile with this include compiles:
    ok, out = compile_profile("profile t {\n%s}\n" % LOCAL)
    assert ok, out
    inc = pm.LocalInclude.parse(LOCAL, "local/t")
    # the rule as the engine renders it ('"/srv/#cache/**" r,') removes the unquoted line written by hand
    gone = inc.remove_rules(None, [parse_rule('"/srv/#cache/**" r,'), parse_rule("/srv/a r,")])
    assert gone == ["/srv/#cache/** r,", "/srv/a r,"]
    assert inc.render() == "# added by armada\n  /srv/b r,   # kept: another rule\n" \
                           "# /srv/#cache/** r, (a comment, not a rule)\n"
    assert inc.remove_rules(None, [parse_rule("/srv/#cache/** r,")]) == []


def test_local_include_appends_only_missing_rules_under_a_comment():
    inc = pm.LocalInclude.parse("/srv/#cache/** r,", "local/t")  # no final newline
    rules = [parse_rule('"/srv/#cache/**"  r,'), parse_rule("/srv/new r,")]
    assert inc.append_rules(rules, comment="from\nanswers") == ["/srv/new r,"]
    assert inc.render() == "/srv/#cache/** r,\n# from answers\n/srv/new r,\n"
    assert inc.append_rules([parse_rule("/srv/new r,")]) == []


def test_remove_rules_from_a_profile_keeps_everything_else():
    text = "profile t {\n  /srv/#cache/** r,  # why\n  /srv/x r, /srv/y r,\n  include <abstractions/base>\n}\n"
    pf = pm.ProfileFile.parse(text)
    assert pf.remove_rules("t", [parse_rule("/srv/#cache/** r,"), parse_rule("/srv/y r,")]) == \
        ["/srv/#cache/** r,", "/srv/y r,"]
    assert pf.render() == "profile t {\n  /srv/x r, \n  include <abstractions/base>\n}\n"
    assert [r.text for r in pf.find("t").rules] == ["/srv/x r,"]
    assert pf.remove_rules("missing", [parse_rule("/srv/x r,")]) == []
