"""Shared helpers for the non-file rule kinds (network, unix, signal, ptrace, dbus, mount, ...).

Why a helper module: every one of these kinds carries *names* that come straight from a log record
(peer labels, dbus paths/interfaces/members, unix addresses, queue names, mount points). A log record
is attacker-influenced text, so every kind must turn such a name into exactly one AARE value and write
it so apparmor_parser reads back that same value: never a second rule, never a wider pattern.

Conventions (checked against apparmor_parser 3.0.8 with ``--dump rule-exprs``):

* Internally a value is an **AARE** string, the text apparmor_parser matches with: ``\\`` escapes
  only the glob specials ``* ? [ ] { } ^ \\``; every other character stands for itself. A literal
  name from an event becomes an AARE with :func:`escape_literal`. ``@{VAR}`` in an AARE is a
  variable reference (a literal ``@{`` is written ``@\\{`` so the parser does not expand it).
* :func:`render_value` writes an AARE bare when it only holds harmless characters, else inside
  double quotes where ``"`` is ``\\042``, a literal backslash ``\\134`` (the parser's lexer would
  read ``\\"`` as an escaped quote) and every non-printable character (newline, tab, DEL,
  U+2028, lone surrogates...) is written as octal escapes of its UTF-8 bytes, so a rendered rule is
  always one printable line.
* :func:`parse_value` is the exact inverse: quoted or bare token -> AARE.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    RuleParseError,
    abi_tuple,
)

# The characters that are special in an AARE and must be backslash-escaped to be literal.
AARE_SPECIALS = "*?[]{}^\\"
# Characters a value may carry without quotes. Deliberately small: no blank, quote, comma, '#',
# '(', ')', '=', '!' or backslash, so a bare value can never end the rule, open a comment or be
# read as a different conditional.
_BARE_OK = re.compile(r"[A-Za-z0-9_./:@+~%*?\[\]{}^-]+")
_OCTAL = re.compile(r"[0-3][0-7][0-7]")


class AbiError(RuleParseError):
    """The rule cannot be written for the requested ABI (e.g. ``userns`` before ABI 4.0)."""


def escape_literal(text: str) -> str:
    """AARE that matches exactly the literal ``text`` (log names are literals, never patterns)."""
    out = []
    for ch in text:
        if ch in AARE_SPECIALS:
            out.append("\\")
        out.append(ch)
    return "".join(out)


def unescape_aare(aare: str) -> Optional[str]:
    """The literal an AARE stands for, or None when it holds an unescaped glob or a variable."""
    out = []
    i = 0
    n = len(aare)
    while i < n:
        ch = aare[i]
        if ch == "\\" and i + 1 < n:
            out.append(aare[i + 1])
            i += 2
            continue
        if ch in "*?[]{}^" or (ch == "@" and i + 1 < n and aare[i + 1] == "{"):
            return None
        out.append(ch)
        i += 1
    return "".join(out)


def _octal(ch: str) -> str:
    """Octal escapes (``\\012``) for every UTF-8 byte of one character.

    A surrogate U+DC80..U+DCFF is an undecodable log byte (Python's surrogateescape) and is written as
    that byte. Any other lone surrogate stands for no byte sequence at all, so no profile file can
    carry it: that is a clear error, not a guess.
    """
    try:
        data = ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise RuleParseError("value holds the lone surrogate U+%04X, which no profile file can carry" % ord(ch)) \
            from None
    return "".join("\\%03o" % b for b in data)


def render_value(aare: str) -> str:
    """Write an AARE as a rule token: bare when harmless, else quoted with escapes (see module doc)."""
    if not isinstance(aare, str) or aare == "":
        raise RuleParseError("empty value cannot be rendered")
    if _BARE_OK.fullmatch(aare) and not aare.startswith("-"):
        return aare
    out = ['"']
    i = 0
    n = len(aare)
    while i < n:
        ch = aare[i]
        if ch == "\\":
            nxt = aare[i + 1] if i + 1 < n else ""
            if nxt == "\\":
                # literal backslash: octal, never ``\\``. apparmor_parser's lexer reads ``\\"`` as an
                # escaped quote (flex longest match), so ``"a\\" name="x"`` would swallow the next
                # conditional; ``\134`` is read back as an escaped (literal) backslash.
                out.append("\\134")
                i += 2
                continue
            if nxt and nxt in AARE_SPECIALS:
                out.append("\\" + nxt)
                i += 2
                continue
            # A lone backslash before an ordinary character is just that character (AARE rule).
            i += 1
            continue
        if ch == '"':
            out.append("\\042")  # octal, for the same lexer reason as the backslash
        elif not ch.isprintable():
            out.append(_octal(ch))
        else:
            out.append(ch)
        i += 1
    out.append('"')
    return "".join(out)


def parse_value(token: str) -> str:
    """Read one value token (bare or quoted, as written in a profile) back into its AARE.

    Mirrors apparmor_parser: the quotes are removed; ``\\NNN`` octal escapes become the byte they
    name (re-escaped when that byte is an AARE special); ``\\"`` is a quote; ``\\`` before a glob
    special stays an escape; a backslash before any other character is dropped.
    """
    if token is None or token == "":
        raise RuleParseError("missing value")
    text = token
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or _ends_escaped(text):
            raise RuleParseError("unterminated quoted value %r" % (token,))
        text = text[1:-1]
    elif '"' in text:
        raise RuleParseError("stray quote in value %r" % (token,))
    buf = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise RuleParseError("dangling backslash in value %r" % (token,))
            nxt = text[i + 1]
            if _OCTAL.match(text, i + 1):
                byte = int(text[i + 1:i + 4], 8)
                if chr(byte) in AARE_SPECIALS:
                    buf += b"\\"
                buf.append(byte)
                i += 4
                continue
            if nxt in AARE_SPECIALS:
                buf += ("\\" + nxt).encode("ascii")
            else:
                buf += nxt.encode("utf-8", "surrogateescape")
            i += 2
            continue
        buf += ch.encode("utf-8", "surrogateescape")
        i += 1
    value = buf.decode("utf-8", "surrogateescape")
    if value == "":
        raise RuleParseError("empty value %r" % (token,))
    check_aare(value)
    return value


_UNESCAPED_VAR = re.compile(r"(?<!\\)@\{[A-Za-z0-9_]+\}")


def check_aare(aare: str) -> None:
    """RuleParseError unless ``aare`` is a well-formed glob (balanced ``{}``/``[]``, no lone
    trailing backslash); variables are checked as if they were one plain character."""
    try:
        aaglob.glob_to_regex(_UNESCAPED_VAR.sub("V", aare))
    except aaglob.GlobError as exc:
        raise RuleParseError("malformed pattern %r: %s" % (aare, exc)) from None


def _ends_escaped(text: str) -> bool:
    """True when the closing quote of ``"..."`` is itself escaped (odd run of backslashes)."""
    count = 0
    i = len(text) - 2
    while i >= 1 and text[i] == "\\":
        count += 1
        i -= 1
    return count % 2 == 1


# ---- tokens ----------------------------------------------------------------------------------

def split_list(inner: str) -> List[str]:
    """Split the inside of ``( ... )`` on commas/blanks outside quotes, braces and parentheses."""
    items = []  # type: List[str]
    cur = []  # type: List[str]
    depth = 0
    in_quote = False
    i = 0
    n = len(inner)
    while i < n:
        ch = inner[i]
        if ch == "\\" and i + 1 < n:
            cur.append(inner[i:i + 2])
            i += 2
            continue
        if ch == '"':
            in_quote = not in_quote
            cur.append(ch)
        elif in_quote:
            cur.append(ch)
        elif ch in "({[":
            depth += 1
            cur.append(ch)
        elif ch in ")}]":
            depth -= 1
            cur.append(ch)
        elif depth == 0 and (ch == "," or ch.isspace()):
            if cur:
                items.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
        i += 1
    if in_quote or depth:
        raise RuleParseError("unbalanced list %r" % (inner,))
    if cur:
        items.append("".join(cur))
    return items


def is_paren(token: str) -> bool:
    """A ``( ... )`` group token."""
    return len(token) >= 2 and token[0] == "(" and token[-1] == ")"


def paren_items(token: str) -> List[str]:
    """Items of a ``( ... )`` group token (empty group is an error)."""
    items = split_list(token[1:-1])
    if not items:
        raise RuleParseError("empty list %r" % (token,))
    return items


def join_conditionals(tokens: Sequence[str]) -> List[str]:
    """Glue ``key = value`` / ``key= value`` / ``key =value`` into ``key=value`` and ``->x`` into
    ``->``, ``x`` so kinds only see one shape. ``options in (..)`` is kept as ``options in=(..)``.
    """
    out = []  # type: List[str]
    i = 0
    toks = list(tokens)
    while i < len(toks):
        tok = toks[i]
        if tok.startswith("->") and tok != "->":
            out.append("->")
            toks.insert(i + 1, tok[2:])
            i += 1
            continue
        if tok == "=" and out and i + 1 < len(toks):
            out[-1] = out[-1] + "=" + toks[i + 1]
            i += 2
            continue
        if tok.startswith("=") and out and not out[-1].endswith("=") and len(tok) > 1 and _is_key(out[-1]):
            out[-1] = out[-1] + tok
            i += 1
            continue
        if tok.endswith("=") and _is_key(tok[:-1]) and i + 1 < len(toks):
            out.append(tok + toks[i + 1])
            i += 2
            continue
        if tok == "in" and out and _is_key(out[-1]) and i + 1 < len(toks):
            out[-1] = out[-1] + " in=" + toks[i + 1]
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _is_key(word: str) -> bool:
    return bool(re.fullmatch(r"[a-z_]+", word))


def split_cond(token: str) -> Tuple[Optional[str], str]:
    """``key=value`` -> (key, value); ``options in=(..)`` -> ("options in", "(..)"); else (None, token)."""
    m = re.match(r"^([a-z_]+(?: in)?)=(.*)$", token, re.S)
    if not m:
        return None, token
    return m.group(1), m.group(2)


def parse_access(token: str, aliases: Dict[str, Iterable[str]], valid: Iterable[str]) -> FrozenSet[str]:
    """Access word or ``(a, b)`` list -> set of canonical access names (aliases like r/w expanded)."""
    words = paren_items(token) if is_paren(token) else [token]
    out = set()
    valid_set = set(valid)
    for word in words:
        if word in aliases:
            out.update(aliases[word])
        elif word in valid_set:
            out.add(word)
        else:
            raise RuleParseError("unknown access %r" % (word,))
    return frozenset(out)


def is_access_token(token: str, aliases: Dict[str, Iterable[str]], valid: Iterable[str]) -> bool:
    """Does this token look like an access word/list of the kind (without raising)?"""
    try:
        parse_access(token, aliases, valid)
        return True
    except RuleParseError:
        return False


def render_access(access: Optional[FrozenSet[str]], parens_always: bool = False) -> str:
    """`` send`` / `` (receive, send)`` / "" (all); sorted like aa-logprof writes them."""
    if not access:
        return ""
    words = sorted(access)
    if len(words) == 1 and not parens_always:
        return " " + words[0]
    return " (" + ", ".join(words) + ")"


def parse_peer_group(token: str, allowed: Iterable[str]) -> Dict[str, str]:
    """``(label=x addr=y)`` -> {"label": aare, "addr": aare}; unknown or repeated keys are errors."""
    if not is_paren(token):
        raise RuleParseError("peer expects (...), got %r" % (token,))
    out = {}  # type: Dict[str, str]
    allowed_set = set(allowed)
    for item in join_conditionals(paren_items(token)):
        key, value = split_cond(item)
        if key is None or key not in allowed_set:
            raise RuleParseError("unknown peer conditional %r" % (item,))
        if key in out:
            raise RuleParseError("peer conditional %r repeated" % (key,))
        out[key] = parse_single(value)
    return out


def parse_single(value: str) -> str:
    """Value that may be wrapped in one pair of parentheses: ``(x)`` or ``("x")`` or ``x``."""
    if is_paren(value):
        items = paren_items(value)
        if len(items) != 1:
            raise RuleParseError("expected one value in %r" % (value,))
        value = items[0]
    return parse_value(value)


def event_mask_words(event: Dict[str, Any]) -> Tuple[List[str], List[str], bool]:
    """(requested words, denied words, has_mask) of an event's ``mask`` (docs/events.md)."""
    mask = event.get("mask")
    if not isinstance(mask, dict):
        return [], [], False
    req = str(mask.get("requested") or "").replace(",", " ").split()
    den = str(mask.get("denied") or "").replace(",", " ").split()
    return req, den, True


def extra(event: Dict[str, Any], key: str) -> Any:
    """A field the reader kept under ``extra`` (unknown keys), or None."""
    ext = event.get("extra")
    if isinstance(ext, dict):
        return ext.get(key)
    return None


def need_abi(abi: Any, minimum: Tuple[int, int], what: str) -> None:
    """Raise AbiError when ``abi`` is older than ``minimum`` (e.g. userns needs 4.0)."""
    if abi_tuple(abi) < minimum:
        raise AbiError("%s needs ABI %d.%d or later (asked for %s)" % (what, minimum[0], minimum[1], abi))


# ---- matching ------------------------------------------------------------------------------

def aare_covers(general: Optional[str], specific: Optional[str], variables: Optional[Dict[str, Any]] = None) -> bool:
    """Does AARE ``general`` match everything AARE ``specific`` matches?

    ``None`` means "any value" (the conditional is absent): a general None covers everything, a
    specific None is only covered by a general None. Otherwise this is the exact language
    inclusion of aaglob.glob_covers (variables expanded), which errs on "not covered".
    """
    if general is None:
        return True
    if specific is None:
        return False
    return aaglob.glob_covers(general, specific, variables)


def set_covers(general: Optional[FrozenSet[str]], specific: Optional[FrozenSet[str]],
               everything: Optional[FrozenSet[str]] = None) -> bool:
    """Access-style sets: None means all (``everything`` when known)."""
    if general is None:
        return True
    if specific is None:
        return everything is not None and everything <= general
    return specific <= general


def aare_fields_dict(**fields: Any) -> Dict[str, Any]:
    """to_dict helper: sets become sorted lists, None stays None."""
    out = {}  # type: Dict[str, Any]
    for key, value in fields.items():
        if isinstance(value, (set, frozenset)):
            out[key] = sorted(value)
        else:
            out[key] = value
    return out
