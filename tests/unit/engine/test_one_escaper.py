"""One escaper for every rule kind (aaescape.py): a name logged for a signal peer, a ptrace peer, a
change_profile target or a dbus member is written with the same spelling as the same name in a file
rule, and read back the way apparmor_parser reads it. The yardstick is the parser itself
(``-D rule-exprs``) and an independent all-octal spelling of the name (rulecore_support.octal_reference).
"""
import pytest
from rulecore_support import PARSER, PARSER_MISSING, compile_rules, octal_reference, rule_exprs

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob, quote_pattern
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule

# the quote, '^', control characters, a leading '-', glob and variable syntax, '#', a backslash, non-ASCII
NAMES = ['a"b', "a^b", "new\nline", "tab\there", "-lead", "x*{a,b}", "@{HOME}", "h#x", "back\\slash", "日本"]


def _kind_rules(name):
    return {
        "signal": rule_from_event({"kind": "signal", "profile": "p", "peer": name, "signal": "hup",
                                   "mask": {"requested": "send", "denied": "send"}}),
        "ptrace": rule_from_event({"kind": "ptrace", "profile": "p", "peer": name,
                                   "mask": {"requested": "read", "denied": "read"}}),
        "change_profile": rule_from_event({"kind": "change_profile", "profile": "p", "target": name}),
        "dbus": rule_from_event({"kind": "dbus", "profile": "p", "bus": "session", "dbus_path": "/o",
                                 "interface": "i.f", "member": name, "mask": {"requested": "send", "denied": "send"}}),
    }


def _rules(dump):
    """The expressions the parser built (``rule:`` lines; ``aare:`` lines echo the input text)."""
    return [line for line in dump.splitlines() if line.startswith("rule:")]


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_spells_a_name_like_the_file_rule(name):
    token = quote_pattern(escape_glob(name))
    file_line = FileRule(escape_glob("/" + name), frozenset("r")).render("3.0")
    assert file_line.startswith(quote_pattern(escape_glob("/" + name)) + " ")
    for kind, rule in _kind_rules(name).items():
        line = rule.render("3.0")
        assert token in line, (kind, line)
        assert '\\042' not in line  # the second dialect wrote a quote as \042
        back = parse_rule(line)
        assert back == rule, (kind, line)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@pytest.mark.parametrize("name", NAMES)
def test_the_parser_reads_each_spelling_as_the_literal_name(name):
    lines = [r.render("3.0") for r in _kind_rules(name).values()]
    ok, err = compile_rules(lines)
    assert ok, err
    # the signal peer as written, and the name spelled byte by byte in octal, compile to the same expression
    ok1, ours = rule_exprs([_kind_rules(name)["signal"].render("3.0")])
    reference = "signal send set=(hup) peer=%s," % octal_reference(name)
    ok2, theirs = rule_exprs([reference])
    assert ok1 and ok2, (ours, theirs)
    assert _rules(ours) == _rules(theirs) and _rules(ours)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_kinds_read_string_escapes_as_the_parser_does():
    # \n inside quotes is a newline for apparmor_parser (the second dialect read it as the letter n)
    named, octal = 'signal send peer="a\\nb",', 'signal send peer="a\\012b",'
    assert parse_rule(named).peer == parse_rule(octal).peer == "a\nb"
    ok1, out1 = rule_exprs([named])
    ok2, out2 = rule_exprs([octal])
    assert ok1 and ok2 and _rules(out1) == _rules(out2) and _rules(out1)
