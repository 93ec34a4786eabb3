"""Rule.to_dict(abi): the ``text`` is the rendering for the ABI asked for (rules/base.py).

Expected texts from apparmor.d(5): ABI 3.0 network rules name only domain and type/protocol, so a rule
with accesses or addresses is written widened at 3.0 (allow rules only, docs/rule-kinds.md); ABI 4.0
writes ``network (access) domain type ip=.. port=.. peer=(..)``. ``userns`` exists from ABI 4.0 on.
"""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError

FINE = "network (send) inet stream ip=10.0.0.1 port=53,"


def test_text_follows_the_abi_asked_for():
    rule = parse_rule(FINE)
    assert rule.to_dict()["text"] == "network inet stream,"  # default stays ABI 3.0
    assert rule.to_dict("3.0")["text"] == "network inet stream,"
    assert rule.to_dict("4.0")["text"] == FINE
    assert rule.to_dict("abi/5.0")["text"] == FINE
    # the structured fields do not depend on the ABI: only the text does
    a, b = rule.to_dict("3.0"), rule.to_dict("4.0")
    a.pop("text"), b.pop("text")
    assert a == b and a["access"] == ["send"] and a["ip"] == "10.0.0.1" and a["port"] == 53


def test_no_text_when_the_abi_cannot_express_the_rule():
    rule = parse_rule("userns create,")
    assert "text" not in rule.to_dict("3.0")
    assert rule.to_dict("4.0")["text"] == "userns create,"


def test_unknown_abi_is_an_error_not_a_missing_text():
    with pytest.raises(RuleParseError):
        parse_rule("capability setuid,").to_dict("x")


@pytest.mark.parametrize("abi, text", [("3.0", "network inet stream,"), ("4.0", FINE)])
def test_to_rules_items_carry_the_text_of_their_abi(abi, text):
    event = {"kind": "network", "profile": "/usr/sbin/named", "host": "ns1", "family": "inet",
             "sock_type": "stream", "laddr": "10.0.0.1", "lport": 53, "id": "n1", "count": 1,
             "mask": {"requested": "send", "denied": "send"}}
    rules = to_rules([event], [], default="allow", abi=abi)["profiles"]["/usr/sbin/named"]["rules"]
    assert [r["text"] for r in rules] == [text]
