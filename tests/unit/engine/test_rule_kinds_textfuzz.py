"""Hostile *rule text* for every non-file kind: parsing either fails with RuleParseError (a clear
error) or yields a rule whose rendering parses back to the same rule and stays one line. No other
exception type may escape, and a parsed rule never holds two rules."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulekind_support import EXAMPLES, HOSTILE, one_line

from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.network import NetworkRule

KEYWORDS = ["network", "unix", "signal", "ptrace", "dbus", "mount", "remount", "umount", "pivot_root",
            "change_profile", "userns", "io_uring", "mqueue"]
WORDS = ["send", "receive", "(send, receive)", "peer=", "peer=(", "label=", "addr=@", "set=", "bus=", "path=",
         "member=", "->", "options=", "fstype=", "oldroot=", "type=", "ip=", "port=", "inet", "stream", '"', "(",
         ")", ",", "#", "\\", "=", "/x", "@{HOME}", " ", "{a,b}", "*", "\n"]
CASES = {"n": 0}


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(keyword=st.sampled_from(KEYWORDS),
       tail=st.lists(st.one_of(st.sampled_from(WORDS), st.text(alphabet=st.sampled_from(HOSTILE), max_size=6)),
                     max_size=8))
def test_fuzz_rule_text(keyword, tail):
    CASES["n"] += 1
    text = keyword + " " + " ".join(tail) + ","
    try:
        rule = parse_rule(text)
    except RuleParseError:
        return
    for abi in ("3.0", "5.0"):
        try:
            out = rule.render(abi)
        except AbiError:
            continue
        assert one_line(out)
        if abi == "3.0" and isinstance(rule, NetworkRule) and rule.fine_grained():
            # documented downgrade: ABI 3.0 mediates family/type only, the allow rule is widened to that
            assert parse_rule(out).covers(rule), (text, out)
            continue
        assert parse_rule(out) == rule, (text, out)


def test_zz_fuzz_case_count():
    print("fuzz rule text (all non-file kinds): %d cases" % CASES["n"])
    assert CASES["n"] > 0


@pytest.mark.parametrize("text", [
    'signal peer="x", /** rwx,',
    'dbus path="/a" interface=b, /** rwx,',
    "unix peer=(addr=@a) , /** rwx,",
    'mount -> "/mnt/", /** rwx,',
    "change_profile -> a, /** rwx,",
])
def test_smuggled_second_rule_rejected(text):
    with pytest.raises(RuleParseError):
        parse_rule(text)
