"""mqueue rules (ABI 4.0+): parse/render, ABI gate, every corpus mqueue case, hostile queue names
(parse-back only: the 3.0.8 parser does not know the keyword)."""
import pytest
from aa_support import PARSER, PARSER_MISSING
from hypothesis import given, settings
from rulekind_support import EXAMPLES, compile_rules, corpus_case, hostile_text, one_line

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.mqueue import MqueueRule


@pytest.mark.parametrize("text,canonical", [
    ("mqueue,", "mqueue,"),
    ("mqueue read type=posix /queuename,", "mqueue read type=posix /queuename,"),
    ("mqueue (read, write) type=sysv 123,", "mqueue (read, write) type=sysv 123,"),
    ("mqueue rw label=foo /q,", "mqueue (read, write) label=foo /q,"),
    ('deny mqueue delete "/my queue",', 'deny mqueue delete "/my queue",'),
])
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, MqueueRule)
    assert rule.render("5.0") == canonical
    with pytest.raises(AbiError):
        rule.render("3.0")


@pytest.mark.parametrize("bad", ["mqueue fly,", "mqueue type=msg,", "mqueue /a /b,", "mqueue /a type=posix,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        MqueueRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("mqueue,", "mqueue read type=posix /q,", True),
    ("mqueue type=posix,", "mqueue read type=sysv 1,", False),
    ("mqueue (read, write) type=posix /q*,", "mqueue read type=posix /queue,", True),
    ("mqueue read type=posix /q,", "mqueue write type=posix /q,", False),
    ("mqueue read type=sysv 123,", "mqueue read type=sysv,", False),
])
def test_covers(general, specific, expected):
    assert MqueueRule.parse(general).covers(MqueueRule.parse(specific)) is expected


@pytest.mark.parametrize("case", ["testcase_mqueue_02", "testcase_mqueue_03", "testcase_mqueue_05",
                                  "testcase_mqueue_06", "testcase_mqueue_08", "testcase_mqueue_09"])
def test_corpus(case):
    events, expected = corpus_case(case)
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_parser_30_rejects_the_keyword():
    ok, _err = compile_rules(["mqueue read type=posix /q,"])
    assert not ok


CASES = {"n": 0}


@settings(max_examples=EXAMPLES, deadline=None)
@given(name=hostile_text)
def test_fuzz_hostile_queue_name(name):
    CASES["n"] += 1
    ev = {"kind": "mqueue", "class": "posix_mqueue", "path": "/" + name, "mask": {"requested": "read",
                                                                                  "denied": "read"}}
    rule = rule_from_event(ev)
    text = rule.render("5.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.name) == "/" + name


def test_zz_fuzz_case_count():
    print("fuzz mqueue: %d cases" % CASES["n"])
    assert CASES["n"] > 0
