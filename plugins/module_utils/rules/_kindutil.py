"""Shared helpers for the non-file rule kinds (network, unix, signal, ptrace, dbus, mount, ...).

Every one of these kinds carries *names* that come straight from a log record (peer labels, dbus
paths/interfaces/members, unix addresses, queue names, mount points): attacker-influenced text. A
value is held as a pattern (AARE text) and escaped, quoted and read back by aaescape.py, the one
escaper of the engine (``escape_glob`` for a logged name, ``quote_pattern`` to write it,
``read_pattern`` to read it, ``pattern_literal`` for the name a glob-free value stands for). This
module adds the token grammar the kinds share (lists, conditionals, access words) and matching.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import EscapeError, quote_pattern, read_pattern
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    RuleParseError,
    abi_tuple,
)


class AbiError(RuleParseError):
    """The rule cannot be written for the requested ABI (e.g. ``userns`` before ABI 4.0)."""


#: The accesses of the socket rule kinds, network and unix alike (apparmor.d(5)).
SOCKET_ACCESS = frozenset(("create", "bind", "listen", "accept", "connect", "shutdown", "getattr", "setattr",
                           "getopt", "setopt", "send", "receive"))
# The kernel defines AA_MAY_SEND as AA_MAY_WRITE and AA_MAY_RECEIVE as AA_MAY_READ, so r/w are
# aliases of receive/send (apparmor.d(5) lists r, w, rw among the accesses).
SOCKET_ALIASES = {"r": ("receive",), "read": ("receive",), "w": ("send",), "write": ("send",),
                  "rw": ("receive", "send")}
#: The socket accesses that involve the remote end: only these go with a ``peer=(...)`` (and a unix rule with a
#: peer part and no access list grants just these).
SOCKET_PEER_ACCESS = frozenset(("connect", "send", "receive", "accept"))


def render_value(aare: str) -> str:
    """A rule value as a token (aaescape.quote_pattern, a NUL byte written ``\\000``); an empty value
    or one no profile can carry (a lone surrogate) is a RuleParseError like every other bad rule."""
    if not isinstance(aare, str) or aare == "":
        raise RuleParseError("empty value cannot be rendered")
    try:
        return quote_pattern(aare, nul_ok=True)
    except EscapeError as exc:
        raise RuleParseError(str(exc)) from None


def render_fields(rule: Any, keys: Sequence[str]) -> str:
    """`` key=VALUE`` for each of ``keys`` the rule sets (None = not written), in that order."""
    return "".join(" %s=%s" % (key, render_value(getattr(rule, key))) for key in keys
                   if getattr(rule, key) is not None)


def render_peer(**parts: Optional[str]) -> str:
    """`` peer=(addr=A label=L)`` from the parts that are set, in the order given; "" when none is."""
    inner = ["%s=%s" % (key, render_value(value)) for key, value in parts.items() if value is not None]
    return " peer=(%s)" % " ".join(inner) if inner else ""


def parse_value(token: str) -> str:
    """One value token (bare or quoted) back into its pattern (aaescape.read_pattern), errors as
    RuleParseError."""
    try:
        return read_pattern(token)
    except EscapeError as exc:
        raise RuleParseError(str(exc)) from None


# ---- tokens ----------------------------------------------------------------------------------

def split_list(inner: str) -> List[str]:
    """Split the inside of ``( ... )`` on commas/blanks outside quotes, braces and parentheses."""
    items: List[str] = []
    cur: List[str] = []
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
    out: List[str] = []
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


def split_keyword(rule_cls: Any, text: str, keyword: str) -> Tuple[Dict[str, bool], List[str], Optional[str]]:
    """The qualifiers, the tokens after ``keyword`` (conditionals joined) and the comment of a rule that
    must start with ``keyword``; RuleParseError for any other rule."""
    quals, rest, comment = rule_cls.split(text)
    if not rest or rest[0] != keyword:
        raise RuleParseError("not a rule of kind %s: %r" % (keyword, text))
    return quals, join_conditionals(rest[1:]), comment


def take_access(toks: List[str], aliases: Dict[str, Iterable[str]], valid: Iterable[str]) -> Optional[FrozenSet[str]]:
    """Pop and parse a leading access word or list from ``toks``; None when the rule has none."""
    if toks and is_access_token(toks[0], aliases, valid):
        return parse_access(toks.pop(0), aliases, valid)
    return None


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
    out: Dict[str, str] = {}
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


def denied_access(event: Dict[str, Any], valid: Iterable[str]) -> Tuple[bool, Optional[FrozenSet[str]]]:
    """(rule wanted, access) of a socket event: the denied words (None for an old record without a mask);
    no rule when something was requested and nothing denied, or a denied word is not a valid access."""
    req, den, has_mask = event_mask_words(event)
    if has_mask and req and not den:
        return False, None
    if not den:
        return True, None
    try:
        return True, parse_access("(%s)" % " ".join(den), {}, valid)
    except RuleParseError:
        return False, None


def logged_access(event: Dict[str, Any], aliases: Dict[str, Iterable[str]],
                  valid: Iterable[str]) -> Optional[FrozenSet[str]]:
    """The denied words of an event, else the requested ones, as an access set (None when it logs neither);
    RuleParseError for a word that is not a valid access."""
    req, den, _has = event_mask_words(event)
    words = den or req
    return parse_access("(%s)" % " ".join(words), aliases, valid) if words else None


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
    out: Dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, (set, frozenset)):
            out[key] = sorted(value)
        else:
            out[key] = value
    return out
