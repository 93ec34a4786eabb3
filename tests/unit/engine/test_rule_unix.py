"""Unix socket rules: apparmor.d(5) forms, the aa-logprof label/address coverage bug, corpus cases,
ABI 3.0 limits, compile, hostile abstract addresses and labels."""
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
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.unix import UnixRule

MAN_EXAMPLES = [
    ("unix,", "unix,"),
    ("unix (create, listen, accept, connect, send, receive, getattr, setattr, setopt, getopt),",
     "unix (accept, connect, create, getattr, getopt, listen, receive, send, setattr, setopt),"),
    ("deny unix,", "deny unix,"),
    ("unix peer=(label=@{profile_name}),", "unix peer=(label=@{profile_name}),"),
    ("unix (receive) peer=(label=unconfined),", "unix (receive) peer=(label=unconfined),"),
    ("unix (getattr, shutdown) addr=none,", "unix (getattr, shutdown) addr=none,"),
    ('unix (connect, receive, send) type=stream peer=(label=/foo,addr="@bar"),',
     "unix (connect, receive, send) type=stream peer=(addr=@bar label=/foo),"),
    ("unix (accept, receive) addr=@foo peer=(label=/bar),", "unix (accept, receive) addr=@foo peer=(label=/bar),"),
    ("unix addr=@*,", "unix addr=@*,"),
    ("unix bind addr=auto,", "unix (bind) addr=auto,"),
    # r/w are receive/send: the kernel defines AA_MAY_RECEIVE as AA_MAY_READ, AA_MAY_SEND as AA_MAY_WRITE
    ("unix rw peer=(label=x),", "unix (receive, send) peer=(label=x),"),
]


@pytest.mark.parametrize("text,canonical", MAN_EXAMPLES)
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, UnixRule)
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


@pytest.mark.parametrize("bad", ["unix (fly),", "unix addr=/run/x.sock,", "unix peer=(addr=x),",
                                 "unix peer=(pid=1),", "unix addr=@a addr=@b,", "unix peer=(label=a"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        UnixRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    # the aa-logprof bug: a peer label rule restricted to one address must not cover another address
    ("unix (send) peer=(label=foo addr=@a),", "unix (send) peer=(label=foo addr=@b),", False),
    ("unix (send) peer=(label=foo),", "unix (send) addr=@b,", False),
    ("unix (send) peer=(label=foo addr=@a),", "unix (send) peer=(label=foo),", False),
    # a label-only rule does not restrict the address: it covers a rule with the same label and any addr
    ("unix (send) peer=(label=foo),", "unix (send) peer=(label=foo addr=@b),", True),
    ("unix (send) peer=(label=foo),", "unix (send) peer=(label=bar addr=@b),", False),
    ("unix,", "unix (connect, send) type=stream peer=(addr=@x),", True),
    # no access list + peer part: only peer permissions are implied (apparmor.d(5))
    ("unix peer=(label=foo),", "unix (bind) peer=(label=foo),", False),
    ("unix peer=(label=foo),", "unix (connect, receive, send, accept) peer=(label=foo),", True),
    ("unix (send) type=stream,", "unix (send) type=dgram,", False),
    ("unix (send) addr=@sock*,", "unix (send) addr=@sock1,", True),
    ("unix (send) addr=@sock*,", "unix (send) addr=none,", False),
])
def test_covers(general, specific, expected):
    assert UnixRule.parse(general).covers(UnixRule.parse(specific)) is expected


@pytest.mark.parametrize("case", ["testcase_unix_01", "testcase_unix_02"])
def test_corpus(case):
    events, expected = corpus_case(case)
    assert [rule_from_event(ev).render("5.0") for ev in events] == expected


def test_corpus_requested_without_denied_gives_no_rule():
    events, expected = corpus_case("testcase_unix_no_denied_issue541")
    assert expected == []
    assert [rule_from_event(ev) for ev in events] == [None]


def test_filesystem_socket_gives_no_unix_rule():
    ev = {"kind": "unix", "family": "unix", "sock_type": "stream", "mask": {"requested": "connect",
          "denied": "connect"}, "peer_addr": "/run/dbus/system_bus_socket"}
    assert UnixRule.from_event(ev) is None


def test_abi30_rejects_what_parser_30_rejects():
    for text in ("unix protocol=0,", "unix attr=x,", "unix opt=y,", "unix label=z,"):
        rule = UnixRule.parse(text)
        with pytest.raises(AbiError):
            rule.render("3.0")
        assert rule.render("4.0") == text


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_renderings_compile():
    lines = [UnixRule.parse(t).render("3.0") for t, _c in MAN_EXAMPLES]
    for case in ("testcase_unix_01", "testcase_unix_02"):
        lines += [rule_from_event(ev).render("3.0") for ev in corpus_case(case)[0]]
    ok, err = compile_rules(lines)
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(addr=hostile_text, peer_addr=hostile_text)
def test_fuzz_hostile_addresses(addr, peer_addr):
    CASES["n"] += 1
    ev = {"kind": "unix", "family": "unix", "sock_type": "stream", "addr": "@" + addr, "peer_addr": "@" + peer_addr,
          "mask": {"requested": "send", "denied": "send"}}
    rule = rule_from_event(ev)
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule
    assert pattern_literal(back.addr) == "@" + addr and pattern_literal(back.peer_addr) == "@" + peer_addr
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(label=hostile_text, addr=hostile_text)
def test_fuzz_hostile_peer_label(label, addr):
    CASES["n"] += 1
    rule = UnixRule(frozenset(["connect", "send"]), sock_type="stream", peer_addr="@" + _esc(addr),
                    peer_label=_esc(label))
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.peer_label) == label
    check_compiles(text, LATER)


def _esc(text):
    # AppArmor's rule: a backslash makes the next glob special literal (apparmor.d(5) "AARE"); '^' is
    # literal outside [...] (apparmor_parser -D rule-exprs reads `a^b` as `a\^b`), so it is not escaped.
    return "".join("\\" + c if c in "*?[]{}\\" else c for c in text)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz unix: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
