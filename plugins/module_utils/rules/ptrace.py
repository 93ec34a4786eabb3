"""Ptrace rules: ``[audit] [deny] ptrace [access] [peer=LABEL],`` (apparmor.d(5)).

Why: a ptrace event names the peer label it tried to read or trace; the rule grants exactly that
access to exactly that (escaped) label. ``r``/``w``/``rw`` are the parser's aliases for
read/trace. Same text for every ABI.
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    aare_fields_dict,
    event_mask_words,
    is_access_token,
    parse_access,
    parse_value,
    render_access,
    render_value,
    set_covers,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

PTRACE_ACCESS = frozenset(("read", "readby", "trace", "tracedby"))
PTRACE_ALIASES = {"r": ("read",), "w": ("trace",), "rw": ("read", "trace")}


class PtraceRule(Rule):
    """One ptrace rule; ``access``/``peer`` None mean all."""

    kind = "ptrace"
    keywords = ("ptrace",)
    events = (EventKind("ptrace", identity=("peer", "mask"), match=("peer", "mask"),
                        fields=("peer", "name", "target")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, peer: Optional[str] = None,
                 audit: bool = False, deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None
        self.peer = peer

    @classmethod
    def parse(cls, text: str) -> "PtraceRule":
        """Parse ``ptrace (read, trace) peer=foo`` and the other apparmor.d(5) forms."""
        quals, toks, comment = split_keyword(cls, text, "ptrace")
        access = None
        peer = None
        if toks and is_access_token(toks[0], PTRACE_ALIASES, PTRACE_ACCESS):
            access = parse_access(toks.pop(0), PTRACE_ALIASES, PTRACE_ACCESS)
        for tok in toks:
            key, value = split_cond(tok)
            if key == "peer" and peer is None:
                peer = parse_value(value)
            else:
                raise RuleParseError("unexpected %r in ptrace rule %r" % (tok, text))
        return cls(access, peer, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["PtraceRule"]:
        """``ptrace <denied> peer=<peer>``; None, as in aa-logprof (logparser: "ignored garbage ptrace
        event"), when the record has no peer or no denied mask."""
        if event.get("kind") != "ptrace":
            return None
        _req, den, _has = event_mask_words(event)
        words = den
        peer = event.get("peer")
        if not words or not peer:
            return None
        try:
            access = parse_access("(%s)" % " ".join(words), PTRACE_ALIASES, PTRACE_ACCESS) if words else None
        except RuleParseError:
            return None
        return cls(access, escape_glob(str(peer)) if peer else None)

    def render_body(self, abi: str = "3.0") -> str:
        """``ptrace read peer=X``."""
        out = "ptrace" + render_access(self.access)
        if self.peer is not None:
            out += " peer=" + render_value(self.peer)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access subset and peer AARE coverage."""
        if not isinstance(other, PtraceRule) or not self.covers_qualifiers(other):
            return False
        return set_covers(self.access, other.access, PTRACE_ACCESS) and aare_covers(self.peer, other.peer, variables)

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, peer=self.peer)
