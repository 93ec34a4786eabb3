"""Controller paths built from names a managed host returned: the one check every role uses.

Why this exists: the controller writes files whose names come from host data (a fetched profile, a
fetched snapshot, a host's rollout report). A managed host is not trusted, so a name is used only when it
is one plain file name the controller asked for, and the path it gives is not a symlink: nothing a host
returns can make the controller write outside the directory it writes into, or through a link in it.
The filter ``armada.apparmor.controller_path`` is the controller-side face of :func:`target_path`.

Pure standard library, Python 3.8+ (it also runs where module_utils run).
"""
import os
import re
import unicodedata
from typing import Collection, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.backup import SNAPSHOT_FILE_PATTERN

# Longest file name (bytes, UTF-8) a Linux file system takes (NAME_MAX).
NAME_MAX = 255
# Unicode categories refused anywhere in a name: control (C0, DEL, C1), format (bidi overrides, zero
# width), surrogates (undecodable bytes), private use, unassigned, line and paragraph separators.
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
# Named forms a name must have (full match), for names whose shape the controller knows.
FORMS = {"snapshot_file": SNAPSHOT_FILE_PATTERN}
# How much of a hostile value an error message repeats.
SHOWN = 120


class UnsafeName(ValueError):
    """A host-derived name the controller will not use as a file name; nothing was written."""


def name_problem(value: object, allowed: Optional[Collection[str]] = None,
                 form: Optional[str] = None) -> Optional[str]:
    """Why ``value`` cannot be a file name in a controller directory, or None when it can.

    A name is one path component (no ``/``), not ``.``/``..`` nor hidden (a leading ``.``), without NUL,
    control, format or separator characters, at most NAME_MAX bytes; it is one of ``allowed`` when the
    controller says which names it asked for, and has the named ``form`` (FORMS) when given.
    """
    if not isinstance(value, str):
        return "it is not a string but %s" % type(value).__name__
    if not value:
        return "it is empty"
    if "/" in value:
        return "it contains '/'"
    if value.startswith("."):
        return "it starts with '.' ('.', '..' and hidden names are refused)"
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return "it contains the character U+%04X (control, format or separator)" % ord(char)
    size = len(value.encode("utf-8"))
    if size > NAME_MAX:
        return "it is %d bytes long (at most %d)" % (size, NAME_MAX)
    if allowed is not None and value not in allowed:
        return "the controller did not ask for it (it asked for %s)" % _shown_list(allowed)
    if form is not None and not re.fullmatch(FORMS[form], value):
        return "it is not a %s (%s)" % (form.replace("_", " "), FORMS[form])
    return None


def check_name(value: object, host: str, what: str = "file name", allowed: Optional[Collection[str]] = None,
               form: Optional[str] = None) -> str:
    """``value`` when it is a safe file name (see :func:`name_problem`); else UnsafeName naming the host."""
    problem = name_problem(value, allowed, form)
    if problem:
        raise UnsafeName("%s: the %s %s is refused: %s; nothing was written" % (host, what, _shown(value), problem))
    return str(value)


def target_path(directory: str, value: object, host: str, what: str = "file name",
                allowed: Optional[Collection[str]] = None, form: Optional[str] = None) -> str:
    """``directory/value`` for a safe name that is not a symlink there: the controller never writes through one."""
    name = check_name(value, host, what, allowed, form)
    path = os.path.join(directory, name)
    if os.path.islink(path):
        raise UnsafeName("%s: %s is a symlink (to %s); the controller never writes through a symlink in %s - "
                         "remove it and run again" % (host, path, _shown(os.readlink(path)), directory))
    return path


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "...(%d characters)" % len(text)


def _shown_list(names: Collection[str]) -> str:
    listed = sorted(str(n) for n in names)
    if not listed:
        return "no file"
    head = ", ".join(_shown(n) for n in listed[:5])
    return head + (" and %d more" % (len(listed) - 5) if len(listed) > 5 else "")
