"""Network rules.

ABI 3.0 (apparmor_parser 3.x): ``network [DOMAIN] [TYPE | PROTOCOL],`` only — the kernel mediates
the socket family and type, nothing finer. ABI 4.0+: ``network [(ACCESS)] [DOMAIN] [TYPE|PROTOCOL]
[ip=IP] [port=N] [peer=(ip=IP port=N)],`` as aa-logprof writes it for the corpus
(``network (send) inet dgram ip=127.187.243.54 port=3457 peer=(ip=127.0.97.3 port=3456),``).

Why the 3.0 downgrade is allowed for allow rules only: on an ABI 3.0 kernel an allow rule for
``inet dgram`` is exactly what would be enforced anyway, but a deny rule would become much wider
than what was asked (deny all inet dgram instead of one address), so rendering such a deny rule for
ABI 3.0 raises AbiError instead of silently widening it.

Addresses are validated with :mod:`ipaddress` but written as logged (``::ffff:127.0.0.1`` stays as
is, like the corpus), so nothing but hex digits, dots and colons ever reaches the rule text.
"""
import ipaddress
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    SOCKET_ACCESS,
    SOCKET_ALIASES,
    SOCKET_PEER_ACCESS,
    AbiError,
    aare_fields_dict,
    denied_access,
    extra,
    is_access_token,
    is_paren,
    join_conditionals,
    paren_items,
    parse_access,
    render_access,
    set_covers,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    EventKind,
    Rule,
    RuleParseError,
    abi_tuple,
)

DOMAINS = frozenset((
    "unspec", "unix", "inet", "ax25", "ipx", "appletalk", "netrom", "bridge", "atmpvc", "x25", "inet6", "rose",
    "netbeui", "security", "key", "netlink", "packet", "ash", "econet", "atmsvc", "rds", "sna", "irda", "pppox",
    "wanpipe", "llc", "ib", "mpls", "can", "tipc", "bluetooth", "iucv", "rxrpc", "isdn", "phonet", "ieee802154",
    "caif", "alg", "nfc", "vsock", "kcm", "qipcrtr", "smc", "xdp", "mctp"))
TYPES = frozenset(("stream", "dgram", "seqpacket", "rdm", "raw", "packet"))
PROTOCOLS = frozenset(("tcp", "udp", "icmp"))
PROTOCOL_NUMBERS = {6: "tcp", 17: "udp", 1: "icmp"}


def _ip(value: Any) -> Optional[str]:
    """The address text when it is a valid IPv4/IPv6 address (or ``none``), else None."""
    if value in (None, ""):
        return None
    text = str(value)
    if text == "none":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


def _port(value: Any) -> Optional[int]:
    """A port number 0..65535 or None."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 <= port <= 65535 else None


class NetworkRule(Rule):
    """One network rule; every None field means "any" (omitted)."""

    kind = "network"
    keywords = ("network",)
    events = (EventKind("network", identity=("family", "sock_type", "protocol", "mask"),
                        match=("family", "sock_type", "protocol", "mask"),
                        fields=("family", "sock_type", "protocol", "laddr", "lport", "faddr", "fport", "name",
                                "target")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, domain: Optional[str] = None,
                 sock_type: Optional[str] = None, protocol: Optional[str] = None, ip: Optional[str] = None,
                 port: Optional[int] = None, peer_ip: Optional[str] = None, peer_port: Optional[int] = None,
                 audit: bool = False, deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if sock_type is not None and protocol is not None:
            raise RuleParseError("a network rule takes a type or a protocol, not both")
        self.access = frozenset(access) if access else None
        self.domain = domain
        self.sock_type = sock_type
        self.protocol = protocol
        self.ip = ip
        self.port = port
        self.peer_ip = peer_ip
        self.peer_port = peer_port

    def fine_grained(self) -> bool:
        """Does the rule use anything beyond ``network [domain] [type]`` (ABI 4.0+ only)?"""
        return any(v is not None for v in (self.access, self.ip, self.port, self.peer_ip, self.peer_port))

    @classmethod
    def parse(cls, text: str) -> "NetworkRule":
        """Parse the ABI 3.0 form and the 4.0+ form with accesses and addresses."""
        quals, toks, comment = split_keyword(cls, text, "network")
        access = None
        if toks and is_paren(toks[0]) and is_access_token(toks[0], SOCKET_ALIASES, SOCKET_ACCESS):
            access = parse_access(toks.pop(0), SOCKET_ALIASES, SOCKET_ACCESS)
        elif toks and toks[0] in SOCKET_ACCESS:
            access = frozenset((toks.pop(0),))
        kw: Dict[str, Any] = {}
        for tok in toks:
            key, value = split_cond(tok)
            if key is None and tok in DOMAINS and "domain" not in kw and "sock_type" not in kw:
                kw["domain"] = tok
            elif key is None and tok in TYPES and "sock_type" not in kw and "protocol" not in kw:
                kw["sock_type"] = tok
            elif key is None and tok in PROTOCOLS and "sock_type" not in kw and "protocol" not in kw:
                kw["protocol"] = tok
            elif key == "ip" and "ip" not in kw:
                kw["ip"] = cls._parse_ip(value)
            elif key == "port" and "port" not in kw:
                kw["port"] = cls._parse_port(value)
            elif key == "peer" and "peer_ip" not in kw and "peer_port" not in kw and is_paren(value):
                for item in join_conditionals(paren_items(value)):
                    pkey, pval = split_cond(item)
                    if pkey == "ip" and "peer_ip" not in kw:
                        kw["peer_ip"] = cls._parse_ip(pval)
                    elif pkey == "port" and "peer_port" not in kw:
                        kw["peer_port"] = cls._parse_port(pval)
                    else:
                        raise RuleParseError("unexpected %r in network peer of %r" % (item, text))
            else:
                raise RuleParseError("unexpected %r in network rule %r" % (tok, text))
        return cls(access, audit=quals["audit"], deny=quals["deny"], comment=comment, **kw)

    @staticmethod
    def _parse_ip(value: str) -> str:
        ip = _ip(value)
        if ip is None:
            raise RuleParseError("invalid ip=%r" % (value,))
        return ip

    @staticmethod
    def _parse_port(value: str) -> int:
        port = _port(value)
        if port is None:
            raise RuleParseError("invalid port=%r" % (value,))
        return port

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["NetworkRule"]:
        """The network rule an event needs, matching the corpus (testcase_network_*).

        Access: the denied words (none for old records without a mask; no rule when something was
        requested and nothing denied). Local ip/port from laddr/lport (else saddr/src); peer from
        faddr/fport (else daddr/dest) and only for peer accesses or when no access is logged.
        Unknown family -> no rule (never a wider one); unknown type -> type left out.
        """
        if event.get("kind") != "network":
            return None
        wanted, access = denied_access(event, SOCKET_ACCESS)
        if not wanted:
            return None
        domain = event.get("family")
        if domain is not None and domain not in DOMAINS:
            return None
        sock_type = event.get("sock_type") if event.get("sock_type") in TYPES else None
        protocol = None
        if sock_type is None:
            proto = event.get("protocol")
            protocol = PROTOCOL_NUMBERS.get(proto) if isinstance(proto, int) else (
                proto if proto in PROTOCOLS else None)
        ip = _ip(event.get("laddr") or extra(event, "saddr"))
        port = _port(event.get("lport") if event.get("lport") is not None else extra(event, "src"))
        peer_ip = peer_port = None
        if access is None or access <= SOCKET_PEER_ACCESS:
            peer_ip = _ip(event.get("faddr") or extra(event, "daddr"))
            fport = event.get("fport") if event.get("fport") is not None else extra(event, "dest")
            peer_port = _port(fport)
        return cls(access, domain, sock_type, protocol, ip, port, peer_ip, peer_port)

    def render_body(self, abi: str = "3.0") -> str:
        """3.0: ``network inet stream``; 4.0+: ``network (send) inet dgram ip=.. port=.. peer=(..)``."""
        new = abi_tuple(abi) >= (4, 0)
        if not new and self.deny and self.fine_grained():
            raise AbiError("a deny network rule with accesses or addresses cannot be written for ABI 3.0 "
                           "without widening it: %s" % self.render_body("4.0"))
        out = "network"
        if new:
            out += render_access(self.access, parens_always=True)
        if self.domain:
            out += " " + self.domain
        if self.sock_type:
            out += " " + self.sock_type
        elif self.protocol:
            out += " " + self.protocol
        if new:
            if self.ip is not None:
                out += " ip=" + self.ip
            if self.port is not None:
                out += " port=%d" % self.port
            peer = []
            if self.peer_ip is not None:
                peer.append("ip=" + self.peer_ip)
            if self.peer_port is not None:
                peer.append("port=%d" % self.peer_port)
            if peer:
                out += " peer=(%s)" % " ".join(peer)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Field-wise: access subset; domain/type/protocol/ip/port equal when self names them."""
        if not isinstance(other, NetworkRule) or not self.covers_qualifiers(other):
            return False
        if not set_covers(self.access, other.access, SOCKET_ACCESS):
            return False
        for key in ("domain", "sock_type", "protocol", "port", "peer_port"):
            mine = getattr(self, key)
            if mine is not None and mine != getattr(other, key):
                return False
        for key in ("ip", "peer_ip"):
            mine = getattr(self, key)
            if mine is not None and not _same_ip(mine, getattr(other, key)):
                return False
        return True

    def index_key(self) -> tuple:
        """Bucket by domain is not safe (a domain-less rule covers all); keep the kind."""
        return (self.kind,)

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, domain=self.domain, sock_type=self.sock_type,
                                protocol=self.protocol, ip=self.ip, port=self.port, peer_ip=self.peer_ip,
                                peer_port=self.peer_port)


def _same_ip(a: str, b: Optional[str]) -> bool:
    """Equal addresses, comparing parsed values so ``::1`` and ``0::1`` are the same."""
    if b is None:
        return False
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False
