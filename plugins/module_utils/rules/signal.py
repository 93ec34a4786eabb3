"""Signal rules: ``[audit] [deny] signal [access] [set=...] [peer=LABEL],`` (apparmor.d(5)).

Why this shape: aa-logprof writes ``signal send set=term peer=/usr/bin/foo,`` for one logged signal
(see the corpus case testcase_signal_01); the peer is a label that comes from the log, so it is an
AARE escaped by ``_kindutil`` and never trusted as a pattern. Same text for ABI 3.0, 4.0 and 5.0.
"""
from typing import Any, Dict, FrozenSet, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    aare_fields_dict,
    is_access_token,
    is_paren,
    logged_access,
    paren_items,
    parse_access,
    parse_value,
    render_access,
    render_value,
    set_covers,
    split_cond,
    split_keyword,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

SIGNAL_ACCESS = frozenset(("send", "receive"))
SIGNAL_ALIASES = {"r": ("receive",), "read": ("receive",), "w": ("send",), "write": ("send",),
                  "rw": ("send", "receive")}
SIGNAL_NAMES = frozenset((
    "hup", "int", "quit", "ill", "trap", "abrt", "bus", "fpe", "kill", "usr1", "segv", "usr2", "pipe",
    "alrm", "term", "stkflt", "chld", "cont", "stop", "stp", "ttin", "ttou", "urg", "xcpu", "xfsz",
    "vtalrm", "prof", "winch", "io", "pwr", "sys", "emt", "exists", "lost",
) + tuple("rtmin+%d" % n for n in range(33)))


# Linux signal numbers (x86/arm generic; signal(7)) for records that log a number instead of a name.
SIGNAL_NUMBERS = dict(enumerate((
    "exists", "hup", "int", "quit", "ill", "trap", "abrt", "bus", "fpe", "kill", "usr1", "segv", "usr2", "pipe",
    "alrm", "term", "stkflt", "chld", "cont", "stop", "stp", "ttin", "ttou", "urg", "xcpu", "xfsz", "vtalrm",
    "prof", "winch", "io", "pwr", "sys")))
SIGNAL_NUMBERS.update((34 + n, "rtmin+%d" % n) for n in range(31))


def _signal_name(word: str) -> str:
    """Canonical signal name or RuleParseError (names are a closed set, never free text)."""
    low = word.strip().lower()
    if low.isdigit() and int(low) in SIGNAL_NUMBERS:
        return SIGNAL_NUMBERS[int(low)]
    if low.startswith("sig") and low[3:] in SIGNAL_NAMES:
        low = low[3:]
    if low not in SIGNAL_NAMES:
        raise RuleParseError("unknown signal %r" % (word,))
    return low


class SignalRule(Rule):
    """One signal rule. ``access``/``signals``/``peer`` None mean "all" (the part is omitted)."""

    kind = "signal"
    keywords = ("signal",)
    events = (EventKind("signal", identity=("signal", "peer", "mask"), match=("signal", "peer", "mask"),
                        fields=("signal", "peer", "name", "target")),)

    def __init__(self, access: Optional[FrozenSet[str]] = None, signals: Optional[FrozenSet[str]] = None,
                 peer: Optional[str] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        self.access = frozenset(access) if access else None
        self.signals = frozenset(signals) if signals else None
        self.peer = peer

    @classmethod
    def parse(cls, text: str) -> "SignalRule":
        """Parse ``signal (send) set=(hup, int) peer=foo`` and every form apparmor.d(5) lists."""
        quals, toks, comment = split_keyword(cls, text, "signal")
        access = None
        signals = set()
        peer = None
        if toks and is_access_token(toks[0], SIGNAL_ALIASES, SIGNAL_ACCESS):
            access = parse_access(toks.pop(0), SIGNAL_ALIASES, SIGNAL_ACCESS)
        for tok in toks:
            key, value = split_cond(tok)
            if key == "set":
                items = paren_items(value) if is_paren(value) else [value]
                for item in items:
                    signals.add(_signal_name(parse_value(item)))
            elif key == "peer" and peer is None:
                peer = parse_value(value)
            else:
                raise RuleParseError("unexpected %r in signal rule %r" % (tok, text))
        return cls(access, frozenset(signals) or None, peer, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["SignalRule"]:
        """``signal <denied or requested> set=<signal> peer=<peer>`` for a signal event, else None."""
        if event.get("kind") != "signal":
            return None
        try:
            access = logged_access(event, SIGNAL_ALIASES, SIGNAL_ACCESS)
            signals = frozenset((_signal_name(str(event["signal"])),)) if event.get("signal") else None
        except RuleParseError:
            return None
        peer = event.get("peer")
        return cls(access, signals, escape_glob(str(peer)) if peer else None)

    def render_body(self, abi: str = "3.0") -> str:
        """``signal send set=term peer=X`` (same for every ABI)."""
        out = "signal" + render_access(self.access)
        if self.signals:
            names = sorted(self.signals)
            out += " set=" + (names[0] if len(names) == 1 else "(" + ", ".join(names) + ")")
        if self.peer is not None:
            out += " peer=" + render_value(self.peer)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Access and signal sets are subsets and the peer AARE covers the other's peer."""
        if not isinstance(other, SignalRule) or not self.covers_qualifiers(other):
            return False
        return (set_covers(self.access, other.access, SIGNAL_ACCESS)
                and set_covers(self.signals, other.signals, SIGNAL_NAMES)
                and aare_covers(self.peer, other.peer, variables))

    def _fields(self) -> Dict[str, Any]:
        return aare_fields_dict(access=self.access, signals=self.signals, peer=self.peer)
