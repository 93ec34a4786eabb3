"""Mount rules: ``mount``, ``remount`` and ``umount`` (apparmor.d(5) "Mount Rules").

Forms::

    mount [fstype(=|in)X] [options(=|in)(..)]... [SOURCE] [-> MOUNTPOINT],
    remount [fstype..] [options..]... [MOUNTPOINT],
    umount [fstype..] [options..]... [MOUNTPOINT],

Why options are a list of conditionals: apparmor.d(5) says several ``options=`` conditionals in one
rule grant each set separately (``options=ro options=atime`` allows ``-o ro`` and ``-o atime`` but
not ``-o ro,atime``), while ``options in (..)`` allows any combination; coverage follows that.
from_event follows the corpus (testcase_mount_01/02, testcase_remount_01): a ``mount`` record with
``flags="ro, remount"`` becomes ``mount options=(remount, ro) -> /tmp/foo/,`` (sorted options),
fstype and source only when logged. Flags outside the known set make from_event return None
rather than write an unknown word. Same text for every ABI.
"""
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import (
    aare_covers,
    is_paren,
    join_conditionals,
    paren_items,
    parse_value,
    render_value,
    split_cond,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError

MOUNT_FLAGS = frozenset((
    "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "remount", "mand", "nomand",
    "dirsync", "symfollow", "nosymfollow", "noatime", "atime", "nodiratime", "diratime", "bind", "B", "rbind", "R",
    "move", "M", "verbose", "silent", "loud", "acl", "noacl", "unbindable", "make-unbindable", "runbindable",
    "make-runbindable", "private", "make-private", "rprivate", "make-rprivate", "slave", "make-slave", "rslave",
    "make-rslave", "shared", "make-shared", "rshared", "make-rshared", "relatime", "norelatime", "iversion",
    "noiversion", "strictatime", "nostrictatime", "lazytime", "nolazytime", "nouser", "user"))

Cond = Tuple[str, FrozenSet[str]]  # ("=" or "in", values as AAREs)


def _parse_cond_values(value: str) -> FrozenSet[str]:
    items = paren_items(value) if is_paren(value) else [value]
    return frozenset(parse_value(item) for item in items)


def _render_cond(key: str, cond: Cond, parens_always: bool) -> str:
    op, values = cond
    words = sorted(render_value(v) for v in values)
    body = words[0] if len(words) == 1 and not parens_always else "(" + ", ".join(words) + ")"
    return " %s%s%s" % (key, "=" if op == "=" else " in ", body)


def _cond_covers(general: Cond, specific: Cond, variables: Optional[Dict[str, Any]]) -> bool:
    """``=`` grants exactly that set; ``in`` any subset (apparmor.d(5))."""
    gop, gvals = general
    sop, svals = specific
    if gop == "=":
        return sop == "=" and _values_covered(gvals, svals, variables) and _values_covered(svals, gvals, None)
    return _values_covered(gvals, svals, variables)


def _values_covered(general: FrozenSet[str], specific: FrozenSet[str], variables: Optional[Dict[str, Any]]) -> bool:
    return all(any(aare_covers(g, s, variables) for g in general) for s in specific)


class MountRule(Rule):
    """``mount`` rule (also the base of :class:`RemountRule` and :class:`UmountRule`)."""

    kind = "mount"
    keywords = ("mount",)
    has_source = True
    # Event kinds this class writes. A remount event (operation=remount, or a mount record whose
    # flags hold ``remount``) is written as ``mount options=(remount, ...) -> /mnt/`` exactly as the
    # corpus does (testcase_remount_01, testcase_mount_02), so RemountRule claims none.
    events = (EventKind("mount", identity=("path", "srcname", "fstype", "flags"),
                        match=("path", "srcname", "fstype", "flags"),
                        fields=("path", "target", "srcname", "fstype", "flags")),
              EventKind("remount", identity=("path", "srcname", "fstype", "flags"), match=("path", "flags"),
                        fields=("path", "target", "srcname", "fstype", "flags")))

    def __init__(self, fstype: Optional[Cond] = None, options: Optional[List[Cond]] = None,
                 source: Optional[str] = None, mountpoint: Optional[str] = None, audit: bool = False,
                 deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if source is not None and not self.has_source:
            raise RuleParseError("%s rules have no source" % self.kind)
        self.fstype = (fstype[0], frozenset(fstype[1])) if fstype else None
        self.options = [(op, frozenset(vals)) for op, vals in (options or [])]
        self.source = source
        self.mountpoint = mountpoint

    @classmethod
    def parse(cls, text: str) -> "MountRule":
        """Parse ``mount|remount|umount`` with conditionals, source and mount point."""
        quals, rest, comment = cls.split(text)
        keyword = rest[0] if rest else ""
        if keyword == "unmount":
            keyword = "umount"
        if keyword not in cls.keywords:
            raise RuleParseError("not a %s rule: %r" % (cls.kind, text))
        toks = join_conditionals(rest[1:])
        fstype = None
        options: List[Cond] = []
        source = mountpoint = None
        i = 0
        while i < len(toks):
            tok = toks[i]
            key, value = split_cond(tok)
            if key in ("fstype", "vfstype", "fstype in", "vfstype in") and fstype is None and source is None:
                fstype = ("in" if key.endswith(" in") else "=", _parse_cond_values(value))
            elif key in ("options", "options in") and source is None:
                options.append(("in" if key.endswith(" in") else "=", _parse_cond_values(value)))
            elif tok == "->" and cls.has_source and mountpoint is None and i + 1 < len(toks):
                mountpoint = parse_value(toks[i + 1])
                i += 1
            elif key is None and tok != "->" and source is None and mountpoint is None:
                if cls.has_source:
                    source = parse_value(tok)
                else:
                    mountpoint = parse_value(tok)
            else:
                raise RuleParseError("unexpected %r in %s rule %r" % (tok, cls.kind, text))
            i += 1
        return cls(fstype, options, source, mountpoint, quals["audit"], quals["deny"], comment)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["MountRule"]:
        """The rule a mount/remount/umount event needs (see module doc)."""
        kind = event.get("kind")
        if kind not in [ek.name for ek in cls.events]:
            return None
        fstype = None
        if event.get("fstype"):
            fstype = ("=", frozenset((escape_glob(str(event["fstype"])),)))
        options: List[Cond] = []
        flags = [f.strip() for f in str(event.get("flags") or "").split(",") if f.strip()]
        if any(f not in MOUNT_FLAGS for f in flags):
            return None
        if kind == "remount" and "remount" not in flags:
            flags.append("remount")
        if flags:
            options.append(("=", frozenset(flags)))
        source = None
        if cls.has_source and event.get("srcname"):
            source = escape_glob(str(event["srcname"]))
        path = event.get("path")
        mountpoint = escape_glob(str(path)) if path else None
        return cls(fstype, options, source, mountpoint)

    def render_body(self, abi: str = "3.0") -> str:
        """``mount fstype=ext2 options=(mand, rw) /dev/loop0/ -> /mnt/`` (options sorted)."""
        out = self.keywords[0]
        if self.fstype:
            out += _render_cond("fstype", self.fstype, False)
        for cond in self.options:
            out += _render_cond("options", cond, True)
        if self.has_source:
            if self.source is not None:
                out += " " + render_value(self.source)
            if self.mountpoint is not None:
                out += " -> " + render_value(self.mountpoint)
        elif self.mountpoint is not None:
            out += " " + render_value(self.mountpoint)
        return out

    def covers(self, other: Rule, variables: Optional[Dict[str, Any]] = None) -> bool:
        """Same keyword; fstype/options conditionals covered; source and mount point AAREs covered."""
        if type(other) is not type(self) or not self.covers_qualifiers(other):
            return False
        assert isinstance(other, MountRule)
        # A mount has one fstype: ``fstype=(a, b)`` and ``fstype in (a, b)`` both mean "one of".
        if self.fstype is not None and (other.fstype is None
                                        or not _values_covered(self.fstype[1], other.fstype[1], variables)):
            return False
        if self.options:
            if not other.options:
                return False
            for cond in other.options:
                if not any(_cond_covers(mine, cond, variables) for mine in self.options):
                    return False
        return aare_covers(self.source, other.source, variables) and aare_covers(
            self.mountpoint, other.mountpoint, variables)

    def _fields(self) -> Dict[str, Any]:
        def cond(c: Optional[Cond]) -> Optional[Dict[str, Any]]:
            return None if c is None else {"op": c[0], "values": sorted(c[1])}

        return {"fstype": cond(self.fstype), "options": [cond(c) for c in self.options],
                "source": self.source, "mountpoint": self.mountpoint}


class RemountRule(MountRule):
    """``remount [conds] [MOUNTPOINT],``."""

    kind = "remount"
    keywords = ("remount",)
    has_source = False
    events: Tuple[EventKind, ...] = ()  # remount events are MountRule's (``mount options=(remount)``)


class UmountRule(MountRule):
    """``umount [conds] [MOUNTPOINT],`` (``unmount`` is read as ``umount``)."""

    kind = "umount"
    keywords = ("umount", "unmount")
    has_source = False
    events = (EventKind("umount", identity=("path", "srcname", "fstype", "flags"), match=("path",),
                        fields=("path", "target", "srcname", "fstype", "flags")),)
