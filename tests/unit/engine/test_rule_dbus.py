"""D-Bus rules: apparmor.d(5) forms, coverage, the corpus dbus cases, journald records, compile,
hostile bus/path/interface/member/name/label values."""

import pytest
from armada_corpus import vendored_file
from hypothesis import given, settings
from hypothesis import strategies as st
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

from ansible_collections.armada.apparmor.plugins.module_utils import logparse
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.dbus import DbusRule

MAN_EXAMPLES = [
    ("dbus,", "dbus,"),
    ("dbus (send, receive, bind),", "dbus (bind, receive, send),"),
    ("deny dbus bus=session,", "deny dbus bus=session,"),
    ("dbus bind name=com.example.ExampleName,", "dbus bind name=com.example.ExampleName,"),
    ("dbus receive path=/com/example/path interface=com.example.Interface,",
     "dbus receive path=/com/example/path interface=com.example.Interface,"),
    ("dbus send\n bus=session\n path=/com/example/path\n interface=com.example.Interface\n member=ExampleMethod\n"
     " peer=(name=(com.example.ExampleName1|com.example.ExampleName2)),",
     'dbus send bus=session path=/com/example/path interface=com.example.Interface member=ExampleMethod '
     'peer=(name="com.example.ExampleName1|com.example.ExampleName2"),'),
    ("dbus receive peer=(label=unconfined),", "dbus receive peer=(label=unconfined),"),
    ("audit dbus eavesdrop bus=system,", "audit dbus eavesdrop bus=system,"),
    ('dbus rw bus=(system) path="/a b" peer=(label=x, name=y),',
     'dbus (receive, send) bus=system path="/a b" peer=(name=y label=x),'),
]


@pytest.mark.parametrize("text,canonical", MAN_EXAMPLES)
def test_parse_render(text, canonical):
    rule = DbusRule.parse(text.replace("\n", " "))
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


@pytest.mark.parametrize("bad", ["dbus (fly),", "dbus bus=a bus=b,", "dbus peer=(pid=3),", "dbus path=\"/x,",
                                 "dbus send path=/a, dbus,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        DbusRule.parse(bad)


@pytest.mark.parametrize("general,specific,expected", [
    ("dbus,", "dbus send bus=session path=/a interface=i member=m peer=(label=x),", True),
    ("dbus send bus=session,", "dbus send bus=system,", False),
    ("dbus send bus=session path=/org/**,", "dbus send bus=session path=/org/a/b member=M,", True),
    ("dbus send path=/org/*,", "dbus send path=/org/a/b,", False),
    ("dbus send peer=(label=unconfined),", "dbus send,", False),
    ("dbus (send, receive) peer=(label=/usr/bin/*),", "dbus receive peer=(name=n label=/usr/bin/x),", True),
    ("dbus bind,", "dbus send,", False),
    ("dbus send member={Get,Set},", "dbus send member=Set,", True),
])
def test_covers(general, specific, expected):
    assert DbusRule.parse(general).covers(DbusRule.parse(specific)) is expected


@pytest.mark.parametrize("case", ["testcase_dbus_02", "testcase_dbus_03", "testcase_dbus_05", "testcase_dbus_06",
                                  "testcase_dbus_08", "testcase_dbus_09", "testcase_dbus_11", "testcase_dbus_12"])
def test_corpus(case):
    events, expected = corpus_case(case)
    rendered = [rule_from_event(ev).render("5.0") for ev in events]
    assert rendered == expected
    # dbus mediation exists in ABI 3.0: the same text is written for 3.0
    assert [rule_from_event(ev).render("3.0") for ev in events] == expected


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_journald_records_give_compiling_rules():
    path = vendored_file("formats", "journald-json.log")
    lines = []
    with open(path, "rb") as fh:
        for raw in fh:
            ev = logparse.parse_line(raw)["event"]
            if ev is not None and ev["kind"] == "dbus":
                rule = rule_from_event(ev)
                assert rule is not None, ev
                lines.append(rule.render("3.0"))
    assert len(lines) >= 10
    ok, err = compile_rules(lines)
    assert ok, err


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_renderings_compile():
    ok, err = compile_rules([DbusRule.parse(t.replace("\n", " ")).render("3.0") for t, _c in MAN_EXAMPLES])
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(bus=hostile_text, path=hostile_text, interface=hostile_text, member=hostile_text, peer=hostile_text,
       access=st.sampled_from(["send", "receive"]))
def test_fuzz_hostile_message(bus, path, interface, member, peer, access):
    CASES["n"] += 1
    ev = {"kind": "dbus", "mask": {"requested": access, "denied": ""}, "bus": bus, "dbus_path": path,
          "interface": interface, "member": member, "peer": peer}
    rule = rule_from_event(ev)
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule
    assert [pattern_literal(v) for v in (back.bus, back.path, back.interface, back.member, back.peer_label)] == [
        bus, path, interface, member, peer]
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(bus=hostile_text, name=hostile_text)
def test_fuzz_hostile_bind(bus, name):
    CASES["n"] += 1
    rule = rule_from_event({"kind": "dbus", "mask": {"requested": "bind", "denied": ""}, "bus": bus, "dbus_name": name})
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.name) == name and pattern_literal(back.bus) == bus
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz dbus: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
