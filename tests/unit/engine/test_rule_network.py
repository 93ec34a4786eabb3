"""Network rules: the ABI 3.0 form (compiled by apparmor_parser 3.0.8), the 4.0+/5.0 forms with
accesses and addresses (checked against the corpus text only: the 3.0.8 parser rejects them)."""
import pytest
from aa_support import PARSER, PARSER_MISSING
from hypothesis import given, settings
from hypothesis import strategies as st
from rulekind_support import EXAMPLES, compile_rules, corpus_case, hostile_text, one_line

from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.network import NetworkRule

MAN_30 = ["network,", "network tcp,", "network inet tcp,", "network inet6 tcp,", "network netlink raw,",
          "network packet raw,", "network inet stream,", "audit deny network bluetooth,", "network unix dgram,"]


@pytest.mark.parametrize("text", MAN_30)
def test_abi30_forms_roundtrip(text):
    rule = parse_rule(text)
    assert isinstance(rule, NetworkRule)
    assert rule.render("3.0") == text
    assert rule.render("5.0") == text


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_forms_compile():
    ok, err = compile_rules(MAN_30)
    assert ok, err


NEW_FORMS = [
    "network (send) inet dgram ip=127.187.243.54 port=3457 peer=(ip=127.0.97.3 port=3456),",
    "network (getattr) inet6 dgram ip=::ffff:127.0.0.1 port=53131,",
    "network (setopt) inet dgram,",
    "network inet stream port=765 peer=(port=2049),",
    "network (connect, send) inet6 stream peer=(ip=fd74:1820:b03a:b361::cf32),",
]


@pytest.mark.parametrize("text", NEW_FORMS)
def test_new_forms_roundtrip(text):
    rule = parse_rule(text)
    assert rule.render("5.0") == text
    assert rule.render("4.0") == text


def test_abi30_downgrade_allow_and_refuse_deny():
    # On an ABI 3.0 kernel only family/type are mediated: the allow rule is written as such...
    rule = parse_rule(NEW_FORMS[0])
    assert rule.render("3.0") == "network inet dgram,"
    # ...but a deny rule would deny far more than asked: refused.
    deny = parse_rule("deny " + NEW_FORMS[0])
    with pytest.raises(AbiError):
        deny.render("3.0")
    assert parse_rule("deny network inet dgram,").render("3.0") == "deny network inet dgram,"


@pytest.mark.parametrize("bad", ["network inet stream dgram,", "network ip=1.2.3.999,", "network port=70000,",
                                 "network (fly) inet,", "network inet ip=1.2.3.4 ip=1.2.3.5,", "network bogus,",
                                 'network inet ip="1.2.3.4, /** rwx",'])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        NetworkRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("network,", "network (send) inet dgram ip=1.2.3.4 port=5,", True),
    ("network inet,", "network inet6 stream,", False),
    ("network inet,", "network inet stream,", True),
    ("network inet stream,", "network inet,", False),
    ("network (send) inet dgram,", "network (send, receive) inet dgram,", False),
    ("network inet dgram ip=1.2.3.4,", "network (send) inet dgram ip=1.2.3.4 port=9,", True),
    ("network inet dgram ip=1.2.3.4,", "network (send) inet dgram ip=1.2.3.5,", False),
    ("network inet6 ip=::1,", "network inet6 ip=0::1,", True),  # same address, other spelling
    ("network inet peer=(port=53),", "network inet peer=(ip=1.1.1.1 port=53),", True),
    ("network inet peer=(port=53),", "network inet,", False),
])
def test_covers(general, specific, expected):
    assert NetworkRule.parse(general).covers(NetworkRule.parse(specific)) is expected


CORPUS = ["testcase_network_02", "testcase_network_03", "testcase_network_05", "testcase_network_06",
          "testcase_network_08", "testcase_network_09", "testcase_network_11", "testcase_network_12",
          "file_perm_network_lp1466812", "file_perm_network_receive_lp1577051", "testcase33"]


@pytest.mark.parametrize("case", CORPUS)
def test_corpus_abi50(case):
    events, expected = corpus_case(case)
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_corpus_events_abi30_compile():
    lines = []
    for case in CORPUS:
        for ev in corpus_case(case)[0]:
            text = rule_from_event(ev).render("3.0")
            # 3.0 is family/type only: the text is the 5.0 text without accesses and addresses
            assert "(" not in text and "=" not in text
            lines.append(text)
    assert "network inet dgram," in lines and "network packet raw," in lines
    ok, err = compile_rules(lines)
    assert ok, err


def test_event_edge_cases():
    base = {"kind": "network", "family": "inet", "sock_type": "stream"}
    # unknown family: no rule rather than a wider one
    assert NetworkRule.from_event(dict(base, family="family")) is None
    # unknown type: left out
    assert NetworkRule.from_event(dict(base, sock_type="unknown(1234)")).render() == "network inet,"
    # a hostile address never reaches the text
    rule = NetworkRule.from_event(dict(base, laddr="1.2.3.4, /** rwx", lport=80,
                                       mask={"requested": "send", "denied": "send"}))
    assert rule.render("5.0") == "network (send) inet stream port=80,"
    # local-only access: no peer part even when the record names one (testcase_network_12)
    rule = NetworkRule.from_event(dict(base, faddr="1.1.1.1", fport=5, mask={"requested": "bind", "denied": "bind"}))
    assert rule.render("5.0") == "network (bind) inet stream,"


# DOMAIN in apparmor.d(5) (3.0.8) plus "mctp" (AppArmor 4 address family list)
MAN_DOMAINS = {
    "unix", "inet", "ax25", "ipx", "appletalk", "netrom", "bridge", "atmpvc", "x25", "inet6", "rose",
    "netbeui", "security", "key", "netlink", "packet", "ash", "econet", "atmsvc", "rds", "sna", "irda",
    "pppox", "wanpipe", "llc", "ib", "mpls", "can", "tipc", "bluetooth", "iucv", "rxrpc", "isdn", "phonet",
    "ieee802154", "caif", "alg", "nfc", "vsock", "kcm", "qipcrtr", "smc", "xdp", "mctp", "unspec",
}
CASES = {"n": 0}


@settings(max_examples=EXAMPLES, deadline=None)
@given(laddr=hostile_text, faddr=hostile_text, family=st.one_of(hostile_text, st.sampled_from(["inet", "inet6"])),
       sock_type=st.one_of(hostile_text, st.just("dgram")))
def test_fuzz_hostile_fields(laddr, faddr, family, sock_type):
    """Logged address/family/type text is validated, never copied: one line, parses back the same."""
    CASES["n"] += 1
    ev = {"kind": "network", "family": family, "sock_type": sock_type, "laddr": laddr, "faddr": faddr,
          "lport": 1, "fport": 2, "mask": {"requested": "send", "denied": "send"}}
    rule = NetworkRule.from_event(ev)
    if family not in MAN_DOMAINS:
        assert rule is None  # not a family name apparmor.d(5) lists: no rule rather than a wider one
        return
    for abi in ("3.0", "5.0"):
        text = rule.render(abi)
        assert one_line(text)
        assert laddr not in text.split() or laddr in ("inet", "inet6", "dgram")
        back = parse_rule(text)
        assert back.render(abi) == text
    assert parse_rule(rule.render("5.0")) == rule


def test_zz_fuzz_case_count():
    print("fuzz network: %d cases" % CASES["n"])
    assert CASES["n"] > 0
