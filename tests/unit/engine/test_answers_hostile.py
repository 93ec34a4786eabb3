"""Hostile names through to_rules (property-based): one event never yields more than its one rule.

Hypothesis generates paths, dbus paths/interfaces/members, unix addresses and profile names from an
alphabet holding ``,{}[]"#\\n\\\\@*?!^``, blanks, parentheses, quotes, non-ASCII characters and raw
non-UTF-8 bytes (surrogate-escaped, as the reader hands them over). For every generated event:

- to_rules (default allow, ABI 3.0) writes at most one rule for it, on one line;
- that rule text parses back (rules.parse_rule) to exactly the rule intended for the event, and every
  name in it stands for exactly the literal name of the event (no glob, no variable, no truncation);
- all profiles built from the rendered rules compile with the real ``apparmor_parser -QK``.

Cases are never filtered by whether the parser accepts them; an event the engine cannot express
(e.g. a unix address the parser cannot name) must come out as "no rule" with a reason instead, and is
counted. Each run prints how many cases it tried. ``make fuzz`` raises the count to 10,000 per kind
(ARMADA_FUZZ_EXAMPLES).
"""
import os
import re
import tempfile

import pytest
from aa_support import FEATURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, host, rules
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob, pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule

EXAMPLES = int(os.environ.get("ARMADA_FUZZ_EXAMPLES", "60"))
HERE = os.path.dirname(os.path.abspath(__file__))

ALPHABET = list(',{}[]"#\n\\@*?!^') + list(" \t()=<>'$&;:|~`%+-_./") + list("aZ09") + [
    "\u00e9", "\u00a0", "\u2028", "\u202e", "\U0001f600", "\x7f", "\x01", "\udc80", "\udcff", "\udcc3"]


def canonical(text):
    """The reader's form of a name: log bytes decoded as UTF-8 with surrogateescape. Raw bytes that happen
    to form valid UTF-8 (\\udcc3\\udc80) are the character they spell (U+00C0), as the reader would give."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


name = st.text(st.sampled_from(ALPHABET), min_size=1, max_size=24).map(canonical)
settings_ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def parser_or_none():
    try:
        return host.find_parser()
    except host.HostError:
        return None


class Tally:
    """Counts and the rule lines to compile for one property."""

    def __init__(self, kind):
        self.kind = kind
        self.tried = 0
        self.rules = 0
        self.no_rule = 0
        self.lines = []

    def report(self, capsys):
        compiled = compile_all(self.lines)
        with capsys.disabled():
            print("\nhostile %s: %d cases tried, %d rules rendered, parsed back and compiled (%d profile files), "
                  "%d not expressible (no rule, with reason)" % (self.kind, self.tried, self.rules, compiled,
                                                                 self.no_rule))
        assert self.tried >= min(EXAMPLES, 10)


def compile_all(lines):
    """Compile the rules in profiles of up to 200 rules each, in one parser run; return the file count."""
    parser = parser_or_none()
    if parser is None or not lines:
        return 0
    tmp = tempfile.mkdtemp(prefix="armada-hostile-")
    paths = []
    try:
        for start in range(0, len(lines), 200):
            path = os.path.join(tmp, "p%05d" % start)
            with open(path, "w", encoding="utf-8", errors="strict") as fh:
                fh.write("abi <abi/3.0>,\nprofile armada_hostile_%d {\n" % start)
                fh.writelines("  %s\n" % line for line in lines[start:start + 200])
                fh.write("}\n")
            paths.append(path)
        err = host.validate_many(paths, parser, features_file=FEATURES)
        if err is not None:
            m = re.search(r"for \S*/p(\d+) .* at line (\d+)", err)
            culprit = lines[int(m.group(1)) + int(m.group(2)) - 3] if m else "?"
            pytest.fail("apparmor_parser rejects a rendered rule: %r\n%s" % (culprit, err))
        return len(paths)
    finally:
        for p in paths:
            os.unlink(p)
        os.rmdir(tmp)


def single_rule(result, label):
    """The one rule (dict) to_rules wrote for the single event of ``label``'s profile, or None."""
    parent = label.split("//", 1)[0]
    assert list(result["profiles"]) == [parent]
    entry = result["profiles"][parent]
    if "//" in label:
        child = label.split("//", 1)[1]
        if not child.startswith("null-") and child and not child.startswith("&"):
            entry = entry["children"][child]
    written = entry["rules"] + entry["deny"]
    assert len(written) <= 1, written
    if not written:
        reasons = [e["reason"] for e in entry["ignored"] + entry["pending"] + entry["unsupported"]]
        assert reasons and all(reasons), "an event without a rule must say why"
        return None
    text = written[0]["text"]
    assert "\n" not in text and "\r" not in text and text.endswith(",")
    # apparmor_parser and profile_model end lines at \n only; U+2028 & co. are written as escapes (test below).
    return written[0]


def check_roundtrip(text, intended):
    parsed = rules.parse_rule(text)
    assert parsed == intended, (text, parsed, intended)
    assert parsed.render("3.0") == text
    return parsed


# ---- file paths ---------------------------------------------------------------------------------------

FILE_TALLY = Tally("file paths")
PERMS = {"r": "r", "w": "w", "rw": "rw", "wk": "wk", "m": "m", "l": "l", "a": "a", "rc": "rw"}


@settings_
@given(tail=name, mask=st.sampled_from(sorted(PERMS)), owner=st.booleans())
def test_fuzz_hostile_file_paths(tail, mask, owner):
    path = "/" + tail
    FILE_TALLY.tried += 1
    event = {"kind": "file", "profile": "/usr/bin/victim", "host": "h", "path": path, "owner": owner,
             "mask": {"requested": mask, "denied": mask}, "count": 1, "id": "x"}
    rule = single_rule(to_rules([event], [], default="allow"), "/usr/bin/victim")
    assert rule is not None, "every NUL-free path is expressible"
    intended = FileRule(aaglob.collapse_slashes(escape_glob(path)), frozenset(PERMS[mask]), owner=owner)
    parsed = check_roundtrip(rule["text"], intended)
    assert pattern_literal(parsed.path) == aaglob.collapse_slashes(path)
    assert aaglob.matches(parsed.path, path) and not aaglob.matches(parsed.path, path + "x")
    FILE_TALLY.rules += 1
    FILE_TALLY.lines.append(rule["text"])


def test_fuzz_file_paths_report(capsys):
    if not FILE_TALLY.tried:
        test_fuzz_hostile_file_paths()
    FILE_TALLY.report(capsys)


# ---- dbus names -----------------------------------------------------------------------------------------

DBUS_TALLY = Tally("dbus path/interface/member/name")


@settings_
@given(path_tail=name, interface=name, member=name, peer=name, bind=st.booleans(), bus=st.sampled_from(
    ["session", "system"]))
def test_fuzz_hostile_dbus_names(path_tail, interface, member, peer, bind, bus):
    DBUS_TALLY.tried += 1
    event = {"kind": "dbus", "profile": "/usr/bin/victim", "host": "h", "bus": bus, "count": 1, "id": "x"}
    if bind:
        event.update(dbus_name=interface, mask={"requested": "bind", "denied": "bind"})
    else:
        event.update(dbus_path="/" + path_tail, interface=interface, member=member, peer=peer,
                     mask={"requested": "send", "denied": "send"})
    rule = single_rule(to_rules([event], [], default="allow"), "/usr/bin/victim")
    if rule is None:
        DBUS_TALLY.no_rule += 1
        return
    intended = rules.rule_from_event(event)
    parsed = check_roundtrip(rule["text"], intended)
    if bind:
        assert pattern_literal(parsed.name) == interface
    else:
        assert pattern_literal(parsed.interface) == interface
        assert pattern_literal(parsed.member) == member
        assert parsed.path is not None and pattern_literal(parsed.path) in ("/" + path_tail,
                                                                           aaglob.collapse_slashes("/" + path_tail))
    DBUS_TALLY.rules += 1
    DBUS_TALLY.lines.append(rule["text"])


def test_fuzz_dbus_names_report(capsys):
    if not DBUS_TALLY.tried:
        test_fuzz_hostile_dbus_names()
    DBUS_TALLY.report(capsys)


# ---- unix addresses -------------------------------------------------------------------------------------

UNIX_TALLY = Tally("unix addresses")


@settings_
@given(addr=name, peer_side=st.booleans(), abstract=st.booleans())
def test_fuzz_hostile_unix_addresses(addr, peer_side, abstract):
    UNIX_TALLY.tried += 1
    value = ("@" + addr) if abstract else ("/" + addr)
    event = {"kind": "unix", "profile": "/usr/bin/victim", "host": "h", "family": "unix", "sock_type": "stream",
             "mask": {"requested": "send", "denied": "send"}, "count": 1, "id": "x"}
    event["peer_addr" if peer_side else "addr"] = value
    rule = single_rule(to_rules([event], [], default="allow"), "/usr/bin/victim")
    if rule is None:
        UNIX_TALLY.no_rule += 1
        return
    intended = rules.rule_from_event(event)
    parsed = check_roundtrip(rule["text"], intended)
    got = parsed.peer_addr if peer_side else parsed.addr
    assert pattern_literal(got) == value
    UNIX_TALLY.rules += 1
    UNIX_TALLY.lines.append(rule["text"])


def test_fuzz_unix_addresses_report(capsys):
    if not UNIX_TALLY.tried:
        test_fuzz_hostile_unix_addresses()
    UNIX_TALLY.report(capsys)


# ---- profile names ---------------------------------------------------------------------------------------

PROFILE_TALLY = Tally("profile names (label, signal peer, change_profile target)")


@settings_
@given(label=name, peer=name, target=name, which=st.sampled_from(["signal", "change_profile"]))
def test_fuzz_hostile_profile_names(label, peer, target, which):
    PROFILE_TALLY.tried += 1
    if which == "signal":
        event = {"kind": "signal", "profile": label, "host": "h", "signal": "term", "peer": peer,
                 "mask": {"requested": "send", "denied": "send"}, "count": 1, "id": "x"}
    else:
        event = {"kind": "change_profile", "profile": label, "host": "h", "target": target, "count": 1, "id": "x",
                 "operations": ["change_profile"]}
    # an answer naming the profile exactly (glob characters in it included) must apply to it; broad: a label such
    # as "*" read as a pattern names every profile, which the breadth check refuses without it (found by hypothesis)
    answers = [{"profile": label, "match": {"kind": which}, "answer": "allow", "broad": True}]
    result = to_rules([event], answers)
    parent = label.split("//", 1)[0]
    if not parent:
        # a label starting with "//" has no parent name: reported, never written anywhere
        assert result["profiles"] == {} and result["errors"]
        PROFILE_TALLY.no_rule += 1
        return
    rule = single_rule(result, label)
    if rule is None:
        PROFILE_TALLY.no_rule += 1
        return
    intended = rules.rule_from_event(event)
    parsed = check_roundtrip(rule["text"], intended)
    if which == "signal":
        assert pattern_literal(parsed.peer) == peer
    PROFILE_TALLY.rules += 1
    PROFILE_TALLY.lines.append(rule["text"])


def test_fuzz_profile_names_report(capsys):
    if not PROFILE_TALLY.tried:
        test_fuzz_hostile_profile_names()
    PROFILE_TALLY.report(capsys)


def test_hostile_example_is_one_literal_rule():
    """The issue's example, spelled out: a path that tries to smuggle a second rule in."""
    evil = "/tmp/x, /** rwx,"
    event = {"kind": "file", "profile": "p", "host": "h", "path": evil, "owner": False,
             "mask": {"requested": "r", "denied": "r"}, "count": 1, "id": "x"}
    rule = single_rule(to_rules([event], [], default="allow"), "p")
    parsed = rules.parse_rule(rule["text"])
    assert pattern_literal(parsed.path) == evil
    assert not aaglob.matches(parsed.path, "/etc/shadow")
    if parser_or_none() is None:
        pytest.skip("apparmor_parser not installed (make apt installs it)")
    assert compile_all([rule["text"]]) == 1


def test_file_rule_text_is_one_line_for_every_line_splitter():
    """U+2028, U+2029 and U+0085 are line breaks for editors and str.splitlines(): written as escapes."""
    for sep in ("\u2028", "\u2029", "\x85"):
        event = {"kind": "file", "profile": "p", "host": "h", "path": "/tmp/a" + sep + "b", "owner": False,
                 "mask": {"requested": "r", "denied": "r"}, "count": 1, "id": "x"}
        rule = single_rule(to_rules([event], [], default="allow"), "p")
        assert len(rule["text"].splitlines()) == 1, repr(rule["text"])


def test_backslash_at_the_end_of_a_name_cannot_swallow_the_next_rule():
    """Regression: a quoted name ending in ``\\`` was written ``"/x\\\\"``, which apparmor_parser's lexer
    reads as an escaped quote; the string then ran into the next rule, and a hostile dbus member such as
    ``r, /etc/shadow rw, #`` became a real ``/etc/shadow rw`` rule. Checked with the real parser's
    rule dump: only the two intended rules exist."""
    parser = parser_or_none()
    if parser is None:
        pytest.skip("apparmor_parser not installed (make apt installs it)")
    evs = [{"kind": "file", "profile": "p", "host": "h", "path": "/x\\", "owner": False,
            "mask": {"requested": "r", "denied": "r"}, "count": 1, "id": "1"},
           {"kind": "dbus", "profile": "p", "host": "h", "bus": "session", "dbus_path": "/a", "interface": "b",
            "member": "r, /etc/shadow rw, #x", "mask": {"requested": "send", "denied": "send"}, "count": 1, "id": "2"}]
    entry = to_rules(evs, [], default="allow")["profiles"]["p"]
    texts = [r["text"] for r in sorted(entry["rules"], key=lambda r: r["kind"] != "file")]
    assert len(texts) == 2
    with tempfile.NamedTemporaryFile("w", suffix=".aa", delete=False, encoding="utf-8") as fh:
        fh.write("profile t {\n" + "".join("  %s\n" % t for t in texts) + "}\n")
        path = fh.name
    try:
        rc, out, err = host.run_parser(["-QK", "-D", "rule-exprs", path], parser)
    finally:
        os.unlink(path)
    assert rc == 0, err
    dumped = out.decode("utf-8", "replace") + err
    assert "rule: /x\\\\  ->  /x\\ " in dumped  # the literal path /x\ exists
    assert "rule: /etc/shadow" not in dumped


# ---- names that are not absolute paths (issue 12, item 3) -----------------------------------------------

RELATIVE_TALLY = Tally("relative file/exec names")
KEYWORDS = ["include", "deny", "profile", "allow", "audit", "owner", "hat", "abi", "alias", "link", "file",
            "pipe:[1234]", "socket:[9]", "anon_inode:[eventfd]", "relative/x", "x y", "@{HOME}/x", "#include"]


@settings_
@given(head=st.sampled_from(KEYWORDS) | name.filter(lambda n: not n.startswith("/")),
       tail=st.sampled_from(["", " r", "/x"]), kind=st.sampled_from(["file", "exec"]))
def test_fuzz_relative_names_never_become_rules(head, tail, kind):
    path = head + tail
    RELATIVE_TALLY.tried += 1
    event = {"kind": kind, "profile": "/usr/bin/victim", "host": "h", "path": path, "count": 1, "id": "x",
             "mask": {"requested": "r" if kind == "file" else "x", "denied": "r" if kind == "file" else "x"}}
    # every exec of every profile: deliberately broad (an answer naming nothing needs broad: true)
    answers = [{"profile": "*", "match": {"kind": "exec"}, "answer": "allow", "exec_mode": "ix", "broad": True}]
    entry = to_rules([event], answers, default="allow")["profiles"]["/usr/bin/victim"]
    assert not entry["rules"] and not entry["deny"] and not entry["pending"]
    assert len(entry["unsupported"]) == 1 and "is not an absolute path" in entry["unsupported"][0]["reason"]
    RELATIVE_TALLY.no_rule += 1


def test_fuzz_relative_names_report(capsys):
    if not RELATIVE_TALLY.tried:
        test_fuzz_relative_names_never_become_rules()
    RELATIVE_TALLY.report(capsys)
