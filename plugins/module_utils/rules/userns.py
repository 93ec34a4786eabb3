"""User namespace rules: ``userns [create],`` (AppArmor 4.0+, ABI 4.0).

Why ABI-gated: apparmor_parser 3.x does not know the keyword, so rendering for ABI 3.0 raises
AbiError instead of producing a profile that does not compile. The corpus
(testcase_userns_01: ``requested="userns_create"``) gives ``userns create,``.
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    event_mask_words,
    is_access_token,
    need_abi,
    parse_access,
    render_access,
    set_covers,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

USERNS_ACCESS = frozenset(("create",))


class UsernsRule(Rule):
    """``userns`` (all) or ``userns create``."""

    kind = "userns"
    keywords = ("userns",)
    events = (EventKind("userns", identity=("path", "target", "mask", "class"), match=("mask",),
                        fields=("path", "target")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None

    @classmethod
    def parse(cls, text: str) -> "UsernsRule":
        """Parse ``userns``, ``userns create``, ``userns (create)``."""
        quals, toks, comment = split_keyword(cls, text, "userns")
        access = None
        if toks and is_access_token(toks[0], {}, USERNS_ACCESS):
            access = parse_access(toks.pop(0), {}, USERNS_ACCESS)
        if toks:
            raise RuleParseError("unexpected %r in userns rule %r" % (" ".join(toks), text))
        return cls(access, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["UsernsRule"]:
        """``userns create`` for a ``userns_create`` event."""
        if event.get("kind") != "userns":
            return None
        req, den, _has = event_mask_words(event)
        words = set(w[len("userns_"):] if w.startswith("userns_") else w for w in (den or req))
        if not words:
            ops = event.get("operations") or []
            words = set(op[len("userns_"):] for op in ops if str(op).startswith("userns_"))
        if not words or not words <= USERNS_ACCESS:
            return None
        return cls(frozenset(words))

    def render_body(self, abi: str = "4.0") -> str:
        """``userns create`` (ABI 4.0+)."""
        need_abi(abi, (4, 0), "userns rules")
        return "userns" + render_access(self.access)

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access subset."""
        if not isinstance(other, UsernsRule) or not self.covers_qualifiers(other):
            return False
        return set_covers(self.access, other.access, USERNS_ACCESS)

    def _fields(self) -> Dict[str, Any]:
        return {"access": sorted(self.access) if self.access else None}
