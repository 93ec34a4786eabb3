"""Quoting and escaping of names in rendered AppArmor rules, and the reverse used by the parser.

Why this exists: a logged path is attacker-controlled. Writing ``/tmp/x, /** rwx,`` unquoted into a
profile would add a second rule; even *inside quotes* apparmor_parser 3.0.8 still expands globs
(``"/tmp/**"`` is a glob) and variables (``"@{HOME}"``), and it decodes string escapes first
(``\\x2a`` becomes a literal ``*``). The forms below were checked against the real parser with
``apparmor_parser -QK -D rule-exprs``:

* inside ``"..."``: ``\\\\`` is a literal backslash, ``\\"`` a quote, ``\\n \\t \\r \\a \\e \\f`` the
  control characters, ``\\ooo`` (octal, 1-3 digits), ``\\xhh`` (hex, 1-2 digits) and ``\\dnnn``
  (decimal, 3 digits) one byte; a numeric escape that yields a glob character yields the *literal*
  character. Any other ``\\c`` is passed to the glob layer, where it means a literal ``c``.
* the glob layer (AARE) treats ``\\c`` as the literal ``c`` for every ``c``.

Two representations are used across the engine:

* a **name**: the literal string (what the kernel logged), any character allowed;
* a **pattern** (AARE text): glob syntax where ``*?[]{}`` are special, ``@{VAR}`` is a variable and
  ``\\c`` is a literal ``c``. Rules store patterns; ``escape_glob(name)`` turns a name into the
  pattern matching exactly that name.

``quote_path`` renders a name, ``quote_pattern`` renders a pattern, ``unquote`` reads a token back
into a pattern, ``pattern_literal`` returns the name a glob-free pattern stands for.
"""
import re
from typing import List, Optional  # noqa: F401  (List is used in type comments)

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob

# Characters that are special to the AppArmor glob layer (outside and inside alternations).
GLOB_SPECIAL = frozenset("*?[]{}\\")
# Characters that can appear in a rendered name without quotes. Deliberately small: anything else
# (blank, comma, '#', quotes, parentheses, '=', '@', '^', '!', non-ASCII...) forces quoting.
_SAFE_UNQUOTED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+~%:")
_SAFE_BARE_PATTERN = _SAFE_UNQUOTED | frozenset("*?[]{}@")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# String escapes the parser decodes inside a token (see module docstring); \b and \v are NOT decoded.
_DECODE_NAMED = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "e": "\x1b", "f": "\f"}


class EscapeError(ValueError):
    """A name cannot be represented in a profile (e.g. it contains a NUL byte)."""


def _char_escape(c: str) -> str:
    """Escaped form of one character inside a quoted token (literal meaning for the glob layer)."""
    if c == "\\":
        # not "\\\\": the parser's lexer reads \\" as an escaped quote, so a name ending in a backslash
        # would swallow the following lines into one string (rule injection); \134 is a literal backslash
        return "\\134"
    if c in GLOB_SPECIAL:
        return "\\" + c
    if c == '"':
        return '\\"'
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd raw byte from undecodable log text
        return "\\%03o" % (code - 0xDC00)
    if code < 0x20 or code == 0x7F:
        return "\\%03o" % code
    if 0xD800 <= code <= 0xDFFF:
        raise EscapeError("lone surrogate U+%04X cannot be written to a profile" % code)
    if not c.isprintable() and c != " ":
        # U+0085, U+2028, U+2029, format characters...: harmless to the parser (it ends lines at
        # \n only) but editors and str.splitlines() would show two lines; write their UTF-8 bytes.
        return "".join("\\%03o" % b for b in c.encode("utf-8"))
    return c


def escape_glob(name: str) -> str:
    """Pattern (AARE text) that matches exactly ``name``: every glob character is backslashed.

    The one literal escaper of the engine (file, include and every other rule kind, answers, suggest).
    ``^`` is not escaped: apparmor_parser and aaglob read it as a literal outside ``[...]``, and a
    literal never holds an unescaped ``[``. Control characters and a NUL byte are kept raw: a pattern
    is not yet quoted; quote_pattern encodes them and refuses NUL (an answer may still name a NUL name).
    """
    if not isinstance(name, str):
        raise EscapeError("name must be a string, got %r" % (type(name).__name__,))
    out = []
    for c in name:
        out.append("\\" + c if c in GLOB_SPECIAL else c)
    return "".join(out)


def check_name(name: str) -> None:
    """EscapeError unless ``name`` can be written into a profile (a string without NUL byte)."""
    if not isinstance(name, str):
        raise EscapeError("name must be a string, got %r" % (type(name).__name__,))
    if "\x00" in name:
        raise EscapeError("name contains a NUL byte, which no AppArmor rule can express: %r" % (name,))


def needs_quotes(pattern: str) -> bool:
    """Whether a rendered token must be wrapped in double quotes."""
    return not pattern or any(c not in _SAFE_UNQUOTED for c in pattern)


def _bare(token: str, allowed: frozenset) -> bool:
    """A token that may be written without quotes: only ``allowed`` characters, not empty, and no
    leading ``-`` (a bare value must never read as an option or a ``->`` arrow)."""
    return bool(token) and token[0] != "-" and all(c in allowed for c in token)


def quote_path(name: str) -> str:
    """Render a literal name so apparmor_parser reads back exactly ``name``, with no glob or
    variable interpretation of any character. Quotes only when needed (plain paths stay plain)."""
    check_name(name)
    if _bare(name, _SAFE_UNQUOTED):
        return name
    return '"' + "".join(_char_escape(c) for c in name) + '"'


def quote_pattern(pattern: str, nul_ok: bool = False) -> str:
    """Render a pattern (glob syntax kept, ``\\c`` literals kept) as a token the parser reads back as
    the same pattern. Blanks, quotes and control characters are escaped; the token is quoted when it
    contains anything outside the safe set. ``nul_ok``: a NUL byte is written ``\\000`` (the values of
    the non-file kinds, which apparmor_parser accepts) instead of refused (paths, include names)."""
    if not (nul_ok and isinstance(pattern, str)):
        check_name(pattern)
    if _bare(pattern, _SAFE_BARE_PATTERN):
        # glob characters and variables are fine unquoted ('!' is not: the lexer rejects it; ','
        # inside {a,b} is legal but quoting makes the rule boundary obvious to a reader).
        return pattern
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise EscapeError("pattern ends with a lone backslash: %r" % (pattern,))
            nxt = pattern[i + 1]
            # \c means literal c: emit the literal-preserving escape for c.
            if nxt == "\\":
                out.append("\\134")  # see _char_escape: never \\\\ before a quote
            elif nxt in GLOB_SPECIAL:
                out.append("\\" + nxt)
            else:
                out.append(_char_escape(nxt))
            i += 2
            continue
        if c in "*?[]{}":
            out.append(c)
        else:
            out.append(_char_escape(c))
        i += 1
    return '"' + "".join(out) + '"'


def unquote(token: str, nul_ok: bool = False) -> str:
    """Read a token as apparmor_parser does (quotes removed, string escapes decoded) into a pattern.

    The result is canonical AARE text: glob characters that were escaped (or produced by a numeric
    escape) come out as ``\\c``; other escaped characters come out plain. Raises EscapeError on an
    unterminated quote or a trailing backslash, and on an encoded NUL byte unless ``nul_ok``.
    """
    if not isinstance(token, str):
        raise EscapeError("token must be a string, got %r" % (type(token).__name__,))
    text = token
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or _escaped_at(text, len(text) - 1):
            raise EscapeError("unterminated quoted string: %r" % (token,))
        text = text[1:-1]
    out: List[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            if c == '"':
                raise EscapeError("unescaped quote inside token: %r" % (token,))
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise EscapeError("token ends with a lone backslash: %r" % (token,))
        e = text[i + 1]
        i += 2
        value: Optional[str] = None
        if e in _DECODE_NAMED:
            value = _DECODE_NAMED[e]
        elif e in "01234567":
            j = i
            while j < n and j < i + 2 and text[j] in "01234567":
                j += 1
            value = chr(int(e + text[i:j], 8) & 0xFF)
            i = j
        elif e == "x" and i < n and text[i] in "0123456789abcdefABCDEF":
            j = i
            while j < n and j < i + 2 and text[j] in "0123456789abcdefABCDEF":
                j += 1
            value = chr(int(text[i:j], 16))
            i = j
        elif e == "d" and i + 3 <= n and all(ch in "0123456789" for ch in text[i:i + 3]):
            value = chr(int(text[i:i + 3], 10) & 0xFF)
            i += 3
        else:
            value = e
        if value in GLOB_SPECIAL:
            out.append("\\" + value)
        elif value == "\x00" and not nul_ok:
            raise EscapeError("token encodes a NUL byte: %r" % (token,))
        else:
            out.append(_byte_char(value, e))
    # numeric escapes of a UTF-8 sequence (\342\200\250) become that character again
    return "".join(out).encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


def read_pattern(token: str) -> str:
    """A value token of a non-file rule (bare or quoted) read back into a non-empty, well-formed pattern.

    The inverse of quote_pattern for every rule kind: unquote, then the glob must be balanced
    (``{}``/``[]``, variables counted as one character). Raises EscapeError.
    """
    if not token:
        raise EscapeError("missing value")
    value = unquote(token, nul_ok=True)
    if value == "":
        raise EscapeError("empty value %r" % (token,))
    check_pattern(value)
    return value


_UNESCAPED_VAR = re.compile(r"(?<!\\)@\{[A-Za-z0-9_]+\}")


def check_pattern(pattern: str) -> None:
    """EscapeError unless ``pattern`` is a well-formed glob (balanced ``{}``/``[]``, no lone trailing
    backslash); variables are checked as if they were one plain character."""
    try:
        aaglob.glob_to_regex(_UNESCAPED_VAR.sub("V", pattern))
    except ValueError as exc:  # aaglob.GlobError and any other refusal of the glob layer
        raise EscapeError("malformed pattern %r: %s" % (pattern, exc)) from None
    except RecursionError:
        raise EscapeError("pattern %r nests too deeply" % (pattern,)) from None


def _byte_char(value: str, esc: str) -> str:
    """Numeric escapes yield bytes; bytes >= 0x80 are kept as surrogateescape characters so that a
    name that was not valid UTF-8 survives a quote/unquote round trip."""
    code = ord(value)
    if esc in "01234567xd" and 0x80 <= code <= 0xFF:
        return chr(0xDC00 + code)
    return value


def _escaped_at(text: str, pos: int) -> bool:
    """True when text[pos] is preceded by an odd number of backslashes."""
    count = 0
    pos -= 1
    while pos >= 0 and text[pos] == "\\":
        count += 1
        pos -= 1
    return count % 2 == 1


def has_glob(pattern: str) -> bool:
    """Does the pattern contain an unescaped glob character or variable reference?"""
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[]{}":
            return True
        if c == "@" and i + 1 < n and pattern[i + 1] == "{":
            return True
        i += 1
    return False


def looks_like_pattern(text: str) -> bool:
    """Does ``text`` hold glob, escape or variable syntax (so an answer or a table wrote a pattern, not a
    name)? Wider than has_glob: ``\\*`` counts, since it is pattern text too."""
    return any(c in text for c in GLOB_SPECIAL) or "@{" in text


def literal_prefix(pattern: str) -> str:
    """Literal text before the first unescaped glob character or variable (escapes removed)."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in "*?[]{}" or (c == "@" and i + 1 < n and pattern[i + 1] == "{"):
            break
        out.append(c)
        i += 1
    return "".join(out)


def pattern_literal(pattern: str) -> Optional[str]:
    """The literal name a glob-free pattern stands for (escapes removed), else None."""
    return None if has_glob(pattern) else literal_prefix(pattern)


def name_to_text(name: str) -> str:
    """Name with surrogateescape'd bytes turned back into their raw bytes' UTF-8-ish display form,
    for messages only (never for rule text)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
