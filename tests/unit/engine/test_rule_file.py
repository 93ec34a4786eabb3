"""File rules: parse/render (apparmor.d(5) forms), exec modes, coverage, the rule an event needs
(compared with the corpus ``.profile`` written by AppArmor's own tools), hostile paths."""
import glob
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecore_support import (
    COUNTS,
    EXAMPLES,
    compile_rules,
    compiled_binary,
    count,
    hostile_path,
    octal_reference,
)

from ansible_collections.armada.apparmor.plugins.module_utils import logparse
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.exec import ALLOW_EXEC_MODES
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule, LinkRule

# (rule text, canonical rendering): permissions are written m r w a l k then the exec mode, as
# AppArmor's tools write them (apparmor/rule/file.py "also defines the write order").
EXAMPLES_5 = [
    ("/etc/passwd r,", "/etc/passwd r,"),
    ("owner /home/*/** rw,", "owner /home/*/** rw,"),
    ("audit deny /etc/shadow w,", "audit deny /etc/shadow w,"),
    ("audit allow owner /x r,", "audit owner /x r,"),
    ("/usr/bin/foo Px -> bar,", "/usr/bin/foo Px -> bar,"),
    ("/bin/ping mrix,", "/bin/ping mrix,"),
    ("/x rwm,", "/x mrw,"),
    ("rw /tmp/x,", "rw /tmp/x,"),
    ("file rw /tmp/x,", "file rw /tmp/x,"),
    ("file /tmp/x rw,", "file /tmp/x rw,"),
    ("file,", "file,"),
    ("owner file,", "owner file,"),
    ("/usr/bin/eqn rmCx -> &man_groff,", "/usr/bin/eqn mrCx -> &man_groff,"),
    ("/{,usr/}bin/bzip2 rmCx -> &man_filter,", '"/{,usr/}bin/bzip2" mrCx -> &man_filter,'),
    ("deny /bin/x x,", "deny /bin/x x,"),
    ("/x Pixr,", "/x rPix,"),
    ("/x PUx,", "/x PUx,"),
    ("/x cux -> child,", "/x cux -> child,"),
    ("/x Cix -> a//b,", "/x Cix -> a//b,"),
    ("/var/log/** a,", "/var/log/** a,"),
    ("/run/lock/x k,", "/run/lock/x k,"),
    ("/x l,", "/x l,"),
    ('"/tmp/a b" r,', '"/tmp/a b" r,'),
    ("@{HOME}/.ssh/** r,", "@{HOME}/.ssh/** r,"),
    ("@{PROC}/@{pid}/maps r,", "@{PROC}/@{pid}/maps r,"),
    ("link subset /l -> /t,", "link subset /l -> /t,"),
    ("owner link /l -> /t,", "owner link /l -> /t,"),
]


@pytest.mark.parametrize("text,canonical", EXAMPLES_5)
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


def test_all_renderings_compile():
    # one profile per rule: several examples use /x with different exec modes, which conflict
    for _text, canonical in EXAMPLES_5:
        ok, out = compile_rules([canonical, "profile child {", "}", "profile bar {", "}"])
        assert ok, out


def test_abi_targets():
    # file rules are written the same way for every ABI the collection targets; garbage is refused
    rule = parse_rule("owner /x rw,")
    assert rule.render("3.0") == rule.render("4.0") == rule.render("abi/5.0") == "owner /x rw,"
    with pytest.raises(RuleParseError):
        rule.render("three")


def test_comment_and_qualifiers():
    rule = parse_rule("  audit deny owner /x rw,   # keep shadow out")
    assert isinstance(rule, FileRule)
    assert (rule.audit, rule.deny, rule.owner, rule.comment) == (True, True, True, "keep shadow out")
    assert rule.render_line() == "audit deny owner /x rw,  # keep shadow out"


# Rejected by apparmor_parser 3.0.8 as well (messages observed): unknown mode letter, two exec
# qualifiers, 'w' with 'a', deny with an exec qualifier, no permissions.
PARSER_REJECTS = ["/x rq,", "/x rixPx,", "/x wa,", "deny /x Px,", "deny /bin/x ix,"]
# Rejected by us although the parser would take them: a target on a mode that ignores it, two rules
# in one string, an unterminated quote.
WE_REJECT = ["/x ix -> foo,", "/x r, /y w,", '"/x r,', "/x", "/x r w,"]


@pytest.mark.parametrize("bad", PARSER_REJECTS + WE_REJECT)
def test_bad_rules(bad):
    with pytest.raises(RuleParseError):
        FileRule.parse(bad)


def test_parser_agrees_on_rejections():
    for bad in PARSER_REJECTS:
        ok, out = compile_rules([bad])
        assert not ok, out


COVERS = [
    ("/** r,", "/etc/passwd r,", True),
    ("/etc/* r,", "/etc/ssl/x r,", False),
    ("/etc/** rw,", "/etc/passwd r,", True),
    ("/etc/** r,", "/etc/passwd rw,", False),
    ("/var/log/** w,", "/var/log/x a,", True),  # w includes a
    ("/var/log/** a,", "/var/log/x w,", False),
    ("owner /home/** r,", "/home/x r,", False),  # owner only covers owner accesses
    ("/home/** r,", "owner /home/x r,", True),
    ("deny /etc/** w,", "/etc/x w,", False),  # deny never covers an allow
    ("deny /etc/** w,", "deny /etc/x w,", True),
    ("deny /bin/* x,", "deny /bin/ls x,", True),
    ("/bin/* ix,", "/bin/ls Px,", False),  # different transitions
    ("/bin/* Px -> a,", "/bin/ls Px -> b,", False),
    ("/bin/* mrix,", "/bin/ls ix,", True),
    ("file,", "/anything rwlk,", True),
    ("owner file,", "/anything r,", False),
    ("/x r,", "audit /x r,", False),  # adding audit changes logging
    ("audit /x r,", "/x r,", True),
    ("@{HOME}/** r,", "/home/bob/x r,", True),
]


@pytest.mark.parametrize("general,specific,expected", COVERS)
def test_covers(general, specific, expected):
    variables = {"HOME": ["/home/*/", "/root/"]}
    assert parse_rule(general).covers(parse_rule(specific), variables) is expected


def test_link_covers():
    assert LinkRule.parse("link /tmp/** -> /tmp/**,").covers(LinkRule.parse("link subset /tmp/a -> /tmp/b,"))
    assert not LinkRule.parse("link subset /tmp/** -> /tmp/**,").covers(LinkRule.parse("link /tmp/a -> /tmp/b,"))


# ---- events ------------------------------------------------------------------------------------
def _corpus() -> str:
    from armada_corpus import corpus_dir

    return corpus_dir()


def _corpus_file_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(_corpus(), "*.in"))):
        base = path[:-3]
        if not os.path.exists(base + ".profile"):
            continue
        with open(path, "rb") as fh:
            data = fh.read().replace(b"\n                  ", b" ")
        events = [logparse.parse_line(line)["event"] for line in data.splitlines() if line.strip()]
        events = [e for e in events if e and e["kind"] in ("file", "exec")]
        if len(events) != 1:
            continue
        with open(base + ".profile", encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh if ln.strip().endswith(",")]
        cases.append((os.path.basename(base), events[0], lines))
    return cases


def test_corpus_events_give_the_corpus_rule():
    """The rule each file/exec event needs equals the rule AppArmor's tools wrote for it
    (corpus ``.profile``, exec answered ``ix``), compared as parsed rules."""
    cases = _corpus_file_cases()
    assert len(cases) >= 30
    mismatches = []
    compared = 0
    for name, event, lines in cases:
        rule = rule_from_event(event)
        expected = [parse_rule(line) for line in lines]
        if rule is None:
            if expected:
                mismatches.append((name, None, lines))
            continue
        compared += 1
        if [rule] != expected:
            mismatches.append((name, rule.render(), lines))
    print("\ncorpus file/exec cases compared: %d" % compared)
    assert not mismatches, mismatches


def test_exec_event_uses_answer_mode_and_target():
    event = {"kind": "exec", "path": "/usr/bin/logger", "mask": {"requested": "x"}}
    px = rule_from_event(dict(event, exec_mode="Px")).render()
    cx = rule_from_event(dict(event, exec_mode="Cx", exec_target="log")).render()
    assert px == "/usr/bin/logger mrPx,"
    assert cx == "/usr/bin/logger mrCx -> log,"
    for line in (px, cx):
        ok, out = compile_rules([line, "profile log {", "}"])
        assert ok, out


def test_event_masks():
    def render(mask, owner=None, denied=True):
        ev = {"kind": "file", "path": "/p", "mask": {"requested": mask, "denied": mask if denied else ""}}
        if owner is not None:
            ev["owner"] = owner
        rule = rule_from_event(ev)
        if rule is None:
            return None
        rendered.append(rule.render())
        return rule.render()

    rendered = []
    assert render("wc") == "/p w,"  # create needs w
    assert render("wa") == "/p w,"  # the parser refuses "wa"; w includes a
    assert render("r::") == "owner /p r,"  # OWNER::OTHER form: the owner part
    assert render("::r") == "/p r,"
    assert render("xm") == "/p m,"  # x comes from exec events, with an answered mode
    assert render("x") is None
    assert render("r", owner=True) == "owner /p r,"  # fsuid == ouid on a denial
    # an audited, allowed access: AppArmor's tools write no owner (corpus testcase36)
    assert render("r", owner=True, denied=False) == "/p r,"
    for line in rendered:
        ok, out = compile_rules([line])
        assert ok, out


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_path, st.sampled_from(["r", "w", "rw", "mr", "a", "k", "l", "wc", "r::"]),
       st.booleans(), st.booleans(), st.booleans())
def test_fuzz_hostile_file_events(path, mask, owner, deny, audit):
    count("rule_file.hostile_events")
    rule = rule_from_event({"kind": "file", "path": path, "mask": {"requested": mask}, "owner": owner})
    rule.deny, rule.audit = deny, audit
    text = rule.render()
    assert "\n" not in text and "\r" not in text
    back = parse_rule(text)
    assert back == rule
    assert pattern_literal(back.path) == path or "//" in path  # the parser collapses '//' too
    ok, ours, err = compiled_binary([text])
    assert ok, err
    # the same rule with the path spelled as octal escapes (see rulecore_support.octal_reference)
    reference = rule.qualifier_prefix() + octal_reference(path) + " " + text.rsplit(" ", 1)[1]
    ok, ref, err = compiled_binary([reference])
    assert ok, err
    assert ours == ref, (path, text, reference)


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_path, st.sampled_from(ALLOW_EXEC_MODES))
def test_fuzz_hostile_exec_events(path, mode):
    count("rule_file.hostile_exec")
    rule = rule_from_event({"kind": "exec", "path": path, "mask": {"requested": "x"}, "exec_mode": mode})
    text = rule.render()
    assert parse_rule(text) == rule
    ok, out = compile_rules([text])
    assert ok, out


def test_zz_case_count():
    print("\nfuzz cases: %s" % {k: v for k, v in COUNTS.items() if k.startswith("rule_file.")})
    assert COUNTS.get("rule_file.hostile_events", 0) >= min(EXAMPLES, 10)
