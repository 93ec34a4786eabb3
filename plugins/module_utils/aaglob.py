"""AppArmor glob (AARE) semantics: matching names, pattern-vs-pattern coverage, variables.

Why a real implementation instead of aa-logprof's approach: aa-logprof decides "rule A covers rule
B" by matching A's regex against B's *text*, so ``/foo/*`` wrongly covers ``/foo/**`` (the text
``/foo/**`` has no slash after ``foo/``). Here patterns are compiled to small automata and coverage
is language inclusion, decided exactly over a finite alphabet (every character a pattern does not
name explicitly behaves identically, so one representative stands for all of them).

Semantics follow apparmor_parser 3.0.8 (checked with ``apparmor_parser -QK -D rule-exprs``):

* ``*``  any run of characters except ``/``; ``**`` any run including ``/``. When the ``*``/``**``
  starts a path element (first character, or the previous pattern character is ``/``) it must
  match at least one character, and that first character is not ``/``:
  ``/a/*`` -> ``/a/[^/][^/]*``, ``/a/**`` -> ``/a/[^/].*``; ``/d/{,x}*`` may match ``/d/``.
* ``?`` one character except ``/``; ``[abc]``, ``[a-z]``, ``[^abc]`` (negation may match ``/``, as in
  the parser); ``{a,b}`` alternation, nestable, empty alternatives allowed.
* ``\\c`` is a literal ``c``. ``@{NAME}`` is a variable, expanded by :func:`expand_variables`.
* runs of ``/`` collapse to one (the parser does this after variable expansion).
* NUL never matches.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import os
import re
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "GlobError", "glob_to_regex", "matches", "glob_covers", "expand_variables", "load_tunables",
    "normalize_variables", "collapse_slashes", "collapse_name", "compile_glob",
]

# Bounds that keep hostile inputs from exploding time or memory.
MAX_EXPANSIONS = 4096
MAX_VAR_DEPTH = 16
MAX_DFA_PAIRS = 20000

_VAR_RE = re.compile(r"@\{([A-Za-z0-9_]+)\}")


class GlobError(ValueError):
    """A pattern is malformed (unbalanced braces/brackets, trailing backslash, ...)."""


# ------------------------------------------------------------------------------------------------
# Parsing into a tiny AST
# Node forms: ("lit", c) | ("set", frozenset, negated) | ("star", slash_ok, min1) | ("alt", [seq...])
# A seq is a list of nodes.
# ------------------------------------------------------------------------------------------------
_NOSLASH = (frozenset("/"), True)  # [^/]
_ANY = (frozenset(), True)  # [^] (NUL is never part of a name)


def _parse(pattern: str) -> list:
    seq, pos = _parse_seq(pattern, 0, False)
    if pos != len(pattern):
        raise GlobError("unbalanced '}' at offset %d in %r" % (pos, pattern))
    return seq


def _parse_seq(p: str, i: int, in_alt: bool) -> Tuple[list, int]:
    seq: list = []
    n = len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise GlobError("pattern ends with a lone backslash: %r" % (p,))
            seq.append(("lit", p[i + 1]))
            i += 2
        elif c == "*":
            elem_start = i == 0 or p[i - 1] == "/"
            if i + 1 < n and p[i + 1] == "*":
                seq.append(("star", True, elem_start))
                i += 2
            else:
                seq.append(("star", False, elem_start))
                i += 1
        elif c == "?":
            seq.append(("set",) + _NOSLASH)
            i += 1
        elif c == "[":
            node, i = _parse_class(p, i)
            seq.append(node)
        elif c == "{":
            alts = []
            i += 1
            while True:
                sub, i = _parse_seq(p, i, True)
                alts.append(sub)
                if i >= n:
                    raise GlobError("unbalanced '{' in %r" % (p,))
                if p[i] == ",":
                    i += 1
                    continue
                # p[i] == "}"
                i += 1
                break
            seq.append(("alt", alts))
        elif c == "}" or (c == "," and in_alt):
            if not in_alt:
                return seq, i  # caller reports the unbalanced '}'
            return seq, i
        elif c == "]":
            raise GlobError("unbalanced ']' at offset %d in %r" % (i, p))
        else:
            seq.append(("lit", c))
            i += 1
    return seq, i


def _parse_class(p: str, i: int) -> Tuple[tuple, int]:
    n = len(p)
    i += 1
    negated = False
    if i < n and p[i] == "^":
        negated = True
        i += 1
    chars = set()
    prev: Optional[str] = None
    first = True
    while True:
        if i >= n:
            raise GlobError("unbalanced '[' in %r" % (p,))
        c = p[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\":
            if i + 1 >= n:
                raise GlobError("pattern ends with a lone backslash: %r" % (p,))
            c = p[i + 1]
            i += 2
        elif c == "-" and prev is not None and i + 1 < n and p[i + 1] != "]":
            hi = p[i + 1]
            step = 2
            if hi == "\\" and i + 2 < n:
                hi = p[i + 2]
                step = 3
            if ord(hi) < ord(prev):
                raise GlobError("reversed range %r-%r in %r" % (prev, hi, p))
            if ord(hi) - ord(prev) > 0x10000:
                raise GlobError("character range too large in %r" % (p,))
            for code in range(ord(prev), ord(hi) + 1):
                chars.add(chr(code))
            prev = None
            i += step
            continue
        else:
            i += 1
        chars.add(c)
        prev = c
    chars.discard("\x00")
    return ("set", frozenset(chars), negated), i


# ------------------------------------------------------------------------------------------------
# Regex form (one name against one pattern)
# ------------------------------------------------------------------------------------------------
def _set_regex(chars: FrozenSet[str], negated: bool) -> str:
    body = "".join(_class_escape(c) for c in sorted(chars))
    if negated:
        return "[^\\x00" + body + "]"
    if not body:
        return "(?!)"
    return "[" + body + "]"


def _class_escape(c: str) -> str:
    if c in "\\]^-[":
        return "\\" + c
    return c


def _seq_regex(seq: list) -> str:
    out = []
    for node in seq:
        tag = node[0]
        if tag == "lit":
            out.append(re.escape(node[1]))
        elif tag == "set":
            out.append(_set_regex(node[1], node[2]))
        elif tag == "star":
            slash_ok, min1 = node[1], node[2]
            body = "[^\\x00]" if slash_ok else "[^/\\x00]"
            out.append(("[^/\\x00]" + body + "*") if min1 else (body + "*"))
        else:  # alt
            out.append("(?:" + "|".join(_seq_regex(s) for s in node[1]) + ")")
    return "".join(out)


@lru_cache(maxsize=8192)
def glob_to_regex(pattern: str) -> str:
    """Python regular expression (for ``re.fullmatch``) equivalent to an AppArmor glob.

    Variables must be expanded first; an unexpanded ``@{X}`` raises GlobError because its meaning
    is unknown (callers decide whether unknown means "no match").
    """
    if _VAR_RE.search(_strip_escapes_for_var_scan(pattern)):
        raise GlobError("unexpanded variable in %r" % (pattern,))
    return _seq_regex(_parse(collapse_slashes(pattern)))


def _strip_escapes_for_var_scan(pattern: str) -> str:
    """Replace escaped characters by a neutral one so ``\\@\\{X\\}`` is not taken for a variable."""
    return re.sub(r"\\.", "_", pattern, flags=re.S)


class _LazyDFA:
    """Linear-time matcher for patterns with several stars.

    Python's backtracking ``re`` needs exponential time for ``/*a*a*a*a*b`` against a long name,
    and names come from logs, i.e. from whoever named the file. This
    determinises the pattern's automaton on demand: one dict lookup per character. Characters the
    pattern never names all behave alike, so they share one representative.
    """

    MAX_STATES = 4096

    def __init__(self, pattern: str) -> None:
        nfa, start = _nfa_for([pattern])
        self._nfa = nfa
        self._explicit = nfa.explicit_chars() | {"/"}
        other = "\ue000"
        while other in self._explicit:
            other = chr(ord(other) + 1)
        self._other = other
        self._ids: Dict[FrozenSet[int], int] = {start: 0}
        self._sets = [start]
        self._trans: List[Dict[str, int]] = [{}]
        self._accept = [nfa.accept in start]

    def _state(self, states: FrozenSet[int]) -> int:
        sid = self._ids.get(states)
        if sid is None:
            if len(self._sets) >= self.MAX_STATES:
                return -2  # too many states: the caller falls back to stepping the NFA
            sid = len(self._sets)
            self._ids[states] = sid
            self._sets.append(states)
            self._trans.append({})
            self._accept.append(self._nfa.accept in states)
        return sid

    def fullmatch(self, text: str) -> bool:
        if "\x00" in text:
            return False
        sid = 0
        explicit, other, trans = self._explicit, self._other, self._trans
        for pos, c in enumerate(text):
            key = c if c in explicit else other
            nxt = trans[sid].get(key)
            if nxt is None:
                states = self._nfa.step(self._sets[sid], key)
                if not states:
                    nxt = -1
                else:
                    nxt = self._state(states)
                    if nxt == -2:
                        return self._slow(states, text[pos + 1:])
                trans[sid][key] = nxt
            if nxt < 0:
                return False
            sid = nxt
        return self._accept[sid]

    def _slow(self, states: FrozenSet[int], rest: str) -> bool:
        for c in rest:
            states = self._nfa.step(states, c if c in self._explicit else self._other)
            if not states:
                return False
        return self._nfa.accept in states


def _star_count(pattern: str) -> int:
    count = 0
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "*":
            count += 1
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
        i += 1
    return count


@lru_cache(maxsize=8192)
def compile_glob(pattern: str):
    """Object with ``fullmatch(name)`` (truthy on a match) for an expanded pattern: the ``re`` regex
    when the pattern has at most one star run (linear), else a lazily determinised automaton so a
    long hostile name can never make matching explode. Raises GlobError like glob_to_regex."""
    regex = re.compile(glob_to_regex(pattern), re.S)
    if _star_count(pattern) <= 1:
        return regex
    return _LazyDFA(collapse_slashes(pattern))


_compiled = compile_glob


def matches(pattern: str, text: str, variables: Optional[Dict[str, Sequence[str]]] = None) -> bool:
    """Does the literal name ``text`` match the glob ``pattern`` (variables expanded from
    ``variables``; a pattern whose variables cannot all be expanded matches nothing)?"""
    if "\x00" in text:
        return False
    text = collapse_name(text)
    for expanded in expand_variables(pattern, variables):
        try:
            if _compiled(expanded).fullmatch(text):
                return True
        except GlobError:
            continue
    return False


def collapse_name(text: str) -> str:
    """collapse_slashes for a literal name (no escapes): what the kernel/parser would compare."""
    if "//" not in text:
        return text
    lead = "/" if text.startswith("//") and not text.startswith("///") else ""
    return lead + re.sub("/{2,}", "/", text)


def collapse_slashes(pattern: str) -> str:
    """Collapse runs of unescaped ``/`` to one, as apparmor_parser does after variable expansion.

    Like the parser (POSIX), exactly two leading slashes are kept (``//a//b`` -> ``//a/b``) while
    three or more collapse (``///a`` -> ``/a``); checked with ``apparmor_parser -D rule-exprs``.
    """
    if "//" not in pattern:
        return pattern
    out = []
    i = 0
    if pattern.startswith("//") and not pattern.startswith("///"):
        out.append("//")
        i = 2
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "/" and out and out[-1] == "/":
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# Variables
# ------------------------------------------------------------------------------------------------
def normalize_variables(variables: Optional[Dict[str, Iterable[str]]]) -> Dict[str, List[str]]:
    """Accept {"HOME": [...]} or {"@{HOME}": [...]} (or a single string value); return NAME -> list."""
    out: Dict[str, List[str]] = {}
    for key, values in (variables or {}).items():
        name = key[2:-1] if key.startswith("@{") and key.endswith("}") else key
        if isinstance(values, str):
            values = [values]
        out[name] = [str(v) for v in values]
    return out


def expand_variables(text: str, variables: Optional[Dict[str, Sequence[str]]] = None) -> List[str]:
    """All expansions of ``@{VAR}`` references in ``text`` (cartesian product, recursive).

    Unknown variables are left in place (so a caller can tell them apart); at most MAX_EXPANSIONS
    results, deepest nesting MAX_VAR_DEPTH. Escaped ``\\@\\{`` is not a variable.
    """
    variables = normalize_variables(variables) if variables else {}
    results = [text]
    for _depth in range(MAX_VAR_DEPTH):
        changed = False
        nxt: List[str] = []
        for item in results:
            m = _find_var(item, variables)
            if m is None:
                nxt.append(item)
                continue
            changed = True
            start, end, name = m
            for value in variables[name]:
                nxt.append(item[:start] + value + item[end:])
                if len(nxt) > MAX_EXPANSIONS:
                    raise GlobError("variable expansion of %r exceeds %d alternatives" % (text, MAX_EXPANSIONS))
        results = nxt
        if not changed:
            break
    else:
        raise GlobError("variables nested deeper than %d in %r" % (MAX_VAR_DEPTH, text))
    seen = set()
    out = []
    for item in results:
        item = collapse_slashes(item)
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _find_var(text: str, variables: Dict[str, List[str]]) -> Optional[Tuple[int, int, str]]:
    """First known unescaped @{NAME} in text as (start, end, name)."""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "@" and i + 1 < n and text[i + 1] == "{":
            m = _VAR_RE.match(text, i)
            if m and m.group(1) in variables:
                return m.start(), m.end(), m.group(1)
        i += 1
    return None


def has_unknown_variable(text: str) -> bool:
    """True when an unescaped @{NAME} remains (after expansion)."""
    return bool(_VAR_RE.search(_strip_escapes_for_var_scan(text)))


_TUNABLE_ASSIGN = re.compile(r"^\s*@\{([A-Za-z0-9_]+)\}\s*(\+?=)\s*(.*?)\s*(?:#.*)?$")
_INCLUDE = re.compile(r"^\s*#?include\s+(if\s+exists\s+)?[<\"]([^>\"]+)[>\"]\s*$")


def load_tunables(apparmor_d: str = "/etc/apparmor.d", entry: str = "tunables/global") -> Dict[str, List[str]]:
    """Read variable definitions from ``tunables/global`` and what it includes (directories too).

    Returns NAME -> list of values (``+=`` appends). Missing files give an empty result: the
    controller may have no AppArmor at all, and coverage then works without variables.
    """
    variables: Dict[str, List[str]] = {}
    seen: set = set()

    def read(path: str, depth: int) -> None:
        if depth > 20 or path in seen:
            return
        seen.add(path)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.startswith(".") or name.endswith(("~", ".dpkg-new", ".dpkg-old", ".rpmnew", ".rpmsave")):
                    continue
                read(os.path.join(path, name), depth + 1)
            return
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return
        for line in lines:
            inc = _INCLUDE.match(line)
            if inc:
                target = inc.group(2)
                read(target if target.startswith("/") else os.path.join(apparmor_d, target), depth + 1)
                continue
            m = _TUNABLE_ASSIGN.match(line)
            if not m:
                continue
            name, op, rest = m.group(1), m.group(2), m.group(3)
            values = split_values(rest)
            if op == "+=":
                variables.setdefault(name, []).extend(values)
            else:
                variables[name] = values

    read(os.path.join(apparmor_d, entry), 0)
    return variables


def split_values(text: str) -> List[str]:
    """Split a variable's value list on blanks (quotes group; quotes removed, escapes kept)."""
    from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import unquote

    out = []
    for token in re.findall(r'"(?:\\.|[^"\\])*"|\S+', text):
        out.append(unquote(token) if token.startswith('"') else token)
    return out


# ------------------------------------------------------------------------------------------------
# Pattern-vs-pattern coverage (language inclusion)
# ------------------------------------------------------------------------------------------------
class _NFA:
    """Thompson NFA whose edges are labelled with (chars, negated) character sets."""

    def __init__(self) -> None:
        self.edges: List[List[Tuple[FrozenSet[str], bool, int]]] = []
        self.eps: List[List[int]] = []
        self.accept = -1

    def new(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build_seq(self, seq: list, start: int) -> int:
        cur = start
        for node in seq:
            tag = node[0]
            if tag == "lit":
                nxt = self.new()
                self.edges[cur].append((frozenset(node[1]), False, nxt))
                cur = nxt
            elif tag == "set":
                nxt = self.new()
                self.edges[cur].append((node[1], node[2], nxt))
                cur = nxt
            elif tag == "star":
                slash_ok, min1 = node[1], node[2]
                label = _ANY if slash_ok else _NOSLASH
                if min1:
                    first = self.new()
                    self.edges[cur].append(_NOSLASH + (first,))
                    cur = first
                loop = self.new()
                self.eps[cur].append(loop)
                self.edges[loop].append(label + (loop,))
                cur = loop
            else:
                end = self.new()
                for sub in node[1]:
                    s = self.new()
                    self.eps[cur].append(s)
                    e = self.build_seq(sub, s)
                    self.eps[e].append(end)
                cur = end
        return cur

    def closure(self, states: Iterable[int]) -> FrozenSet[int]:
        stack = list(states)
        seen = set(stack)
        while stack:
            s = stack.pop()
            for t in self.eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def step(self, states: FrozenSet[int], c: str) -> FrozenSet[int]:
        out = set()
        for s in states:
            for chars, negated, t in self.edges[s]:
                if (c not in chars) if negated else (c in chars):
                    out.add(t)
        return self.closure(out) if out else frozenset()

    def explicit_chars(self) -> set:
        chars = set()
        for edges in self.edges:
            for cs, _neg, _t in edges:
                chars.update(cs)
        return chars


def _nfa_for(patterns: Sequence[str]) -> Tuple[_NFA, FrozenSet[int]]:
    nfa = _NFA()
    start = nfa.new()
    ends = []
    for pattern in patterns:
        s = nfa.new()
        nfa.eps[start].append(s)
        ends.append(nfa.build_seq(_parse(collapse_slashes(pattern)), s))
    nfa.accept = nfa.new()
    for e in ends:
        nfa.eps[e].append(nfa.accept)
    return nfa, nfa.closure([start])


@lru_cache(maxsize=16384)
def _covers_expanded(general: Tuple[str, ...], specific: Tuple[str, ...]) -> bool:
    g, g0 = _nfa_for(general)
    s, s0 = _nfa_for(specific)
    alphabet = g.explicit_chars() | s.explicit_chars() | {"/"}
    # One representative for every character no pattern names explicitly.
    other = "\ue000"
    while other in alphabet:
        other = chr(ord(other) + 1)
    alphabet.add(other)
    alphabet.discard("\x00")
    letters = sorted(alphabet)
    start = (s0, g0)
    seen = {start}
    stack = [start]
    while stack:
        sset, gset = stack.pop()
        if s.accept in sset and g.accept not in gset:
            return False
        for c in letters:
            ns = s.step(sset, c)
            if not ns:
                continue
            ng = g.step(gset, c)
            pair = (ns, ng)
            if pair not in seen:
                if len(seen) >= MAX_DFA_PAIRS:
                    return False  # undecided within bounds: answer "not covered" (the safe side)
                seen.add(pair)
                stack.append(pair)
    return True


def glob_covers(general: str, specific: str, variables: Optional[Dict[str, Sequence[str]]] = None) -> bool:
    """Does every name matched by ``specific`` also match ``general``? (Pattern vs pattern.)

    Exact language inclusion after variable expansion. A pattern with a variable that cannot be
    expanded only covers a pattern with the identical text. Malformed patterns cover nothing.
    """
    if general == specific:
        return True
    try:
        gen = expand_variables(general, variables)
        spec = expand_variables(specific, variables)
    except GlobError:
        return False
    gen_known = [p for p in gen if not has_unknown_variable(p)]
    if any(has_unknown_variable(p) for p in spec):
        # only textual identity can cover an unknown variable
        return all(p in gen for p in spec if has_unknown_variable(p)) and (
            not [p for p in spec if not has_unknown_variable(p)]
            or _safe_covers(tuple(gen_known), tuple(p for p in spec if not has_unknown_variable(p))))
    if not gen_known:
        return False
    return _safe_covers(tuple(gen_known), tuple(spec))


def _safe_covers(general: Tuple[str, ...], specific: Tuple[str, ...]) -> bool:
    if not general:
        return False
    try:
        return _covers_expanded(general, specific)
    except GlobError:
        return False
