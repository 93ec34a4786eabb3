"""Include lines (``include <abstractions/base>``, ``#include``, ``include if exists``) and
variable assignments (``@{VAR} = a b``, ``@{VAR} += c``).

Why they are "rules" here: answers may cover an event with an abstraction instead of a path rule
(``include: abstractions/ssl_certs``), and the rules module dedupes them like any other line. They
differ from rules in one way: an include line has no trailing comma.

Include targets are restricted to plain relative names (letters, digits, ``_ . / + -``; no ``..``)
or absolute paths without quotes or ``>``: an include is never built from log text, but answers
come from inventory and a target like ``x> /** rwx,`` must not reach a profile.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Any, Dict, List, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import EscapeError, quote_pattern, unquote
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    DEFAULT_ABI,
    Rule,
    RuleParseError,
    abi_tuple,
    split_comment,
)

_INCLUDE_RE = re.compile(
    r'^(?:#include|include)(?P<ifexists>\s+if\s+exists)?\s+(?:<(?P<magic>[^<>\n]*)>|(?P<quoted>"(?:\\.|[^"\\])*")'
    r"|(?P<bare>[^\s\"<>]+))\s*$")
_SAFE_TARGET = re.compile(r"^[A-Za-z0-9_.+/-]+\Z")
_VARIABLE_RE = re.compile(r"^@\{(?P<name>[A-Za-z0-9_]+)\}\s*(?P<op>\+?=)\s*(?P<values>.*)$", re.S)


def check_include_target(target: str) -> str:
    """Validate an include target (raises RuleParseError) and return it."""
    if not isinstance(target, str) or not target or not _SAFE_TARGET.match(target):
        raise RuleParseError("include target %r must be a plain name (letters, digits, _ . / + -)" % (target,))
    if ".." in target.split("/"):
        raise RuleParseError("include target %r must not contain '..'" % (target,))
    if not [part for part in target.split("/") if part not in ("", ".")]:
        # "." or "/" is the include directory itself: apparmor_parser would include every file in
        # /etc/apparmor.d (tunables, other profiles) into this profile
        raise RuleParseError("include target %r names the include directory itself" % (target,))
    return target


class IncludeRule(Rule):
    """``include <target>`` (magic=True: searched under the profile directory) or ``include "/path"``."""

    kind = "include"
    keywords = ("include",)

    def __init__(self, target: str, magic: bool = True, if_exists: bool = False, comment: Optional[str] = None,
                 hash_form: bool = False) -> None:
        super().__init__(audit=False, deny=False, comment=comment)
        self.target = check_include_target(target)
        self.magic = bool(magic)
        self.if_exists = bool(if_exists)
        self.hash_form = bool(hash_form)

    @classmethod
    def can_parse(cls, text: str) -> bool:
        stripped = text.strip()
        if not re.match(r"^(?:#include|include)\s", stripped):
            return False
        try:
            cls.parse(stripped)
        except RuleParseError:
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> "IncludeRule":
        stripped = text.strip()
        if stripped.startswith("#"):
            rest, comment = split_comment(stripped[1:])
            stripped = "#" + rest
        else:
            stripped, comment = split_comment(stripped)
        m = _INCLUDE_RE.match(stripped.rstrip(","))
        if not m:
            raise RuleParseError("not an include line: %r" % (text,))
        hash_form = stripped.startswith("#")
        if m.group("magic") is not None:
            return cls(m.group("magic").strip(), True, bool(m.group("ifexists")), comment, hash_form)
        token = m.group("quoted") or m.group("bare")
        try:
            target = unquote(token)
        except EscapeError as exc:
            raise RuleParseError(str(exc)) from None
        return cls(target, False, bool(m.group("ifexists")), comment, hash_form)

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        inner = "<%s>" % self.target if self.magic else quote_pattern(self.target)
        return "include %s%s" % ("if exists " if self.if_exists else "", inner)

    def render(self, abi: str = DEFAULT_ABI) -> str:
        """Include lines take no trailing comma."""
        abi_tuple(abi)
        return self.render_body(abi)

    def covers(self, other: Rule, variables: Optional[Dict[str, List[str]]] = None) -> bool:
        # "include if exists <x>" and "include <x>" include the same file when it exists.
        return isinstance(other, IncludeRule) and (self.target, self.magic) == (other.target, other.magic)

    def index_key(self) -> tuple:
        return ("include", self.target)

    def _fields(self) -> Dict[str, Any]:
        return {"include": self.target, "magic": self.magic, "if_exists": self.if_exists}


class VariableRule(Rule):
    """``@{NAME} = v1 v2`` (or ``+=``). Values are patterns, rendered quoted when needed."""

    kind = "variable"

    def __init__(self, name: str, values: List[str], append: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(comment=comment)
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_]+\Z", name):
            raise RuleParseError("bad variable name %r" % (name,))
        self.name = name
        self.values = list(values)
        self.append = bool(append)

    @classmethod
    def can_parse(cls, text: str) -> bool:
        return bool(re.match(r"^\s*@\{[A-Za-z0-9_]+\}\s*\+?=", text))

    @classmethod
    def parse(cls, text: str) -> "VariableRule":
        body, comment = split_comment(text.strip())
        m = _VARIABLE_RE.match(body.strip().rstrip(","))
        if not m:
            raise RuleParseError("not a variable assignment: %r" % (text,))
        from ansible_collections.armada.apparmor.plugins.module_utils.aaglob import split_values

        try:
            values = split_values(m.group("values"))
        except EscapeError as exc:
            raise RuleParseError(str(exc)) from None
        return cls(m.group("name"), values, m.group("op") == "+=", comment)

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        values = " ".join(quote_pattern(v) for v in self.values)
        return "@{%s} %s %s" % (self.name, "+=" if self.append else "=", values)

    def render(self, abi: str = DEFAULT_ABI) -> str:
        abi_tuple(abi)
        return self.render_body(abi)

    def covers(self, other: Rule, variables: Optional[Dict[str, List[str]]] = None) -> bool:
        return self == other

    def index_key(self) -> tuple:
        return ("variable", self.name)

    def _fields(self) -> Dict[str, Any]:
        return {"name": self.name, "values": list(self.values), "append": self.append}
