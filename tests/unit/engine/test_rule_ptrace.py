"""Ptrace rules: apparmor.d(5) forms, coverage, the corpus' garbage cases, compile, hostile peers."""
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
from ansible_collections.armada.apparmor.plugins.module_utils.rules.ptrace import PtraceRule

MAN_EXAMPLES = [
    ("ptrace,", "ptrace,"),
    ("ptrace (read, readby, trace, tracedby),", "ptrace (read, readby, trace, tracedby),"),
    ("deny ptrace (trace),", "deny ptrace trace,"),
    ("ptrace (readby, tracedby) peer=unconfined,", "ptrace (readby, tracedby) peer=unconfined,"),
    ("ptrace (trace) peer=/usr/bin/foo,", "ptrace trace peer=/usr/bin/foo,"),
    ("ptrace rw peer=\"/opt/my app\",", "ptrace (read, trace) peer=\"/opt/my app\","),
    ("ptrace r,", "ptrace read,"),
]


@pytest.mark.parametrize("text,canonical", MAN_EXAMPLES)
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, PtraceRule)
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


@pytest.mark.parametrize("bad", ["ptrace (peek),", "ptrace peer=a peer=b,", "ptrace set=term,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        PtraceRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("ptrace,", "ptrace read peer=foo,", True),
    ("ptrace read,", "ptrace trace,", False),
    ("ptrace (read, trace) peer=/usr/bin/*,", "ptrace read peer=/usr/bin/x,", True),
    ("ptrace read peer=foo,", "ptrace read,", False),
    ("ptrace read,", "ptrace,", False),
])
def test_covers(general, specific, expected):
    assert PtraceRule.parse(general).covers(PtraceRule.parse(specific)) is expected


def test_corpus_garbage_target_yields_no_rule():
    # ptrace_garbage_lp1689667_1 has target="" and no mask: the corpus profile has no rule.
    events, expected = corpus_case("ptrace_garbage_lp1689667_1")
    assert expected == []
    assert [rule_from_event(ev) for ev in events] == [None]


def test_event_rule():
    ev = {"kind": "ptrace", "mask": {"requested": "read", "denied": "read"}, "peer": "unconfined"}
    assert rule_from_event(ev).render() == "ptrace read peer=unconfined,"


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_renderings_compile():
    ok, err = compile_rules([PtraceRule.parse(t).render("3.0") for t, _c in MAN_EXAMPLES])
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(name=hostile_text)
def test_fuzz_hostile_peer(name):
    CASES["n"] += 1
    rule = PtraceRule.from_event({"kind": "ptrace", "mask": {"requested": "trace", "denied": "trace"}, "peer": name})
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.peer) == name
    if "\x00" not in name:
        assert aaglob.matches(back.peer, name) and not aaglob.matches(back.peer, name + "x")
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz ptrace: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
