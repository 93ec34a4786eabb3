"""Capability rules: ``[audit] [deny] capability [NAME ...],``.

Why names are checked: a capability rule with a misspelled name fails to compile and would stop
the whole profile from loading; event numbers are translated with the kernel's table so a record
that carries only ``capability=12`` still yields ``capability net_admin``.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Any, Dict, List, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    DEFAULT_ABI,
    EventKind,
    Rule,
    RuleParseError,
)

# Linux capability numbers (include/uapi/linux/capability.h); index = number.
CAPABILITY_NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
)
_NAME_RE = re.compile(r"^[a-z_]+\Z")


def capability_name(value: Any) -> Optional[str]:
    """Name for a capability number or name (``12`` / ``"12"`` / ``"NET_ADMIN"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        num = int(value)
        return CAPABILITY_NAMES[num] if 0 <= num < len(CAPABILITY_NAMES) else None
    if isinstance(value, str):
        name = value.strip().lower()
        if name.startswith("cap_"):
            name = name[4:]
        return name if name in CAPABILITY_NAMES else None
    return None


class CapabilityRule(Rule):
    """``names`` None means every capability (bare ``capability,``)."""

    kind = "capability"
    keywords = ("capability",)
    events = (EventKind("capability", identity=("capability",), match=("capname",),
                        fields=("capability", "capname", "name", "target")),)

    def __init__(self, names: Optional[Any] = None, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if names is None:
            self.names: Optional[frozenset] = None
            return
        if isinstance(names, str):
            names = [names]
        checked = []
        for name in names:
            if not isinstance(name, str) or not _NAME_RE.match(name) or name not in CAPABILITY_NAMES:
                raise RuleParseError("unknown capability %r" % (name,))
            checked.append(name)
        if not checked:
            raise RuleParseError("capability rule with an empty name list")
        self.names = frozenset(checked)

    @classmethod
    def parse(cls, text: str) -> "CapabilityRule":
        quals, rest, comment = cls.split(text)
        if not rest or rest[0] != "capability":
            raise RuleParseError("not a capability rule: %r" % (text,))
        names = rest[1:]
        return cls(names or None, audit=quals["audit"], deny=quals["deny"], comment=comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["CapabilityRule"]:
        if event.get("kind") != "capability":
            return None
        name = capability_name(event.get("capname")) or capability_name(event.get("capability"))
        if name is None:
            return None
        return cls([name])

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        if self.names is None:
            return "capability"
        # kernel order (numbers), so rendering is stable and matches aa-logprof's style
        return "capability " + " ".join(sorted(self.names, key=CAPABILITY_NAMES.index))

    def covers(self, other: Rule, variables: Optional[Dict[str, List[str]]] = None) -> bool:
        if not isinstance(other, CapabilityRule) or not self.covers_qualifiers(other):
            return False
        if self.names is None:
            return True
        if other.names is None:
            return False
        return other.names <= self.names

    def index_key(self) -> tuple:
        return ("capability", self.deny)

    def _fields(self) -> Dict[str, Any]:
        return {"capabilities": sorted(self.names, key=CAPABILITY_NAMES.index) if self.names is not None else None}
