"""userns rules (ABI 4.0+): parse/render, ABI gate, corpus case. The 3.0.8 parser does not know the
keyword (checked below), so newer-ABI output is compared with the corpus text only."""
import pytest
from aa_support import PARSER, PARSER_MISSING
from rulekind_support import compile_rules, corpus_case

from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.userns import UsernsRule


@pytest.mark.parametrize("text,canonical", [("userns,", "userns,"), ("userns create,", "userns create,"),
                                            ("userns (create),", "userns create,"),
                                            ("audit deny userns create,", "audit deny userns create,")])
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, UsernsRule)
    assert rule.render("4.0") == canonical
    with pytest.raises(AbiError):
        rule.render("3.0")
    assert "text" not in rule.to_dict()  # no 3.0 text for a rule 3.0 cannot express


@pytest.mark.parametrize("bad", ["userns destroy,", "userns create peer=x,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        UsernsRule.parse(bad)


def test_covers():
    assert UsernsRule.parse("userns,").covers(UsernsRule.parse("userns create,"))
    assert UsernsRule.parse("userns create,").covers(UsernsRule.parse("userns,"))  # create is the only access
    assert not UsernsRule.parse("deny userns,").covers(UsernsRule.parse("userns create,"))


def test_corpus():
    events, expected = corpus_case("testcase_userns_01")
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_parser_30_rejects_the_keyword():
    # Why render("3.0") refuses: the installed 3.0.8 parser does not compile it.
    ok, _err = compile_rules(["userns create,"])
    assert not ok
