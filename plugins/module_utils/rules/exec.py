"""Exec modes of file rules: parsing, validation, coverage, and the rule an exec event needs.

Why a separate module: the exec transition is the security-relevant part of a file rule (``ux``
runs a program unconfined, ``Px`` scrubs the environment, ``px`` does not), so the rules about
which modes exist, which may be combined with a named target (``-> profile``) and which mode
"covers" which are kept in one reviewed place. Modes follow apparmor.d(5) for AppArmor 3.x:
``ix px Px cx Cx ux Ux`` and the fallbacks ``pix Pix cix Cix pux PUx cux CUx``; deny rules only
use a bare ``x``.

Standard library only (runs on managed hosts, Python 3.8+).
"""
from typing import Any, Dict, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, RuleParseError

# An exec event is written as a file rule (``/bin/ping mrix,``): FileRule lists this kind.
EXEC_EVENTS = EventKind("exec", identity=("path", "mask", "owner", "target"), match=("path",),
                        fields=("path", "target", "owner"), file_rule=True)

# The exec modes of apparmor.d(5); answers' exec_mode accepts exactly ALLOW_EXEC_MODES.
BASIC_EXEC_MODES = ("ix", "px", "Px", "cx", "Cx", "ux", "Ux")
FALLBACK_EXEC_MODES = ("pix", "Pix", "cix", "Cix", "pux", "PUx", "cux", "CUx")
ALLOW_EXEC_MODES = BASIC_EXEC_MODES + FALLBACK_EXEC_MODES
DENY_EXEC_MODES = ("x",)
# Modes that may carry "-> target": profile (p/P) and child (c/C) transitions and their fallbacks.
TARGET_EXEC_MODES = ("px", "Px", "cx", "Cx", "pix", "Pix", "cix", "Cix", "pux", "PUx", "cux", "CUx")
# Unconfined execution: answers must ask for it explicitly; never a default.
UNCONFINED_EXEC_MODES = ("ux", "Ux", "pux", "PUx", "cux", "CUx")
EXEC_LETTERS = "pPcCuUi"
# Non-exec file permissions in the order apparmor's tools write them.
FILE_PERMS_ORDER = "mrwalk"


def split_perms(text: str) -> Tuple[frozenset, Optional[str]]:
    """Split a permission string such as ``rmCx`` or ``mrix`` into ({m, r}, "Cx").

    Raises RuleParseError for unknown letters, two exec modes, or an unknown exec mode.
    """
    perms = set()
    exec_mode: Optional[str] = None
    i = 0
    n = len(text)
    if not n:
        raise RuleParseError("empty permission string")
    while i < n:
        c = text[i]
        if c in FILE_PERMS_ORDER:
            perms.add(c)
            i += 1
            continue
        if c in EXEC_LETTERS or c == "x":
            j = i
            while j < n and text[j] in EXEC_LETTERS:
                j += 1
            if j >= n or text[j] != "x":
                raise RuleParseError("bad exec mode in permissions %r" % (text,))
            mode = text[i:j + 1]
            if exec_mode is not None:
                raise RuleParseError("two exec modes (%s, %s) in %r" % (exec_mode, mode, text))
            if mode not in ALLOW_EXEC_MODES and mode not in DENY_EXEC_MODES:
                raise RuleParseError("unknown exec mode %r in %r" % (mode, text))
            exec_mode = mode
            i = j + 1
            continue
        raise RuleParseError("unknown permission %r in %r" % (c, text))
    return frozenset(perms), exec_mode


def perms_to_str(perms: frozenset, exec_mode: Optional[str]) -> str:
    """Canonical permission string: ``mrwalk`` order, then the exec mode (``mrix``)."""
    out = "".join(c for c in FILE_PERMS_ORDER if c in perms)
    return out + (exec_mode or "")


def validate_exec(exec_mode: Optional[str], deny: bool, target: Optional[str]) -> None:
    """Raise RuleParseError for combinations apparmor_parser rejects or that make no sense."""
    if exec_mode is None:
        if target is not None:
            raise RuleParseError("'-> %s' needs an exec mode that takes a target" % (target,))
        return
    if deny:
        if exec_mode not in DENY_EXEC_MODES:
            raise RuleParseError("deny rules only use 'x' as exec mode, not %r" % (exec_mode,))
    elif exec_mode not in ALLOW_EXEC_MODES:
        raise RuleParseError("exec mode %r needs a transition (ix, px, Px, cx, Cx, ux, Ux...)" % (exec_mode,))
    if target is not None and exec_mode not in TARGET_EXEC_MODES:
        raise RuleParseError("exec mode %r cannot take a target ('-> %s')" % (exec_mode, target))


def exec_mode_covers(general: Optional[str], specific: Optional[str], deny: bool) -> bool:
    """Does a rule with exec mode ``general`` cover one with ``specific``?

    Deny: any ``x`` covers any mode. Allow: modes must be equal — they are different transitions
    (ix stays in the profile, Px switches and scrubs), so none is "more" than another.
    """
    if specific is None:
        return True
    if general is None:
        return False
    if deny:
        return True
    return general == specific


def exec_event_mode(event: Dict[str, Any], default: str = "ix") -> str:
    """Exec mode to use for an exec event: ``event["exec_mode"]`` when an answer set one."""
    mode = event.get("exec_mode") or default
    if mode not in ALLOW_EXEC_MODES:
        raise RuleParseError("unknown exec mode %r" % (mode,))
    return mode
