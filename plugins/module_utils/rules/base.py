"""Common base for every AppArmor rule kind.

One ``Rule`` instance stands for one rule line of a profile (``audit deny /x rw,``). Every kind lives
in its own file under ``rules/`` and subclasses :class:`Rule`; the registry in ``rules/__init__.py``
tries kinds in order. This module also holds the small text helpers every kind needs (quote-aware
comment stripping and tokenising, qualifier parsing, ABI comparison) so that each kind parses the
same way: a rule must never be split at a ``,`` or ``#`` that sits inside quotes or parentheses,
otherwise one hostile name could smuggle a second rule into a profile.

Standard library only: this runs on managed hosts (Python 3.8+).
"""
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

# ABI targets the renderers know. The string form is what users pass ("3.0"); tuples compare.
KNOWN_ABIS = ("3.0", "4.0", "5.0")
DEFAULT_ABI = "3.0"

# Qualifiers valid in front of any rule (``owner`` is file-only and handled by the file kind).
COMMON_QUALIFIERS = ("audit", "deny", "allow")


class RuleParseError(ValueError):
    """A rule text could not be parsed; the message names the offending text."""


def abi_tuple(abi: Any) -> Tuple[int, int]:
    """Turn "3.0", "abi/4.0", "<abi/5.0>" or 3 into (major, minor) so ABIs compare numerically.

    Renderers branch on the ABI (e.g. network forms only ABI 4.0+ knows), hence one parser for all.
    """
    if isinstance(abi, (tuple, list)) and len(abi) == 2:
        return int(abi[0]), int(abi[1])
    text = str(abi if abi is not None else DEFAULT_ABI).strip().strip("<>\"").strip()
    if text.startswith("abi/"):
        text = text[4:]
    parts = text.split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and parts[1] != "" else 0
    except ValueError:
        raise RuleParseError("unknown ABI %r: expected one of %s" % (abi, ", ".join(KNOWN_ABIS))) from None
    return major, minor


def split_comment(text: str) -> Tuple[str, Optional[str]]:
    """Split ``body  # comment`` at the first ``#`` outside quotes that follows a blank (or starts
    the text); return (body, comment or None).

    Quote-aware because a quoted path may legitimately contain ``#``. A backslash escapes the next
    character (inside and outside quotes), as in apparmor_parser's lexer.
    """
    in_quote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
        elif c == "#" and not in_quote and (i == 0 or text[i - 1] in " \t"):
            # a comment starts at a '#' after a blank; "/a/#b" is a path (apparmor_parser agrees).
            # "#include" is a directive, not a comment; callers handle directives before this.
            return text[:i].rstrip(), text[i + 1:].strip()
        i += 1
    return text.rstrip(), None


def strip_rule(text: str) -> Tuple[str, Optional[str]]:
    """Normalise one rule line: drop surrounding blanks, a trailing comment and the trailing comma.

    Returns (body, comment). Raises RuleParseError for an empty rule or for text that holds more
    than one rule (an unquoted comma before the end), so callers never silently accept two rules.
    """
    if not isinstance(text, str):
        raise RuleParseError("rule text must be a string, got %r" % (type(text).__name__,))
    body, comment = split_comment(text.strip())
    body = body.strip()
    if body.endswith(","):
        body = body[:-1].rstrip()
    if not body:
        raise RuleParseError("empty rule: %r" % (text,))
    pos = find_unquoted(body, ",")
    if pos >= 0:
        raise RuleParseError("more than one rule (unquoted ',' at offset %d) in %r" % (pos, text))
    return body, comment


def find_unquoted(text: str, char: str, start: int = 0) -> int:
    """Index of ``char`` outside quotes, parentheses and braces (after ``start``), or -1.

    Braces count because ``{a,b}`` alternations contain commas that do not end a rule; parentheses
    because ``(send, receive)`` lists do not either.
    """
    in_quote = False
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
        elif not in_quote:
            if c in "({[":
                depth += 1
            elif c in ")}]":
                depth = max(0, depth - 1)
            elif c == char and depth == 0:
                return i
        i += 1
    return -1


def tokenize(text: str) -> List[str]:
    """Split rule text on blanks outside quotes and parentheses; tokens keep their quotes.

    ``peer=(label=foo addr=@bar)`` stays one token, ``"/a b"`` stays one token with its quotes (use
    aaescape.unquote to read it). Parentheses group only when they open a token or follow ``=``;
    elsewhere (``/dev/shm/test(me``) they are literal, as for apparmor_parser. An unterminated quote
    or group raises RuleParseError.
    """
    tokens: List[str] = []
    cur: List[str] = []
    in_quote = False
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
            cur.append(c)
        elif in_quote:
            cur.append(c)
        elif c == "(" and (depth > 0 or not cur or cur[-1] == "="):
            # a group opens at a token start or after '=' (peer=(...), (send, receive)); inside a
            # path such as /dev/shm/test(me the parser reads '(' literally
            depth += 1
            cur.append(c)
        elif c == ")" and depth > 0:
            depth -= 1
            cur.append(c)
        elif c.isspace() and depth == 0:
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if in_quote:
        raise RuleParseError("unterminated quote in %r" % (text,))
    if depth:
        raise RuleParseError("unbalanced '(' in %r" % (text,))
    if cur:
        tokens.append("".join(cur))
    return tokens


def parse_qualifiers(tokens: List[str], extra: Tuple[str, ...] = ()) -> Tuple[Dict[str, bool], List[str]]:
    """Consume leading qualifiers (audit, deny, allow, plus ``extra`` such as "owner").

    Returns ({"audit": bool, "deny": bool, "allow": bool, <extra>: bool}, remaining tokens).
    ``allow`` and ``deny`` together is an error, as in apparmor_parser.
    """
    names = COMMON_QUALIFIERS + tuple(extra)
    quals = dict((name, False) for name in names)
    i = 0
    while i < len(tokens) and tokens[i] in names:
        if quals[tokens[i]]:
            raise RuleParseError("qualifier %r repeated in %r" % (tokens[i], " ".join(tokens)))
        quals[tokens[i]] = True
        i += 1
    if quals["allow"] and quals["deny"]:
        raise RuleParseError("'allow' and 'deny' together in %r" % (" ".join(tokens),))
    return quals, tokens[i:]


class EventKind(NamedTuple):
    """What one event kind is (docs/events.md), declared once by the rule module that handles it.

    Every table about kinds (events.KINDS and identity, answers.EVENT_KINDS and MATCH_FIELDS,
    suggest.MATCH_FIELDS_BY_KIND, the file-like kinds) is derived from these declarations by the
    registry in ``rules/__init__.py``; tests/unit/engine/test_kind_registry.py proves they agree.
    """

    #: the event's ``kind`` value
    name: str
    #: fields after (kind, host, profile) that decide which records fold into one event; ``mask`` means
    #: ``mask["requested"]``, ``capability`` the name when logged (else the number)
    identity: Tuple[str, ...]
    #: fields a pending question matches on, in the order written (a subset of ``identity``, which
    #: may name ``capability`` where a question writes ``capname``)
    match: Tuple[str, ...]
    #: every kind-specific field the reader may set on such an event (answers may match on them)
    fields: Tuple[str, ...]
    #: rules for it are file rules: the mask is permission letters and an answer's glob is the path
    file_rule: bool = False


class Rule:
    """One rule line. Subclasses set ``kind`` and ``keywords`` and implement parse/render_body/covers.

    Equality and hashing use :meth:`_identity` so identical rules dedupe in sets; the comment is not
    part of identity (two lines that differ only in their comment are the same rule).
    """

    kind: str = ""
    # Leading keywords (after qualifiers) that identify this kind; used by the default can_parse.
    keywords: Tuple[str, ...] = ()
    # Extra qualifiers this kind accepts before its keyword (file rules: "owner").
    extra_qualifiers: Tuple[str, ...] = ()
    # The event kinds this class builds rules from (from_event) or, without a rule, documents.
    events: Tuple[EventKind, ...] = ()

    def __init__(self, audit: bool = False, deny: bool = False, comment: Optional[str] = None) -> None:
        self.audit = bool(audit)
        self.deny = bool(deny)
        self.comment = comment

    # ---- parsing -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Rule":
        """Parse one rule (with or without its trailing comma and comment). Raises RuleParseError."""
        raise NotImplementedError

    @classmethod
    def can_parse(cls, text: str) -> bool:
        """Cheap check: does the first keyword after qualifiers belong to this kind?"""
        try:
            body, _comment = strip_rule(text)
            tokens = tokenize(body)
            _quals, rest = parse_qualifiers(tokens, cls.extra_qualifiers)
        except RuleParseError:
            return False
        if not rest:
            return False
        head = rest[0]
        return any(head == kw or head.startswith(kw + "=") for kw in cls.keywords)

    @classmethod
    def split(cls, text: str) -> Tuple[Dict[str, bool], List[str], Optional[str]]:
        """Shared front half of parse: (qualifiers, tokens after qualifiers, comment)."""
        body, comment = strip_rule(text)
        quals, rest = parse_qualifiers(tokenize(body), cls.extra_qualifiers)
        return quals, rest, comment

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["Rule"]:
        """The minimal rule of this kind that the event needs, or None when the event is not ours."""
        return None

    # ---- rendering -----------------------------------------------------------------------------
    def qualifier_prefix(self) -> str:
        """"audit deny " etc.: the qualifiers in the order apparmor_parser and aa-logprof write them."""
        out = []
        if self.audit:
            out.append("audit")
        if self.deny:
            out.append("deny")
        return " ".join(out) + (" " if out else "")

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        """Rule text after the qualifiers and without the comma (subclasses implement)."""
        raise NotImplementedError

    def render(self, abi: str = DEFAULT_ABI) -> str:
        """Full rule text with qualifiers and trailing comma, e.g. ``audit capability net_raw,``.

        ``abi`` ("3.0", "4.0", "5.0", "abi/4.0"...) is checked here once for every kind."""
        abi_tuple(abi)
        return self.qualifier_prefix() + self.render_body(abi) + ","

    def render_line(self, abi: str = DEFAULT_ABI, with_comment: bool = True) -> str:
        """render() plus the comment when one was parsed (comments keep newlines out: one line)."""
        text = self.render(abi)
        if with_comment and self.comment:
            text += "  # " + self.comment.replace("\n", " ")
        return text

    # ---- comparison ----------------------------------------------------------------------------
    def covers_qualifiers(self, other: "Rule") -> bool:
        """Qualifier part of coverage: same allow/deny side; an audit rule is needed to cover audit.

        A non-audit allow rule does not cover an audit rule because adding the audit rule changes
        what is logged; the reverse is fine (``audit /x r`` allows what ``/x r`` allows).
        """
        if self.kind != other.kind:
            return False
        if self.deny != other.deny:
            return False
        return not (other.audit and not self.audit)

    def covers(self, other: "Rule", variables: Optional[Dict[str, List[str]]] = None) -> bool:
        """Does this rule allow (or deny) everything ``other`` does? Subclasses extend."""
        return self.covers_qualifiers(other) and self._identity()[3:] == other._identity()[3:]

    def index_key(self) -> tuple:
        """Bucket key for indexing / dedupe: rules in different buckets never cover each other."""
        return (self.kind,)

    def to_dict(self, abi: str = DEFAULT_ABI) -> Dict[str, Any]:
        """Structured JSON-able form (modules/filters return it) with ``text`` rendered for ``abi``.

        The text must be the one written for the ABI asked for: at 3.0 a network rule with accesses
        or addresses is written widened (``network inet stream,``), at 4.0 with them. ``text`` is left
        out when that ABI cannot express the rule (``userns`` at 3.0); an unknown ``abi`` raises
        RuleParseError rather than silently giving no text.
        """
        abi_tuple(abi)
        data: Dict[str, Any] = {"kind": self.kind, "audit": self.audit, "deny": self.deny}
        data.update(self._fields())
        if self.comment:
            data["comment"] = self.comment
        try:
            data["text"] = self.render(abi)
        except (NotImplementedError, RuleParseError):
            pass
        return data

    def _fields(self) -> Dict[str, Any]:
        """Kind-specific structured fields for to_dict (subclasses override)."""
        return {}

    def _identity(self) -> tuple:
        """Tuple used for ==/hash: (class, audit, deny, fields...)."""
        fields = self._fields()
        return (type(self).__name__, self.audit, self.deny) + tuple(
            (k, _freeze(fields[k])) for k in sorted(fields))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._identity() == other._identity()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        try:
            return "<%s %s>" % (type(self).__name__, self.render())
        except Exception:  # repr must never raise
            return "<%s %r>" % (type(self).__name__, self._fields())


def _freeze(value: Any) -> Any:
    """Hashable form of lists/dicts/sets for identity tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(_freeze(v) for v in value))
    return value
