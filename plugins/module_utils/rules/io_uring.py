"""io_uring rules: ``io_uring [access] [label=LABEL],`` (AppArmor 4.0+, ABI 4.0).

Why: ``sqpoll`` and ``override_creds`` are the two mediated operations; override_creds names the
label whose credentials are borrowed (logged as ``target=``), written as an escaped AARE. The corpus
(testcase_io_uring_01) gives ``io_uring sqpoll,``. apparmor_parser 3.x does not know the keyword,
so ABI 3.0 rendering raises AbiError.
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    aare_fields_dict,
    event_mask_words,
    is_access_token,
    need_abi,
    parse_access,
    parse_single,
    render_access,
    render_value,
    set_covers,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

IO_URING_ACCESS = frozenset(("sqpoll", "override_creds"))


class IoUringRule(Rule):
    """One io_uring rule; None fields mean "any"."""

    kind = "io_uring"
    keywords = ("io_uring",)
    events = (EventKind("io_uring", identity=("path", "target", "mask", "class"), match=("mask", "target"),
                        fields=("path", "target", "peer")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, label: Optional[str] = None,
                 audit: bool = False, deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None
        self.label = label

    @classmethod
    def parse(cls, text: str) -> "IoUringRule":
        """Parse ``io_uring (sqpoll, override_creds) label=foo``."""
        quals, toks, comment = split_keyword(cls, text, "io_uring")
        access = label = None
        if toks and is_access_token(toks[0], {}, IO_URING_ACCESS):
            access = parse_access(toks.pop(0), {}, IO_URING_ACCESS)
        for tok in toks:
            key, value = split_cond(tok)
            if key == "label" and label is None:
                label = parse_single(value)
            else:
                raise RuleParseError("unexpected %r in io_uring rule %r" % (tok, text))
        return cls(access, label, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["IoUringRule"]:
        """``io_uring <denied>`` (+ ``label=<tcontext>``, or ``<target>`` for override_creds)."""
        if event.get("kind") != "io_uring":
            return None
        req, den, _has = event_mask_words(event)
        words = den or req
        if not words:
            ops = event.get("operations") or []
            # kernel operation names: uring_sqpoll, uring_override (the override_creds access)
            words = [{"override": "override_creds"}.get(op[6:], op[6:]) for op in ops if str(op).startswith("uring_")]
        try:
            access = parse_access("(%s)" % " ".join(words), {}, IO_URING_ACCESS) if words else None
        except RuleParseError:
            return None
        if access is None:
            return None
        # the label the record names: tcontext= (read as the peer), else target= of override_creds
        target = event.get("peer") or (event.get("target") if "override_creds" in access else None)
        label = escape_glob(str(target)) if target else None
        return cls(access, label)

    def render_body(self, abi: str = "4.0") -> str:
        """``io_uring sqpoll`` / ``io_uring override_creds label=X`` (ABI 4.0+)."""
        need_abi(abi, (4, 0), "io_uring rules")
        out = "io_uring" + render_access(self.access)
        if self.label is not None:
            out += " label=" + render_value(self.label)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access subset and label covered."""
        if not isinstance(other, IoUringRule) or not self.covers_qualifiers(other):
            return False
        return set_covers(self.access, other.access, IO_URING_ACCESS) and aare_covers(
            self.label, other.label, variables)

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, label=self.label)
