"""pivot_root rules: apparmor.d(5) examples, corpus case, compile, hostile paths and profile names."""
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

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.pivot_root import PivotRootRule

MAN_EXAMPLES = [
    "pivot_root,",
    "pivot_root oldroot=/mnt/root/old/,",
    "pivot_root /mnt/root/,",
    "pivot_root oldroot=/mnt/root/old/ /mnt/root/,",
    "pivot_root oldroot=/mnt/root/old/ /mnt/root/ -> /mnt/root/sbin/init,",
    "deny pivot_root -> foo,",
]


@pytest.mark.parametrize("text", MAN_EXAMPLES)
def test_parse_render(text):
    rule = parse_rule(text)
    assert isinstance(rule, PivotRootRule)
    assert rule.render() == text


@pytest.mark.parametrize("bad", ["pivot_root /a/ /b/,", "pivot_root /a/ oldroot=/b/,", "pivot_root -> a -> b,",
                                 "pivot_root newroot=/x/,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        PivotRootRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("pivot_root,", "pivot_root oldroot=/a/old/ /a/,", True),
    ("pivot_root oldroot=/mnt/**,", "pivot_root oldroot=/mnt/a/old/ /mnt/a/,", True),
    ("pivot_root /mnt/a/,", "pivot_root /mnt/b/,", False),
    ("pivot_root /mnt/a/,", "pivot_root,", False),
    ("pivot_root /mnt/a/,", "pivot_root /mnt/a/ -> prof,", True),
    ("pivot_root /mnt/a/ -> prof,", "pivot_root /mnt/a/,", False),
])
def test_covers(general, specific, expected):
    assert PivotRootRule.parse(general).covers(PivotRootRule.parse(specific)) is expected


def test_corpus():
    events, expected = corpus_case("testcase_pivotroot_01")
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected
    assert [rule_from_event(ev).render("3.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_compile():
    lines = MAN_EXAMPLES + [rule_from_event(ev).render("3.0") for ev in corpus_case("testcase_pivotroot_01")[0]]
    ok, err = compile_rules(lines)
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(old=hostile_text, new=hostile_text, target=hostile_text)
def test_fuzz_hostile(old, new, target):
    CASES["n"] += 1
    rule = PivotRootRule.from_event({"kind": "pivot_root", "srcname": "/" + old + "/", "path": "/" + new + "/"})
    rule.target = "".join("\\" + c if c in "*?[]{}\\" else c for c in target)  # AARE escape ('^' literal)
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule
    assert [pattern_literal(back.oldroot), pattern_literal(back.newroot), pattern_literal(back.target)] == [
        "/" + old + "/", "/" + new + "/", target]
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz pivot_root: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
