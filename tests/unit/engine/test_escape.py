"""aaescape: names are written so apparmor_parser reads back exactly the name, and nothing else.

Expectations come from apparmor_parser 3.0.8 itself: a rendered name must compile to the same
binary policy as an all-octal spelling of the same bytes (see rulecore_support.octal_reference),
and from the quoting rules observed with ``apparmor_parser -D rule-exprs`` (globs and variables
are expanded even inside quotes, so they must be backslashed).
"""
import pytest
from hypothesis import given, settings
from rulecore_support import (
    COUNTS,
    EXAMPLES,
    compile_rules,
    compiled_binary,
    count,
    hostile_path,
    octal_reference,
)

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import (
    EscapeError,
    escape_glob,
    has_glob,
    pattern_literal,
    quote_path,
    quote_pattern,
    unquote,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule

HOSTILE_EXAMPLES = [
    "/tmp/x, /** rwx,",
    "/tmp/new\nline r,\n/etc/shadow w",
    "/tmp/{a,b}",
    '/tmp/quote"d',
    "/tmp/hash#not a comment",
    "/tmp/@{HOME}",
    "/tmp/back\\slash",
    "/tmp/back\\",
    "/tmp/[abc]?*",
    "/tmp/!^",
    "/tmp/caf\u00e9 \u65e5\u672c",
    "/tmp/raw\udcff\udc80byte",
    "/tmp/tab\there\rcr\x7fdel",
    "/tmp/ends,",
    "/tmp/-> /x",
    "/tmp/line\u2028sep\x85nel\u2029par",
]


def test_plain_paths_stay_unquoted():
    # aa-logprof writes ordinary paths bare; quoting them would only add noise to reviews
    assert quote_path("/usr/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"


def test_issue_example_is_one_literal_rule():
    # the issue's example: unquoted it would be two rules, quoted-only it would be a /** glob
    assert quote_path("/tmp/x, /** rwx,") == '"/tmp/x, /\\*\\* rwx,"'


def test_nul_is_refused():
    with pytest.raises(EscapeError):
        quote_path("/tmp/a\x00b")


def test_unquote_decodes_parser_escapes():
    # observed with apparmor_parser -D rule-exprs: \x2a and \052 are a *literal* '*', \101 is 'A',
    # \d042 is '*' (decimal), \n a newline, \q an escaped (literal) q
    assert unquote('"/tmp/\\x2a"') == "/tmp/\\*"
    assert unquote('"/tmp/\\052"') == "/tmp/\\*"
    assert unquote('"/tmp/\\101e"') == "/tmp/Ae"
    assert unquote('"/tmp/\\d042"') == "/tmp/\\*"
    assert unquote('"/tmp/a\\nb"') == "/tmp/a\nb"
    assert unquote('"/tmp/\\q"') == "/tmp/q"
    assert unquote("/tmp/*") == "/tmp/*"


@pytest.mark.parametrize("bad", ['"/tmp/a', '"/tmp/a\\"', "/tmp/a\\"])
def test_unquote_rejects_broken_tokens(bad):
    with pytest.raises(EscapeError):
        unquote(bad)


@pytest.mark.parametrize("name", HOSTILE_EXAMPLES)
def test_round_trip_examples(name):
    token = quote_path(name)
    pattern = unquote(token)
    assert pattern == escape_glob(name)
    assert not has_glob(pattern)
    assert pattern_literal(pattern) == name
    assert len(token.splitlines()) == 1  # a rendered rule is always one line
    assert aaglob.matches(pattern, name)


def test_examples_compile_identical_to_octal_reference():
    for name in HOSTILE_EXAMPLES:
        ok, ours, err = compiled_binary([quote_path(name) + " r,"])
        assert ok, err
        ok, ref, err = compiled_binary([octal_reference(name) + " r,"])
        assert ok, err
        assert ours == ref, "parser reads %r differently from its octal spelling" % (name,)


def test_binary_comparison_detects_a_difference():
    # the yardstick must be able to fail: a glob and its literal compile differently
    ok, glob_bin, _e = compiled_binary(["/tmp/* r,"])
    ok2, lit_bin, _e2 = compiled_binary([quote_path("/tmp/*") + " r,"])
    assert ok and ok2 and glob_bin != lit_bin


def test_quote_pattern_keeps_globs_and_variables():
    assert quote_pattern("/home/*/.ssh/**") == "/home/*/.ssh/**"
    assert quote_pattern("@{HOME}/x") == "@{HOME}/x"
    assert quote_pattern("/a/{b,c}") == '"/a/{b,c}"'
    assert unquote(quote_pattern("/a b/\\*/*")) == "/a b/\\*/*"
    ok, out = compile_rules([quote_pattern("/a b/\\*/*") + " r,", quote_pattern("/a/{b,c} d") + " r,"])
    assert ok, out


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_path)
def test_fuzz_hostile_names(name):
    count("escape.hostile_names")
    token = quote_path(name)
    assert len(token.splitlines()) == 1  # one line for every line splitter (U+2028, U+0085...)
    pattern = unquote(token)
    assert pattern_literal(pattern) == name
    rule = parse_rule(token + " r,")
    # the parser collapses runs of '/', and so does the rule model
    assert rule.path == aaglob.collapse_slashes(pattern) and parse_rule(rule.render()) == rule
    ok, ours, err = compiled_binary([rule.render()])
    assert ok, err
    ok, ref, err = compiled_binary([octal_reference(name) + " r,"])
    assert ok, err
    assert ours == ref


def test_zz_case_count():
    print("\nfuzz cases: %s" % COUNTS)
    assert COUNTS.get("escape.hostile_names", 0) >= min(EXAMPLES, 10)
