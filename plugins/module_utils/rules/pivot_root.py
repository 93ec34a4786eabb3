"""pivot_root rules: ``pivot_root [oldroot=OLD] [NEWROOT] [-> PROFILE],`` (apparmor.d(5)).

Why: the corpus (testcase_pivotroot_01) writes the logged ``srcname`` (put_old) as ``oldroot=`` and
the logged ``name`` as the new root; both are escaped literals. Same text for every ABI.
"""
from typing import Any, Dict, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    parse_value,
    render_value,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError


class PivotRootRule(Rule):
    """One pivot_root rule; None fields mean "any"."""

    kind = "pivot_root"
    keywords = ("pivot_root",)
    events = (EventKind("pivot_root", identity=("path", "srcname", "fstype", "flags"), match=("path", "srcname"),
                        fields=("path", "target", "srcname", "fstype", "flags")),)

    def __init__(self, oldroot: Optional[str] = None, newroot: Optional[str] = None,
                 target: Optional[str] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.oldroot = oldroot
        self.newroot = newroot
        self.target = target

    @classmethod
    def parse(cls, text: str) -> "PivotRootRule":
        """Parse ``pivot_root oldroot=/a/ /b/ -> prof``."""
        quals, toks, comment = split_keyword(cls, text, "pivot_root")
        oldroot = newroot = target = None
        i = 0
        while i < len(toks):
            tok = toks[i]
            key, value = split_cond(tok)
            if key == "oldroot" and oldroot is None and newroot is None and target is None:
                oldroot = parse_value(value)
            elif tok == "->" and target is None and i + 1 < len(toks):
                target = parse_value(toks[i + 1])
                i += 1
            elif key is None and tok != "->" and newroot is None and target is None:
                newroot = parse_value(tok)
            else:
                raise RuleParseError("unexpected %r in pivot_root rule %r" % (tok, text))
            i += 1
        return cls(oldroot, newroot, target, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["PivotRootRule"]:
        """``pivot_root oldroot=<srcname> <name>`` for a pivot_root event."""
        if event.get("kind") != "pivot_root":
            return None

        def lit(value: Any) -> Optional[str]:
            return escape_glob(str(value)) if value not in (None, "") else None

        return cls(lit(event.get("srcname")), lit(event.get("path")))

    def render_body(self, abi: str = "3.0") -> str:
        """``pivot_root oldroot=/old/ /new/ -> prof``."""
        out = "pivot_root"
        if self.oldroot is not None:
            out += " oldroot=" + render_value(self.oldroot)
        if self.newroot is not None:
            out += " " + render_value(self.newroot)
        if self.target is not None:
            out += " -> " + render_value(self.target)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Every part AARE-covered (absent = any)."""
        if not isinstance(other, PivotRootRule) or not self.covers_qualifiers(other):
            return False
        return all(aare_covers(getattr(self, k), getattr(other, k), variables)
                   for k in ("oldroot", "newroot", "target"))

    def _fields(self) -> Dict[str, Any]:
        return {"oldroot": self.oldroot, "newroot": self.newroot, "target": self.target}
