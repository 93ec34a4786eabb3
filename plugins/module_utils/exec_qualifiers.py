"""Which exec modes a program may be given: aa-logprof's ``[qualifiers]`` table, as data (docs/answers.md).

aa-logprof never offers ``Px`` for ``/usr/bin/bash`` ("things will be painfully broken if bash has a
profile") nor anything but ``ux`` for ``/bin/mount``: its menu for an exec is built from the letters of
``[qualifiers]`` in /etc/apparmor/logprof.conf. Here the same table decides which modes an answer may
give a program (an answer that violates it is an error) and which modes the pending file offers.

Letters (aa.py: ``build_x_functions``): ``i`` inherit (``ix``), ``p`` the program's own profile (``px``,
``Px``), ``c`` a child profile (``cx``, ``Cx``), ``n`` a named transition (``px -> name``, ``cx -> name``),
``u`` unconfined (``ux``, ``Ux``). A fallback mode needs both of its letters (``pix`` = p + i,
``PUx`` = p + u); a mode with a named target needs ``n`` instead of ``p``/``c``. A program not in the
table may be given every mode (aa-logprof's default ``ipcnu``).

Standard library only (the engine runs on managed hosts, Python 3.8+).
"""
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import looks_like_pattern

LETTERS = "ipcnu"
DEFAULT_LETTERS = "ipcnu"

# The [qualifiers] section of /etc/apparmor/logprof.conf as shipped by Debian 12's apparmor-utils 3.0.8
# (AppArmor project; logprof.conf is GPL-2.0, Copyright (C) 2004-2006 Novell/SUSE, (C) 2014 Canonical Ltd.).
# Only the facts are taken (program -> allowed letters); the comments are the file's own.
LOGPROF_QUALIFIERS = {
    # things will be painfully broken if bash has a profile
    "/bin/bash": "icnu", "/usr/bin/bash": "icnu", "/bin/ksh": "icnu", "/usr/bin/ksh": "icnu",
    "/bin/dash": "icnu", "/usr/bin/dash": "icnu", "/bin/zsh": "icnu", "/usr/bin/zsh": "icnu",
    # these programs can't function if they're confined
    "/bin/mount": "u", "/usr/bin/mount": "u", "/etc/init.d/subdomain": "u", "/sbin/cardmgr": "u",
    "/usr/sbin/cardmgr": "u", "/sbin/subdomain_parser": "u", "/usr/sbin/subdomain_parser": "u",
    "/usr/sbin/genprof": "u", "/usr/sbin/logprof": "u", "/usr/lib/YaST2/servers_non_y2/ag_genprof": "u",
    "/usr/lib/YaST2/servers_non_y2/ag_logprof": "u",
    # these ones shouln't have their own profiles
    "/bin/awk": "icn", "/usr/bin/awk": "icn", "/bin/cat": "icn", "/usr/bin/cat": "icn", "/bin/chmod": "icn",
    "/usr/bin/chmod": "icn", "/bin/chown": "icn", "/usr/bin/chown": "icn", "/bin/cp": "icn", "/usr/bin/cp": "icn",
    "/bin/gawk": "icn", "/usr/bin/gawk": "icn", "/bin/grep": "icn", "/usr/bin/grep": "icn", "/bin/gunzip": "icn",
    "/usr/bin/gunzip": "icn", "/bin/gzip": "icn", "/usr/bin/gzip": "icn", "/bin/kill": "icn", "/usr/bin/kill": "icn",
    "/bin/ln": "icn", "/usr/bin/ln": "icn", "/bin/ls": "icn", "/usr/bin/ls": "icn", "/bin/mkdir": "icn",
    "/usr/bin/mkdir": "icn", "/bin/mv": "icn", "/usr/bin/mv": "icn", "/bin/readlink": "icn",
    "/usr/bin/readlink": "icn", "/bin/rm": "icn", "/usr/bin/rm": "icn", "/bin/sed": "icn", "/usr/bin/sed": "icn",
    "/bin/touch": "icn", "/usr/bin/touch": "icn", "/sbin/killall5": "icn", "/usr/sbin/killall5": "icn",
    "/usr/bin/find": "icn", "/usr/bin/killall": "icn", "/usr/bin/nice": "icn", "/usr/bin/perl": "icn",
    "/usr/bin/python": "icn", "/usr/bin/python2": "icn", "/usr/bin/python2.7": "icn", "/usr/bin/python3": "icn",
    "/usr/bin/python3.3": "icn", "/usr/bin/python3.4": "icn", "/usr/bin/python3.5": "icn",
    "/usr/bin/python3.6": "icn", "/usr/bin/python3.7": "icn", "/usr/bin/python3.8": "icn",
    "/usr/bin/python3.9": "icn", "/usr/bin/python3.10": "icn", "/usr/bin/python3.11": "icn",
    "/usr/bin/python3.12": "icn", "/usr/bin/python3.13": "icn", "/usr/bin/python3.14": "icn",
    "/usr/bin/python3.15": "icn", "/usr/bin/python3.16": "icn", "/usr/bin/python3.17": "icn",
    "/usr/bin/python3.18": "icn", "/usr/bin/python3.19": "icn", "/usr/bin/tr": "icn",
}

# The letters each exec mode needs: bare / with a named target (``-> name``).
_NEEDS = {
    "ix": ("i", None),
    "px": ("p", "n"), "Px": ("p", "n"),
    "cx": ("c", "n"), "Cx": ("c", "n"),
    "ux": ("u", None), "Ux": ("u", None),
    "pix": ("pi", "ni"), "Pix": ("pi", "ni"),
    "cix": ("ci", "ni"), "Cix": ("ci", "ni"),
    "pux": ("pu", "nu"), "PUx": ("pu", "nu"),
    "cux": ("cu", "nu"), "CUx": ("cu", "nu"),
}
# What the pending file offers, safest first (aa-logprof's menu; the unconfined fallbacks are accepted in
# answers but never offered).
OFFERED = ("ix", "Px", "Cx", "Pix", "Cix", "px", "cx", "pix", "cix", "Ux", "ux")


class Qualifiers:
    """The shipped table extended by inventory: exact program paths, plus AppArmor globs from inventory.

    Lookup: an exact entry (inventory over shipped) wins; else every inventory glob that matches the
    program applies and only the letters they all allow remain; else ``ipcnu``.
    """

    def __init__(self, extra: Optional[Mapping[str, str]] = None) -> None:
        self.exact: Dict[str, str] = dict(LOGPROF_QUALIFIERS)
        self.globs: List[Tuple[str, str]] = []
        for key, letters in (extra or {}).items():
            if looks_like_pattern(key):
                self.globs.append((key, letters))
            else:
                self.exact[key] = letters

    def letters(self, program: str) -> str:
        """The letters allowed for exec of ``program`` (a path as logged)."""
        if program in self.exact:
            return self.exact[program]
        found = [letters for pattern, letters in self.globs if aaglob.matches(pattern, program)]
        if not found:
            return DEFAULT_LETTERS
        return "".join(c for c in LETTERS if all(c in f for f in found))

    def problem(self, mode: str, target: Optional[str], program: str) -> Optional[str]:
        """Why ``mode`` (with ``target``) may not be given to ``program``, or None when it may."""
        letters = self.letters(program)
        if mode_allowed(mode, target, letters):
            return None
        return ("exec mode %s%s is not allowed for %s: the exec qualifiers (aa-logprof's logprof.conf [qualifiers]) "
                "allow %r, i.e. %s; extend apparmor_update_exec_qualifiers in inventory to change that"
                % (mode, " -> %s" % target if target else "", program, letters,
                   ", ".join(modes_for(letters)) or "no exec mode (deny only)"))

    def entries_covered_by(self, pattern: str) -> List[str]:
        """Exact table entries an exec rule with path ``pattern`` would apply to."""
        return sorted(p for p in self.exact if aaglob.matches(pattern, p))


def mode_allowed(mode: str, target: Optional[str], letters: str) -> bool:
    """Does ``letters`` (e.g. ``icnu``) allow exec mode ``mode``, with a named ``target`` or not?"""
    bare, named = _NEEDS.get(mode, (None, None))
    need = named if target else bare
    if need is None:
        return False
    return all(c in letters for c in need)


def modes_for(letters: str) -> List[str]:
    """The modes offered (without a named target) for ``letters``, in menu order."""
    return [m for m in OFFERED if mode_allowed(m, None, letters)]


def validate_extra(extra: Any) -> List[str]:
    """Problems of an inventory extension ``{program path or glob: letters}`` (empty list when valid)."""
    if extra is None:
        return []
    if not isinstance(extra, Mapping):
        return ["exec_qualifiers must be a mapping of program path -> letters (e.g. {/usr/bin/foo: icn}), got %s"
                % type(extra).__name__]
    problems = []
    for key, letters in extra.items():
        if not isinstance(key, str) or not key.startswith("/"):
            problems.append("exec_qualifiers key %r must be an absolute program path or AppArmor glob" % (key,))
            continue
        if looks_like_pattern(key):
            try:
                aaglob.glob_to_regex(key)
            except (ValueError, RecursionError) as exc:
                problems.append("exec_qualifiers key %r is not a valid AppArmor pattern: %s" % (key, exc))
        if not isinstance(letters, str) or not letters or any(c not in LETTERS for c in letters) \
                or len(set(letters)) != len(letters):
            problems.append("exec_qualifiers[%r] = %r must be letters out of %r, each once (i inherit, p own "
                            "profile, c child, n named transition, u unconfined)" % (key, letters, LETTERS))
    return problems
