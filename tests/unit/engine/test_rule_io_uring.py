"""io_uring rules (ABI 4.0+): parse/render, ABI gate, corpus case, hostile labels (parse-back only:
the 3.0.8 parser does not know the keyword)."""
import pytest
from aa_support import PARSER, PARSER_MISSING
from hypothesis import given, settings
from rulekind_support import EXAMPLES, compile_rules, corpus_case, hostile_text, one_line

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.io_uring import IoUringRule


@pytest.mark.parametrize("text,canonical", [
    ("io_uring,", "io_uring,"), ("io_uring sqpoll,", "io_uring sqpoll,"),
    ("io_uring (override_creds, sqpoll),", "io_uring (override_creds, sqpoll),"),
    ("io_uring override_creds label=foo,", "io_uring override_creds label=foo,"),
    ('deny io_uring label=("a b"),', 'deny io_uring label="a b",'),
])
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, IoUringRule)
    assert rule.render("5.0") == canonical
    with pytest.raises(AbiError):
        rule.render("3.0")


@pytest.mark.parametrize("bad", ["io_uring fly,", "io_uring label=a label=b,", "io_uring peer=x,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        IoUringRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("io_uring,", "io_uring override_creds label=x,", True),
    ("io_uring sqpoll,", "io_uring override_creds,", False),
    ("io_uring override_creds label=/usr/bin/*,", "io_uring override_creds label=/usr/bin/x,", True),
    ("io_uring override_creds label=a,", "io_uring override_creds,", False),
])
def test_covers(general, specific, expected):
    assert IoUringRule.parse(general).covers(IoUringRule.parse(specific)) is expected


def test_corpus():
    events, expected = corpus_case("testcase_io_uring_01")
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected


def test_override_creds_event_names_the_label():
    ev = {"kind": "io_uring", "mask": {"requested": "override_creds", "denied": "override_creds"},
          "target": "/usr/bin/x"}
    assert rule_from_event(ev).render("4.0") == "io_uring override_creds label=/usr/bin/x,"


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_parser_30_rejects_the_keyword():
    ok, _err = compile_rules(["io_uring sqpoll,"])
    assert not ok


CASES = {"n": 0}


@settings(max_examples=EXAMPLES, deadline=None)
@given(label=hostile_text)
def test_fuzz_hostile_label(label):
    CASES["n"] += 1
    ev = {"kind": "io_uring", "mask": {"requested": "override_creds", "denied": "override_creds"}, "target": label}
    rule = rule_from_event(ev)
    text = rule.render("5.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.label) == label


def test_zz_fuzz_case_count():
    print("fuzz io_uring: %d cases" % CASES["n"])
    assert CASES["n"] > 0


def test_access_from_operation_when_no_mask():
    # kernel operation names: uring_sqpoll and uring_override (override_creds)
    assert rule_from_event({"kind": "io_uring", "operations": ["uring_sqpoll"]}).render("4.0") == "io_uring sqpoll,"
    ev = {"kind": "io_uring", "operations": ["uring_override"], "target": "lbl"}
    assert rule_from_event(ev).render("4.0") == "io_uring override_creds label=lbl,"
