"""Message queue rules: ``mqueue [access] [type=posix|sysv] [label=LABEL] [NAME],`` (ABI 4.0+).

Why: POSIX queue names (``/queuename``) come from the application and are escaped AAREs; SysV
queues are numeric keys. The corpus (testcase_mqueue_*) writes the *denied* access and the queue
type from the record class: ``mqueue read type=posix /queuename,``, ``mqueue write type=sysv 123,``
and ``mqueue write type=sysv,`` when no key is logged. apparmor_parser 3.x does not know the keyword,
so ABI 3.0 rendering raises AbiError.
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    aare_fields_dict,
    is_access_token,
    logged_access,
    need_abi,
    parse_access,
    parse_single,
    parse_value,
    render_access,
    render_value,
    set_covers,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

MQUEUE_ACCESS = frozenset(("create", "open", "delete", "read", "write", "getattr", "setattr"))
MQUEUE_ALIASES = {"r": ("read",), "w": ("write",), "rw": ("read", "write")}
MQUEUE_TYPES = ("posix", "sysv")


class MqueueRule(Rule):
    """One mqueue rule; None fields mean "any"."""

    kind = "mqueue"
    keywords = ("mqueue",)
    events = (EventKind("mqueue", identity=("path", "target", "mask", "class"), match=("path", "mask", "class"),
                        fields=("path", "target", "owner")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, mq_type: Optional[str] = None,
                 label: Optional[str] = None, name: Optional[str] = None, audit: bool = False,
                 deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if mq_type is not None and mq_type not in MQUEUE_TYPES:
            raise RuleParseError("unknown mqueue type %r" % (mq_type,))
        self.access = frozenset(access) if access else None
        self.mq_type = mq_type
        self.label = label
        self.name = name

    @classmethod
    def parse(cls, text: str) -> "MqueueRule":
        """Parse ``mqueue (read, write) type=posix label=foo /name``."""
        quals, toks, comment = split_keyword(cls, text, "mqueue")
        access = mq_type = label = name = None
        if toks and is_access_token(toks[0], MQUEUE_ALIASES, MQUEUE_ACCESS):
            access = parse_access(toks.pop(0), MQUEUE_ALIASES, MQUEUE_ACCESS)
        for tok in toks:
            key, value = split_cond(tok)
            if key == "type" and mq_type is None and name is None:
                mq_type = parse_single(value)
            elif key == "label" and label is None and name is None:
                label = parse_single(value)
            elif key is None and name is None:
                name = parse_value(tok)
                if not (name.startswith(("/", "@{")) or name.isdigit()):
                    # apparmor.d: POSIX queue names start with '/', SysV keys are numbers
                    raise RuleParseError("mqueue name must be /posix-name or a SysV number: %r" % (tok,))
            else:
                raise RuleParseError("unexpected %r in mqueue rule %r" % (tok, text))
        return cls(access, mq_type, label, name, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["MqueueRule"]:
        """``mqueue <denied> type=<posix|sysv> [name]`` from an mqueue event."""
        if event.get("kind") != "mqueue":
            return None
        try:
            access = logged_access(event, MQUEUE_ALIASES, MQUEUE_ACCESS)
        except RuleParseError:
            return None
        klass = str(event.get("class") or "")
        mq_type = klass[:-len("_mqueue")] if klass in ("posix_mqueue", "sysv_mqueue") else None
        path = event.get("path")
        name = escape_glob(str(path)) if path not in (None, "") else None
        if name is not None and not (name.startswith("/") or name.isdigit()):
            return None  # not a queue name AppArmor can write (see parse)
        return cls(access, mq_type, None, name)

    def render_body(self, abi: str = "4.0") -> str:
        """``mqueue read type=posix /queuename`` (ABI 4.0+)."""
        need_abi(abi, (4, 0), "mqueue rules")
        out = "mqueue" + render_access(self.access)
        if self.mq_type is not None:
            out += " type=" + self.mq_type
        if self.label is not None:
            out += " label=" + render_value(self.label)
        if self.name is not None:
            out += " " + render_value(self.name)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access subset, same type when set, label and name covered."""
        if not isinstance(other, MqueueRule) or not self.covers_qualifiers(other):
            return False
        if self.mq_type is not None and self.mq_type != other.mq_type:
            return False
        return (set_covers(self.access, other.access, MQUEUE_ACCESS)
                and aare_covers(self.label, other.label, variables)
                and aare_covers(self.name, other.name, variables))

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, mq_type=self.mq_type, label=self.label, name=self.name)
