"""Unix socket rules: ``unix [access] [type=] [protocol=] [addr=] [label=] [attr=] [opt=] [peer=(addr= label=)],``.

Why field-by-field coverage: aa-logprof has a known bug where ``unix peer=(label=foo)`` is taken to
cover a unix rule that names a different address. Here every conditional of the covering rule
(local addr/label/attr/opt, peer addr/label, type, protocol) must cover the same conditional of the
other rule, and an absent conditional in the *other* rule is only covered by an absent one, so a
rule restricted to one address never "covers" a rule for another address or for any address.

Abstract addresses (``@name``) come from the log and may hold any byte (including NUL): they are
escaped AAREs, written with octal escapes when not printable. ``none``/``auto`` are keywords.
ABI 3.0 (apparmor_parser 3.0.x) knows type, addr and peer=(addr label) only; protocol, attr, opt
and a local label need ABI 4.0+ (render raises AbiError for 3.0).
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    SOCKET_ACCESS,
    SOCKET_ALIASES,
    SOCKET_PEER_ACCESS,
    AbiError,
    aare_covers,
    aare_fields_dict,
    denied_access,
    parse_peer_group,
    parse_single,
    render_access,
    render_fields,
    render_peer,
    render_value,
    set_covers,
    split_cond,
    split_keyword,
    take_access,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    EventKind,
    Rule,
    RuleParseError,
    abi_tuple,
)

LOCAL_FIELDS = ("addr", "label", "attr", "opt")
SOCK_TYPES = frozenset(("stream", "dgram", "seqpacket", "rdm", "raw", "packet"))


def _valid_addr(aare: str) -> bool:
    """What apparmor_parser accepts as addr=: an abstract ``@name`` (or variable), ``none``, ``auto``."""
    return aare.startswith("@") or aare in ("none", "auto")


class UnixRule(Rule):
    """One unix rule. Every field None means "any"; ``access`` None means the implied set."""

    kind = "unix"
    keywords = ("unix",)
    # family and protocol are matched too (docs/decisions.md): they are part of the identity, so a
    # question never stands for events an answer would then not match
    events = (EventKind("unix", identity=("family", "sock_type", "protocol", "mask", "addr", "peer_addr", "peer"),
                        match=("family", "sock_type", "protocol", "mask", "addr", "peer_addr", "peer"),
                        fields=("family", "sock_type", "protocol", "addr", "peer_addr", "peer", "name", "target")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, sock_type: Optional[str] = None,
                 protocol: Optional[str] = None, addr: Optional[str] = None, label: Optional[str] = None,
                 attr: Optional[str] = None, opt: Optional[str] = None, peer_addr: Optional[str] = None,
                 peer_label: Optional[str] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None
        self.sock_type = sock_type
        self.protocol = protocol
        self.addr = addr
        self.label = label
        self.attr = attr
        self.opt = opt
        self.peer_addr = peer_addr
        self.peer_label = peer_label

    def has_peer(self) -> bool:
        """Does the rule restrict the peer (then only peer permissions are implied)?"""
        return self.peer_addr is not None or self.peer_label is not None

    def effective_access(self) -> FrozenSet[str]:
        """The permissions the rule grants: its list, or the implied set (apparmor.d(5))."""
        if self.access is not None:
            return self.access
        return SOCKET_PEER_ACCESS if self.has_peer() else SOCKET_ACCESS

    @classmethod
    def parse(cls, text: str) -> "UnixRule":
        """Parse every unix rule form (access word or list, conditionals, peer group)."""
        quals, toks, comment = split_keyword(cls, text, "unix")
        access = take_access(toks, SOCKET_ALIASES, SOCKET_ACCESS)
        fields: Dict[str, str] = {}
        peer: Dict[str, str] = {}
        for tok in toks:
            key, value = split_cond(tok)
            if key == "type" and "sock_type" not in fields:
                fields["sock_type"] = parse_single(value)
            elif key in ("protocol",) + LOCAL_FIELDS and key not in fields:
                fields[key] = parse_single(value)
            elif key == "peer" and not peer:
                peer = parse_peer_group(value, ("addr", "label"))
            else:
                raise RuleParseError("unexpected %r in unix rule %r" % (tok, text))
        for value in (fields.get("addr"), peer.get("addr")):
            if value is not None and not _valid_addr(value):
                raise RuleParseError("unix addr must be @abstract, none or auto (apparmor_parser rejects %r)"
                                     % (value,))
        return cls(access, peer_addr=peer.get("addr"), peer_label=peer.get("label"), audit=quals["audit"],
                   deny=quals["deny"], comment=comment, **fields)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["UnixRule"]:
        """The unix rule for a ``family=unix`` event: denied access, type, addr / peer addr.

        Like the corpus (testcase_unix_01/02): the denied mask is written (not the requested one),
        the peer label is not written, ``none`` addresses are left out, protocol 0 is left out.
        A record with a requested mask but nothing denied yields no rule (testcase_unix_no_denied).
        """
        if event.get("kind") != "unix":
            return None
        wanted, access = denied_access(event, SOCKET_ACCESS)
        if not wanted:
            return None
        sock_type = event.get("sock_type")
        sock_type = sock_type if sock_type in SOCK_TYPES else None

        addrs = []
        for value in (event.get("addr"), event.get("peer_addr")):
            if value in (None, "", "none", "?"):
                addrs.append(None)
            elif str(value).startswith("@"):
                addrs.append(escape_glob(str(value)))
            else:
                # A filesystem socket: mediated by file rules, and a unix rule cannot name it
                # (apparmor_parser: "invalid value for addr"). Omitting the address would widen
                # the rule to every socket, so no unix rule is written.
                return None
        if access is not None and not access <= SOCKET_PEER_ACCESS:
            # apparmor_parser refuses peer conditionals with create/bind/listen/shutdown/...: "accesses
            # cannot be used with peer socket conditionals". Kernel records of those accesses carry no
            # peer address; a crafted event that does must not yield an uncompilable rule (same
            # convention as network.from_event: the peer only for peer accesses).
            addrs[1] = None
        return cls(access, sock_type=sock_type, addr=addrs[0], peer_addr=addrs[1])

    def render_body(self, abi: str = "3.0") -> str:
        """``unix (accept, send) type=stream addr=@x peer=(addr=@y label=L)``."""
        if abi_tuple(abi) < (4, 0):
            for key in ("protocol", "attr", "opt", "label"):
                if getattr(self, key) is not None:
                    raise AbiError("unix %s= needs ABI 4.0 or later" % key)
        out = "unix" + render_access(self.access, parens_always=True)
        if self.sock_type is not None:
            out += " type=" + render_value(self.sock_type)
        return (out + render_fields(self, ("protocol",) + LOCAL_FIELDS)
                + render_peer(addr=self.peer_addr, label=self.peer_label))

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Effective access subset and every conditional covered (see module doc)."""
        if not isinstance(other, UnixRule) or not self.covers_qualifiers(other):
            return False
        if not set_covers(self.effective_access(), other.effective_access()):
            return False
        return all(aare_covers(getattr(self, key), getattr(other, key), variables)
                   for key in ("sock_type", "protocol") + LOCAL_FIELDS + ("peer_addr", "peer_label"))

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, sock_type=self.sock_type, protocol=self.protocol,
                                addr=self.addr, label=self.label, attr=self.attr, opt=self.opt,
                                peer_addr=self.peer_addr, peer_label=self.peer_label)
