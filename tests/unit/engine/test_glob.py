"""aaglob: AppArmor glob semantics, variables from the real tunables, pattern-vs-pattern coverage.

Expected values come from apparmor.d(5) and from apparmor_parser 3.0.8's own expansion of each
pattern (``apparmor_parser -QK -D rule-exprs``), quoted next to the cases:
  /a/*      -> /a/[^/\\x00][^/\\x00]*     (* at element start needs one char)
  /a/**     -> /a/[^/\\x00][^\\x00]*
  /d/{,x}*  -> /d/(|x)[^/\\x00]*          (after '}' the * may be empty)
  /e/[^a-c]? -> /e/[^abc][^/\\x00]        (a negated class may match '/')
  ///a -> /a, //a//b -> //a/b, /a//b -> /a/b
"""
import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecore_support import COUNTS, EXAMPLES, count

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob

MATCH_CASES = [
    ("/a/*", "/a/b", True),
    ("/a/*", "/a/", False),
    ("/a/*", "/a/b/c", False),
    ("/a/**", "/a/b/c", True),
    ("/a/**", "/a/", False),
    ("/a/**", "/a/b", True),
    ("/c/x*", "/c/x", True),
    ("/d/{,x}*", "/d/", True),
    ("/d/{,x}*", "/d/xyz", True),
    ("/e/[^a-c]?", "/e/dz", True),
    ("/e/[^a-c]?", "/e/bz", False),
    ("/e[^a-c]x", "/e/x", True),
    ("/e/?", "/e//", False),
    ("/f/{a,{b,c}}", "/f/c", True),
    ("/f/{a,{b,c}}", "/f/d", False),
    ("/g/*/**", "/g/x/y/z", True),
    ("/g/*/**", "/g/x/", False),
    ("/i/[a\\]]", "/i/]", True),
    ("/j/\\*", "/j/*", True),
    ("/j/\\*", "/j/x", False),
    ("/a//b", "/a/b", True),
    ("/lib/lib*.so*", "/lib/libc.so.6", True),
    ("/usr/{,local/}bin/*", "/usr/local/bin/x", True),
]


@pytest.mark.parametrize("pattern,text,expected", MATCH_CASES)
def test_matches(pattern, text, expected):
    assert aaglob.matches(pattern, text) is expected


@pytest.mark.parametrize("bad", ["/a/{b", "/a/b}", "/a/[bc", "/a/b]", "/a/\\"])
def test_malformed_patterns(bad):
    with pytest.raises(aaglob.GlobError):
        aaglob.glob_to_regex(bad)
    assert aaglob.matches(bad, "/a/b") is False  # malformed never matches
    assert aaglob.glob_covers(bad, "/a/b") is False


def test_collapse_slashes_like_the_parser():
    assert aaglob.collapse_slashes("///a") == "/a"
    assert aaglob.collapse_slashes("//a//b") == "//a/b"
    assert aaglob.collapse_slashes("/a//b") == "/a/b"
    assert aaglob.collapse_slashes("/a/\\//b") == "/a/\\//b"  # escaped slash is kept


COVER_CASES = [
    ("/a/**", "/a/*", True),
    # aa-logprof's text-matching would say True here: "/foo/**" as text has no '/' after foo/
    ("/foo/*", "/foo/**", False),
    ("/a/{b,c}/*", "/a/b/x*", True),
    ("/a/{b,c}/*", "/a/d/x", False),
    ("/**", "/etc/passwd", True),
    ("/a/*", "/a/[^x]", False),  # [^x] may be '/', which * never matches
    ("/a/?", "/a/[bc]", True),
    ("/a/[a-z]", "/a/{b,c}", True),
    ("/a/[a-z]", "/a/?", False),
    ("/a/**.so", "/a/x/y.so", True),
    ("/a/**.so", "/a/**", False),
    ("/usr/lib{,32,64}/**", "/usr/lib64/x", True),
    ("/x", "/x", True),
    ("/x", "/x*", False),
]


@pytest.mark.parametrize("general,specific,expected", COVER_CASES)
def test_glob_covers(general, specific, expected):
    assert aaglob.glob_covers(general, specific) is expected


def test_real_tunables_variables():
    if not os.path.exists("/etc/apparmor.d/tunables/global"):
        pytest.skip("no /etc/apparmor.d/tunables/global on this machine (apparmor package not installed)")
    v = aaglob.load_tunables("/etc/apparmor.d")
    # tunables/home: @{HOME}=@{HOMEDIRS}/*/ /root/  and @{HOMEDIRS}=/home/
    assert aaglob.matches("@{HOME}/.ssh/id_rsa", "/home/bob/.ssh/id_rsa", v)
    assert aaglob.matches("@{HOME}/.ssh/id_rsa", "/root/.ssh/id_rsa", v)
    assert not aaglob.matches("@{HOME}/.ssh/id_rsa", "/srv/bob/.ssh/id_rsa", v)
    # tunables/proc: @{PROC}=/proc/ ; tunables/kernelvars: @{pid} = 1..4999999 without leading 0
    assert aaglob.matches("@{PROC}/@{pid}/maps", "/proc/1234/maps", v)
    assert not aaglob.matches("@{PROC}/@{pid}/maps", "/proc/0123/maps", v)
    assert aaglob.glob_covers("@{HOME}/**", "/home/*/x", v)
    assert not aaglob.glob_covers("@{HOME}/**", "/home/x", v)  # /home/x is not under a home dir


def test_expand_variables_recursion_and_unknowns():
    v = {"A": ["@{B}/x", "/y"], "B": ["/b1", "/b2"]}
    assert sorted(aaglob.expand_variables("@{A}/z", v)) == ["/b1/x/z", "/b2/x/z", "/y/z"]
    assert aaglob.expand_variables("@{NOPE}/z", v) == ["@{NOPE}/z"]
    assert aaglob.expand_variables("\\@\\{A\\}", v) == ["\\@\\{A\\}"]  # escaped: not a variable
    assert not aaglob.matches("@{NOPE}/z", "/anything/z", v)
    with pytest.raises(aaglob.GlobError):
        aaglob.expand_variables("@{L}", {"L": ["@{L}"]})


# ---- properties --------------------------------------------------------------------------------
TOKENS = ["a", "b", "/", "*", "**", "?", "[ab]", "[^a]", "{a,b/}", "{,a}", "\\*"]
# each star-free token matches at most one character, so 4 tokens match at most 5-char strings
STARFREE = ["a", "b", "/", "?", "[ab]", "[^a]", "{a,b}", "{a,/}", "{,a}", "\\*"]
pattern_st = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5).map(lambda t: "/" + "".join(t))
starfree_st = st.lists(st.sampled_from(STARFREE), min_size=1, max_size=4).map(lambda t: "/" + "".join(t))
ALPHABET = "ab/*c"
STRINGS = ["/" + "".join(p) for n in range(0, 6) for p in itertools.product(ALPHABET, repeat=n)]
SHORT_STRINGS = ["/" + "".join(p) for n in range(0, 5) for p in itertools.product(ALPHABET, repeat=n)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(pattern_st, pattern_st)
def test_covers_is_sound(general, specific):
    """If general covers specific, every string specific matches is matched by general."""
    count("glob.covers_sound")
    if aaglob.glob_covers(general, specific):
        for text in STRINGS:
            if aaglob.matches(specific, text):
                assert aaglob.matches(general, text), (general, specific, text)


def compiled_language(pattern, strings):
    """The strings of ``strings`` the pattern's compiled regex matches, compared as written (no collapsing).

    This is the language apparmor_parser builds: it collapses runs of ``/`` in the pattern text (after
    variable expansion; glob_to_regex does the same) but not a ``/`` an alternative or a class brings
    next to another one: ``apparmor_parser -QK -D rule-exprs`` shows ``/aa/{a,/} -> /aa/(a|/)`` and
    ``/bb/{/,}c -> /bb/(/|)c``.
    """
    import re

    regex = re.compile(aaglob.glob_to_regex(pattern), re.S)
    return [t for t in strings if regex.fullmatch(t)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(starfree_st, starfree_st)
def test_covers_is_exact_on_finite_languages(general, specific):
    """These star-free patterns match only strings of at most 5 characters; over the letters they
    name plus one stand-in ('c') for every other character, all strings are enumerated here and
    inclusion of the compiled languages (see compiled_language) is decided by brute force.

    Not over collapsed names (aaglob.matches collapses the name first): a kernel name never holds
    '//', so over names '/aa/{a,/}' matches only '/aa/a', yet glob_covers('/aa/a', '/aa/{a,/}') is
    False. That is glob_covers being conservative over names (never unsound: test_covers_is_sound),
    not an error: it decides inclusion of the languages the parser compiles, exactly, which is what is
    checked here. Collapsing each compiled string with collapse_name instead ('/aa//' -> '/aa/') is
    not the parser's semantics either (it writes no rule matching '/aa/' for '/aa/{a,/}').
    """
    count("glob.covers_exact")
    universe = compiled_language(specific, SHORT_STRINGS)
    general_language = set(compiled_language(general, SHORT_STRINGS))
    expected = all(t in general_language for t in universe)
    assert aaglob.glob_covers(general, specific) is expected, (general, specific, universe)


def test_exact_oracle_on_the_slash_alternative_case():
    # /aa/{a,/} compiles to /aa/(a|/): '/aa//' is in its language and '/aa/a' does not match it
    assert compiled_language("/aa/{a,/}", SHORT_STRINGS) == ["/aa/a", "/aa//"]
    assert aaglob.glob_covers("/aa/a", "/aa/{a,/}") is False
    assert aaglob.glob_covers("/aa/{a,/}", "/aa/a") is True


@settings(max_examples=EXAMPLES, deadline=None)
@given(pattern_st, st.sampled_from(STRINGS))
def test_regex_and_automaton_agree(pattern, text):
    """The regex path (matches) and the automaton path (glob_covers of a literal) must agree."""
    count("glob.regex_vs_automaton")
    assert aaglob.glob_covers(pattern, escape_glob(text)) is aaglob.matches(pattern, text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(pattern_st, st.sampled_from(STRINGS))
def test_linear_matcher_equals_regex(pattern, text):
    """compile_glob uses a lazily built DFA for multi-star patterns; it must agree with the regex."""
    import re

    count("glob.dfa_vs_regex")
    regex = re.compile(aaglob.glob_to_regex(pattern), re.S)
    name = aaglob.collapse_name(text)  # names are collapsed before matching (aaglob.matches)
    assert bool(aaglob.compile_glob(pattern).fullmatch(name)) is bool(regex.fullmatch(name))


def test_hostile_name_cannot_make_matching_explode():
    """Backtracking needs ~a minute for this (measured: 56 s); the automaton is linear."""
    import time

    t0 = time.process_time()
    assert not aaglob.matches("/*a*a*a*a*b", "/" + "a" * 4000)
    assert not aaglob.matches("/**a**a**a**a**b", "/" + "a/" * 2000)
    assert time.process_time() - t0 < 2.0


def test_zz_case_count():
    print("\nfuzz cases: %s" % {k: v for k, v in COUNTS.items() if k.startswith("glob.")})
    assert COUNTS.get("glob.covers_sound", 0) >= min(EXAMPLES, 10)
