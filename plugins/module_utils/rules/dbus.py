"""D-Bus rules: ``dbus [access] [bus=] [path=] [name=] [interface=] [member=] [peer=(name= label=)],``.

Why: dbus names, paths, interfaces and members are chosen by whatever process sits on the bus, so
they are hostile text; each becomes an escaped AARE written by ``_kindutil.render_value``. What
from_event writes follows the corpus (aa-logprof): message rules (send/receive) carry bus, path,
interface, member and ``peer=(label=...)``; service rules (bind) carry bus and name; eavesdrop
carries the bus only. The logged destination ``name=`` of a message is not written, like
aa-logprof. Same text for every ABI (dbus mediation is in ABI 3.0).
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    aare_fields_dict,
    event_mask_words,
    extra,
    parse_access,
    parse_peer_group,
    parse_single,
    render_access,
    render_fields,
    render_peer,
    set_covers,
    split_cond,
    split_keyword,
    take_access,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

DBUS_ACCESS = frozenset(("send", "receive", "bind", "eavesdrop"))
DBUS_ALIASES = {"r": ("receive",), "read": ("receive",), "w": ("send",), "write": ("send",),
                "rw": ("send", "receive")}
# Rendering order (aa-logprof's): bus path name interface member peer=(name label)
DBUS_FIELDS = ("bus", "path", "name", "interface", "member")
MESSAGE_ACCESS = frozenset(("send", "receive"))


class DbusRule(Rule):
    """One dbus rule; every field None means "any" (omitted)."""

    kind = "dbus"
    keywords = ("dbus",)
    events = (EventKind("dbus", identity=("bus", "dbus_path", "interface", "member", "mask", "peer", "dbus_name"),
                        match=("bus", "dbus_path", "interface", "member", "dbus_name", "peer", "mask"),
                        fields=("bus", "dbus_path", "interface", "member", "dbus_name", "peer", "peer_pid")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, bus: Optional[str] = None,
                 path: Optional[str] = None, name: Optional[str] = None, interface: Optional[str] = None,
                 member: Optional[str] = None, peer_name: Optional[str] = None, peer_label: Optional[str] = None,
                 audit: bool = False, deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None
        self.bus = bus
        self.path = path
        self.name = name
        self.interface = interface
        self.member = member
        self.peer_name = peer_name
        self.peer_label = peer_label

    @classmethod
    def parse(cls, text: str) -> "DbusRule":
        """Parse any dbus rule form of apparmor.d(5) (message, service, eavesdrop, combined)."""
        quals, toks, comment = split_keyword(cls, text, "dbus")
        access = take_access(toks, DBUS_ALIASES, DBUS_ACCESS)
        fields: Dict[str, str] = {}
        peer: Dict[str, str] = {}
        for tok in toks:
            key, value = split_cond(tok)
            if key in DBUS_FIELDS and key not in fields:
                fields[key] = parse_single(value)
            elif key == "peer" and not peer:
                peer = parse_peer_group(value, ("name", "label"))
            else:
                raise RuleParseError("unexpected %r in dbus rule %r" % (tok, text))
        return cls(access, peer_name=peer.get("name"), peer_label=peer.get("label"), audit=quals["audit"],
                   deny=quals["deny"], comment=comment, **fields)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["DbusRule"]:
        """The dbus rule a dbus event needs (see module doc for which fields are written)."""
        if event.get("kind") != "dbus":
            return None
        req, den, _has = event_mask_words(event)
        words = den or req
        if not words:
            return None
        try:
            access = parse_access("(%s)" % " ".join(words), DBUS_ALIASES, DBUS_ACCESS)
        except RuleParseError:
            return None

        def lit(value: Any) -> Optional[str]:
            return escape_glob(str(value)) if value not in (None, "") else None

        bus = lit(event.get("bus"))
        if access == frozenset(("bind",)):
            return cls(access, bus=bus, name=lit(event.get("dbus_name") or extra(event, "name")))
        if "eavesdrop" in access:
            return cls(access, bus=bus)
        if not access <= MESSAGE_ACCESS:
            return None
        member = event.get("member") or extra(event, "method") or extra(event, "member")
        peer = event.get("peer") or extra(event, "peer_label") or extra(event, "peer_profile")
        return cls(access, bus=bus, path=lit(event.get("dbus_path") or extra(event, "path")),
                   interface=lit(event.get("interface") or extra(event, "interface")), member=lit(member),
                   peer_label=lit(peer))

    def render_body(self, abi: str = "3.0") -> str:
        """``dbus send bus=session path=/x interface=a.b member=M peer=(label=L)``."""
        return ("dbus" + render_access(self.access) + render_fields(self, DBUS_FIELDS)
                + render_peer(name=self.peer_name, label=self.peer_label))

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access subset and every conditional of self covers the other's (absent = any)."""
        if not isinstance(other, DbusRule) or not self.covers_qualifiers(other):
            return False
        if not set_covers(self.access, other.access, DBUS_ACCESS):
            return False
        return all(aare_covers(getattr(self, key), getattr(other, key), variables)
                   for key in DBUS_FIELDS + ("peer_name", "peer_label"))

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, bus=self.bus, path=self.path, name=self.name,
                                interface=self.interface, member=self.member, peer_name=self.peer_name,
                                peer_label=self.peer_label)
