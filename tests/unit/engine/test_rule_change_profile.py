"""change_profile rules: apparmor.d(5) forms, corpus cases, compile, hostile profile names."""
import pytest
from hypothesis import given, settings
from rulekind_support import (
    EXAMPLES,
    PARSER,
    PARSER_MISSING,
    check_compiles,
    compile_queue,
    compile_rules,
    corpus_case,
    hostile_text,
    one_line,
)

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.change_profile import ChangeProfileRule

MAN_EXAMPLES = [
    "change_profile -> **,",
    "change_profile /bin/bash -> new_profile,",
    'change_profile /bin/bash -> "{new_profile1,new_profile2,new_profile3}",',
    "change_profile safe /bin/bash -> new_profile,",
    "change_profile unsafe /bin/bash -> new_profile,",
    "change_profile,",
    "audit deny change_profile -> unconfined,",
]


@pytest.mark.parametrize("text", MAN_EXAMPLES)
def test_parse_render(text):
    rule = parse_rule(text)
    assert isinstance(rule, ChangeProfileRule)
    assert rule.render() == text


def test_unquoted_brace_list_reads_like_quoted():
    assert parse_rule("change_profile /bin/bash -> {a,b},") == parse_rule('change_profile /bin/bash -> "{a,b}",')


@pytest.mark.parametrize("bad", ["change_profile safe -> x,", "change_profile /a /b -> x,", "change_profile -> a b,",
                                 "change_profile -> ,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        ChangeProfileRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("change_profile -> **,", "change_profile -> php-fpm//webapp,", True),
    ("change_profile -> php-fpm//*,", "change_profile -> php-fpm//webapp,", True),
    ("change_profile -> {a,b},", "change_profile -> c,", False),
    ("change_profile,", "change_profile /bin/x -> y,", True),
    # no exec mode means "safe" where the kernel supports it (apparmor.d(5)): it does not grant unsafe
    ("change_profile,", "change_profile unsafe /bin/x -> y,", False),
    ("change_profile /bin/x -> y,", "change_profile unsafe /bin/x -> y,", False),
    ("change_profile unsafe /bin/x -> y,", "change_profile /bin/x -> y,", True),
    ("change_profile -> y,", "change_profile /bin/x -> y,", True),
])
def test_covers(general, specific, expected):
    assert ChangeProfileRule.parse(general).covers(ChangeProfileRule.parse(specific)) is expected


@pytest.mark.parametrize("case", ["testcase_changeprofile_02", "testcase_changeprofile_03",
                                  "change_onexec_lp1648143", "testcase_dmesg_changeprofile_01"])
def test_corpus(case):
    events, expected = corpus_case(case)
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected
    assert [rule_from_event(ev).render("3.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_compile():
    # one profile per rule: the safe and unsafe forms of one exec conflict inside a single profile
    for text in MAN_EXAMPLES:
        ok, err = compile_rules([text])
        assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(target=hostile_text)
def test_fuzz_hostile_target(target):
    CASES["n"] += 1
    rule = rule_from_event({"kind": "change_profile", "target": target})
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.target) == target
    if "\x00" not in target:
        assert aaglob.matches(back.target, target)
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz change_profile: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
