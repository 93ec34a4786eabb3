"""Signal rules: parse every apparmor.d(5) form, render, coverage, corpus, compile, hostile peers.

Expected texts come from apparmor.d(5) examples and the corpus case testcase_signal_01.
"""
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
from ansible_collections.armada.apparmor.plugins.module_utils.rules.signal import SignalRule

MAN_EXAMPLES = [
    ("signal,", "signal,"),
    ("deny signal (send) set=(hup, int),", "deny signal send set=(hup, int),"),
    ("signal (receive) peer=unconfined,", "signal receive peer=unconfined,"),
    ("signal (send) peer=/usr/bin/foo,", "signal send peer=/usr/bin/foo,"),
    ('signal (receive, send) set=("exists"),', "signal (receive, send) set=exists,"),
    ("signal peer=@{profile_name},", "signal peer=@{profile_name},"),
    ("signal set=(rtmin+0 rtmin+32),", "signal set=(rtmin+0, rtmin+32),"),
    ("audit signal rw set=term set=kill peer=x,  # c", "audit signal (receive, send) set=(kill, term) peer=x,"),
    ("signal w,", "signal send,"),
]


@pytest.mark.parametrize("text,canonical", MAN_EXAMPLES)
def test_parse_render_man_examples(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, SignalRule)
    assert rule.render() == canonical
    assert parse_rule(rule.render()) == rule


@pytest.mark.parametrize("bad", ["signal (fly),", "signal set=(nosuchsig),", "signal peer=a peer=b,",
                                 "signal send, signal receive,", "signal peer=\"a,", "signal bogus=1,"])
def test_bad_rules_rejected(bad):
    with pytest.raises(RuleParseError):
        SignalRule.parse(bad)


def test_qualifiers_and_comment_kept():
    rule = SignalRule.parse("audit deny signal send peer=foo, # why")
    assert rule.audit and rule.deny and rule.comment == "why"
    assert rule.render_line() == "audit deny signal send peer=foo,  # why"


@pytest.mark.parametrize("general,specific,expected", [
    ("signal,", "signal send set=term peer=/usr/bin/x,", True),
    ("signal send,", "signal (send, receive),", False),
    ("signal (send, receive) set=(term, kill),", "signal send set=term,", True),
    ("signal send set=term,", "signal send,", False),  # all signals is more than term
    ("signal peer=/usr/bin/*,", "signal peer=/usr/bin/foo,", True),
    ("signal peer=/usr/bin/*,", "signal peer=/usr/bin/a/b,", False),  # * does not cross /
    ("signal peer=/usr/bin/**,", "signal peer=/usr/bin/a/b,", True),
    ("signal peer=foo,", "signal,", False),
    ("deny signal,", "signal send,", False),  # deny never covers allow
    ("signal,", "audit signal,", False),  # non-audit does not cover audit
    ("audit signal,", "signal,", True),
])
def test_covers(general, specific, expected):
    assert SignalRule.parse(general).covers(SignalRule.parse(specific)) is expected


def test_covers_with_variables():
    gen = SignalRule.parse("signal peer=@{APP}/*,")
    spec = SignalRule.parse("signal peer=/opt/app/x,")
    assert gen.covers(spec, {"APP": ["/opt/app", "/srv/app"]})
    assert not gen.covers(spec, {"APP": ["/srv/app"]})


def test_corpus_signal_01():
    events, expected = corpus_case("testcase_signal_01")
    rules = [rule_from_event(ev) for ev in events]
    assert [r.render("5.0") for r in rules] == expected
    assert [r.render("3.0") for r in rules] == expected


def test_event_without_mask_or_signal_gives_broad_parts_only():
    rule = SignalRule.from_event({"kind": "signal", "peer": "p"})
    assert rule.render() == "signal peer=p,"
    assert SignalRule.from_event({"kind": "signal", "signal": "bogus", "peer": "p"}) is None
    assert SignalRule.from_event({"kind": "ptrace"}) is None


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_renderings_compile():
    lines = [SignalRule.parse(t).render("3.0") for t, _c in MAN_EXAMPLES]
    ok, err = compile_rules(lines)
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(name=hostile_text)
def test_fuzz_hostile_peer(name):
    """A hostile peer label yields one line that parses back to the same rule, matches exactly that
    label, and compiles (ABI 3.0)."""
    CASES["n"] += 1
    rule = SignalRule.from_event({"kind": "signal", "mask": {"requested": "send", "denied": "send"},
                                  "signal": "term", "peer": name})
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule
    assert pattern_literal(back.peer) == name
    if "\x00" not in name:
        assert aaglob.matches(back.peer, name)
        assert not aaglob.matches(back.peer, name + "x")
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    """Report how many hostile cases ran (run with -s to see it); the fuzz test above must have run."""
    print("fuzz signal: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]


def test_unrepresentable_surrogate_is_a_clear_error():
    # U+D800 is not an undecodable byte (those are U+DC80..U+DCFF): no UTF-8 profile can hold it.
    rule = SignalRule.from_event({"kind": "signal", "signal": "term", "peer": "a\ud800b"})
    with pytest.raises(RuleParseError, match="surrogate"):
        rule.render()
    assert "text" not in rule.to_dict()
    # an undecodable log byte is written as that byte, octal-escaped, and read back the same
    rule = SignalRule.from_event({"kind": "signal", "signal": "term", "peer": "a\udcffb"})
    assert rule.render() == 'signal set=term peer="a\\377b",'
    assert parse_rule(rule.render()) == rule


def test_numeric_signal_from_older_records():
    # signal(7): 15 is SIGTERM, 9 is SIGKILL; 34 is SIGRTMIN (rtmin+0)
    for number, name in ((15, "term"), (9, "kill"), (34, "rtmin+0")):
        rule = SignalRule.from_event({"kind": "signal", "signal": str(number), "peer": "p",
                                      "mask": {"requested": "send", "denied": "send"}})
        assert rule.render() == "signal send set=%s peer=p," % name
