"""change_profile rules: ``change_profile [safe|unsafe] [EXEC] [-> PROFILE],`` (apparmor.d(5)).

Why: a change_profile / change_onexec record names the profile the task asked to move to
(``target=``, or ``name=`` on older records); the rule allows exactly that (escaped) profile name,
as the corpus writes it: ``change_profile -> php-fpm//webapp,``. Same text for every ABI.
"""
from typing import Any, Dict, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    parse_value,
    render_value,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

EXEC_MODES = ("safe", "unsafe")


class ChangeProfileRule(Rule):
    """One change_profile rule; None fields mean "any"."""

    kind = "change_profile"
    keywords = ("change_profile",)
    # change_hat records have no rule of their own (a hat is a profile block); their kind lives here.
    # ``path`` in the identity is never set by the reader; it stays so that event ids do not change.
    events = (EventKind("change_profile", identity=("target", "path"), match=("target",), fields=("target", "name")),
              EventKind("change_hat", identity=("target", "path"), match=("target", "path"), fields=("target", "name")))

    def __init__(self, exec_mode: Optional[str] = None, exec_cond: Optional[str] = None,
                 target: Optional[str] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if exec_mode is not None and exec_mode not in EXEC_MODES:
            raise RuleParseError("unknown change_profile exec mode %r" % (exec_mode,))
        if exec_mode is not None and exec_cond is None:
            raise RuleParseError("a change_profile exec mode needs an exec condition")
        self.exec_mode = exec_mode
        self.exec_cond = exec_cond
        self.target = target

    @classmethod
    def parse(cls, text: str) -> "ChangeProfileRule":
        """Parse ``change_profile [safe|unsafe] [/exec] [-> target]``."""
        quals, toks, comment = split_keyword(cls, text, "change_profile")
        exec_mode = exec_cond = target = None
        if toks and toks[0] in EXEC_MODES:
            exec_mode = toks.pop(0)
        if toks and toks[0] != "->":
            exec_cond = parse_value(toks.pop(0))
        if toks:
            if toks[0] != "->" or len(toks) != 2:
                raise RuleParseError("unexpected %r in change_profile rule %r" % (" ".join(toks), text))
            target = parse_value(toks[1])
        return cls(exec_mode, exec_cond, target, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["ChangeProfileRule"]:
        """``change_profile -> <target>`` for change_profile / change_onexec events with a target."""
        if event.get("kind") != "change_profile" or event.get("info") == "label not found":
            return None  # a change to a label that does not exist: aa-logprof asks nothing
        target = event.get("target") or event.get("name")
        if not target:
            return None
        return cls(target=escape_glob(str(target)))

    def render_body(self, abi: str = "3.0") -> str:
        """``change_profile [mode] [exec] -> target``."""
        out = "change_profile"
        if self.exec_mode is not None:
            out += " " + self.exec_mode
        if self.exec_cond is not None:
            out += " " + render_value(self.exec_cond)
        if self.target is not None:
            out += " -> " + render_value(self.target)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Exec condition and target covered; an exec mode only covers the same mode.

        A rule without exec mode uses the kernel default (safe where supported), so it does not
        cover an explicit ``unsafe`` rule.
        """
        if not isinstance(other, ChangeProfileRule) or not self.covers_qualifiers(other):
            return False
        if (self.exec_mode or "safe") != (other.exec_mode or "safe") and self.exec_mode != "unsafe":
            return False
        return aare_covers(self.exec_cond, other.exec_cond, variables) and aare_covers(
            self.target, other.target, variables)

    def _fields(self) -> Dict[str, Any]:
        return {"exec_mode": self.exec_mode, "exec_cond": self.exec_cond, "target": self.target}
