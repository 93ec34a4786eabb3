"""File rules (``[audit] [deny] [owner] [file] PATH PERMS [-> TARGET],``) and link rules.

Why the care: the path of a file rule usually comes from a log record, i.e. from whoever named the
file. It is stored as a *pattern* (AARE text, see aaescape) and rendered with aaescape so that a
name such as ``/tmp/x, /** rwx,`` becomes one literal rule, never a glob or a second rule.
Permissions are a set (``m r w a l k``) plus at most one exec mode (see rules/exec.py).

Coverage (``covers``): same allow/deny side, audit needs audit, an ``owner`` rule only covers
``owner`` rules, the path pattern covers the other's (exact glob inclusion, variables expanded),
permissions are a superset (``w`` includes ``a``), exec modes equal (deny: any ``x``) with the same
target.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Any, Dict, List, Optional

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import (
    EscapeError,
    check_name,
    escape_glob,
    quote_pattern,
    unquote,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import (
    DEFAULT_ABI,
    EventKind,
    Rule,
    RuleParseError,
    parse_qualifiers,
    strip_rule,
    tokenize,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules.exec import (
    EXEC_EVENTS,
    FILE_PERMS_ORDER,
    exec_event_mode,
    exec_mode_covers,
    perms_to_str,
    split_perms,
    validate_exec,
)

_PERMS_RE = re.compile(r"^[mrwalkxpPcCuUi]+\Z")
# Exec targets that may be written bare: profile names, stacking '&', children 'a//b'.
_BARE_TARGET_RE = re.compile(r"^&?[A-Za-z0-9_./:+~%-]+(?://&?[A-Za-z0-9_./:+~%-]+)*\Z")
# Kernel file mask letters -> rule permission. 'c' (create), 'd' (delete) need w; 'x' comes from
# exec events only (a file event's x cannot say which transition to use), 't'/'o' are not perms.
_MASK_TO_PERM = {"r": "r", "w": "w", "a": "a", "c": "w", "d": "w", "l": "l", "k": "k", "m": "m"}


def _path_like(token: str) -> bool:
    return token.startswith(("/", "@{", '"', "{", "\\"))


def _read_pattern(token: str, collapse: bool = True) -> str:
    """Token -> pattern; paths collapse '//' like the parser, profile-name targets do not."""
    try:
        pattern = unquote(token)
    except EscapeError as exc:
        raise RuleParseError(str(exc)) from None
    return aaglob.collapse_slashes(pattern) if collapse else pattern


def render_target(target: str) -> str:
    """Exec/link target: bare when it is a plain profile name or path, quoted otherwise."""
    if _BARE_TARGET_RE.match(target):
        return target
    return quote_pattern(target)


def mask_to_perms(mask: str) -> Dict[str, set]:
    """Kernel mask (``rw``, ``wc``, ``r::``, ``::r``, ``rw::r``) -> {"owner": set, "other": set}.

    The old ``OWNER::OTHER`` form says which part applied to the file owner."""
    owner_part, sep, other_part = mask.partition("::")
    if not sep:
        owner_part, other_part = "", mask
    conv = {}
    for key, part in (("owner", owner_part), ("other", other_part)):
        conv[key] = set(_MASK_TO_PERM[c] for c in part if c in _MASK_TO_PERM)
    return conv


class FileRule(Rule):
    """A file access rule. ``path`` None means every file (the bare ``file,`` rule); ``perms`` None
    with path None means every permission."""

    kind = "file"
    keywords = ("file",)
    events = (EventKind("file", identity=("path", "mask", "owner", "target"), match=("path", "mask"),
                        fields=("path", "target", "owner"), file_rule=True),
              EXEC_EVENTS)
    extra_qualifiers = ("owner",)

    def __init__(self, path: Optional[str], perms: Optional[frozenset] = None, exec_mode: Optional[str] = None,
                 target: Optional[str] = None, owner: bool = False, audit: bool = False, deny: bool = False,
                 comment: Optional[str] = None, file_keyword: bool = False, perms_first: bool = False) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if path is not None and (not isinstance(path, str) or not path):
            raise RuleParseError("file rule path must be a non-empty string")
        if path is not None and "\x00" in path:
            raise RuleParseError("file rule path contains NUL")
        # the parser collapses '//' in paths: store what it will read
        self.path = aaglob.collapse_slashes(path) if path is not None else None
        self.perms = frozenset(perms) if perms is not None else None
        if self.perms is not None:
            unknown = set(self.perms) - set(FILE_PERMS_ORDER)
            if unknown:
                raise RuleParseError("unknown file permissions %s" % "".join(sorted(unknown)))
            if "w" in self.perms and "a" in self.perms:
                # apparmor_parser: "Conflict 'a' and 'w' perms are mutually exclusive" (w includes a)
                raise RuleParseError("file permissions 'w' and 'a' are mutually exclusive (w includes a)")
        self.exec_mode = exec_mode
        self.target = target
        self.owner = bool(owner)
        self.file_keyword = bool(file_keyword) or path is None
        self.perms_first = bool(perms_first)
        if path is None and (exec_mode or target):
            raise RuleParseError("a bare 'file' rule cannot have an exec mode or target")
        if path is not None and not self.perms and not exec_mode:
            raise RuleParseError("file rule for %r has no permissions" % (path,))
        for value in (self.path, target):
            # a pattern the renderer cannot write (a lone trailing backslash) is refused here, with
            # a RuleParseError, instead of building a rule whose render() fails later
            if value is not None:
                try:
                    quote_pattern(value)
                except EscapeError as exc:
                    raise RuleParseError(str(exc)) from None
        if exec_mode is None and target is not None:
            # "/a rwl -> /b": the target of the link permission (apparmor.d(5) link pairs)
            if "l" not in (self.perms or ()):
                raise RuleParseError("'-> %s' needs an exec mode or the 'l' permission" % (target,))
        else:
            validate_exec(exec_mode, self.deny, target)

    # ---- parsing -------------------------------------------------------------------------------
    @classmethod
    def can_parse(cls, text: str) -> bool:
        try:
            body, _c = strip_rule(text)
            _q, rest = parse_qualifiers(tokenize(body), cls.extra_qualifiers)
        except RuleParseError:
            return False
        if not rest:
            return False
        if rest[0] == "file":
            return True
        if _path_like(rest[0]):
            return True
        return len(rest) >= 2 and bool(_PERMS_RE.match(rest[0])) and _path_like(rest[1])

    @classmethod
    def parse(cls, text: str) -> "FileRule":
        quals, rest, comment = cls.split(text)
        file_kw = False
        if rest and rest[0] == "file":
            file_kw = True
            rest = rest[1:]
        common = dict(owner=quals["owner"], audit=quals["audit"], deny=quals["deny"], comment=comment)
        if not rest:
            if not file_kw:
                raise RuleParseError("not a file rule: %r" % (text,))
            return cls(None, None, **common)
        target = None
        if "->" in rest:
            pos = rest.index("->")
            if pos != len(rest) - 2:
                raise RuleParseError("expected one target after '->' in %r" % (text,))
            target = _read_pattern(rest[pos + 1], collapse=False)
            rest = rest[:pos]
        elif rest[-1].startswith("->"):
            target = _read_pattern(rest[-1][2:], collapse=False)
            rest = rest[:-1]
        if len(rest) != 2:
            raise RuleParseError("file rule needs a path and permissions: %r" % (text,))
        perms_first = False
        if _path_like(rest[0]):
            path_tok, perm_tok = rest
        elif _PERMS_RE.match(rest[0]):
            perm_tok, path_tok = rest
            perms_first = True
        else:
            raise RuleParseError("file rule needs a path and permissions: %r" % (text,))
        if not _PERMS_RE.match(perm_tok):
            raise RuleParseError("bad permissions %r in %r" % (perm_tok, text))
        perms, exec_mode = split_perms(perm_tok)
        return cls(_read_pattern(path_tok), perms, exec_mode, target, file_keyword=file_kw,
                   perms_first=perms_first, **common)

    @classmethod
    def from_event(cls, event: Dict[str, Any]) -> Optional["FileRule"]:
        """``file`` events -> ``PATH perms`` (x dropped: exec events carry it); ``exec`` events ->
        ``PATH mr<mode>`` as aa-logprof writes (``/bin/ping mrix,``), mode ``event["exec_mode"]``
        (an answer's choice) or ``ix``; ``event["exec_target"]`` becomes ``-> target``."""
        kind = event.get("kind")
        path = event.get("path")
        if kind not in ("file", "exec") or not isinstance(path, str) or not path:
            return None
        try:
            check_name(path)
        except EscapeError:
            return None
        pattern = escape_glob(path)
        owner = bool(event.get("owner"))
        if kind == "exec":
            mode = exec_event_mode(event)
            return cls(pattern, frozenset("mr"), mode, event.get("exec_target"), owner=owner)
        mask = event.get("mask") or {}
        # aa-logprof writes what was denied (an old-format record requests "mrwIxl" while only "l"
        # was refused); only an allowed-but-audited record, with no denied mask, falls back to the
        # requested one.
        text = mask.get("denied") or mask.get("requested") or ""
        if not mask.get("denied") and "::" not in text:
            # An allowed-but-audited access (no denied mask): AppArmor's tools write it without
            # "owner" even when fsuid == ouid (corpus testcase36); follow them.
            owner = False
        conv = mask_to_perms(text)
        if conv["owner"] and not conv["other"]:
            perms, owner = set(conv["owner"]), True
        else:
            perms = conv["owner"] | conv["other"]
        if not perms:
            return None
        if "w" in perms:
            perms.discard("a")  # w includes a; the parser refuses both together
        return cls(pattern, frozenset(perms), None, None, owner=owner)

    # ---- rendering -----------------------------------------------------------------------------
    def qualifier_prefix(self) -> str:
        prefix = super().qualifier_prefix()
        return prefix + ("owner " if self.owner else "")

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        if self.path is None:
            return "file"
        perms = perms_to_str(self.perms or frozenset(), self.exec_mode)
        path = quote_pattern(self.path)
        parts = ["file"] if self.file_keyword else []
        parts.extend([perms, path] if self.perms_first else [path, perms])
        if self.target is not None:
            parts.extend(["->", render_target(self.target) if self.exec_mode else quote_pattern(self.target)])
        return " ".join(parts)

    # ---- comparison ----------------------------------------------------------------------------
    def covers(self, other: Rule, variables: Optional[Dict[str, List[str]]] = None) -> bool:
        if not isinstance(other, FileRule) or not self.covers_qualifiers(other):
            return False
        if self.owner and not other.owner:
            return False
        if self.path is None:
            return True  # bare "file," grants every permission on every file
        if other.path is None:
            return False
        if not perms_cover(self.perms or frozenset(), other.perms or frozenset()):
            return False
        if not exec_mode_covers(self.exec_mode, other.exec_mode, self.deny):
            return False
        if other.exec_mode is not None and not self.deny and self.target != other.target:
            return False
        if other.exec_mode is None and other.target is not None:
            # link pair: the covering rule's link target must cover the other's
            if self.target is None or not aaglob.glob_covers(self.target, other.target, variables):
                return False
        elif self.exec_mode is None and self.target is not None and "l" in (other.perms or ()):
            return False  # a restricted link pair does not cover an unrestricted 'l'
        return aaglob.glob_covers(self.path, other.path, variables)

    def index_key(self) -> tuple:
        return ("file", self.deny)

    def _fields(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "perms": perms_to_str(self.perms or frozenset(), None) if self.perms is not None else None,
            "exec_mode": self.exec_mode,
            "target": self.target,
            "owner": self.owner,
        }


def perms_cover(general: frozenset, specific: frozenset) -> bool:
    """Permission-set inclusion where ``w`` also grants ``a`` (append is a restricted write)."""
    have = set(general)
    if "w" in have:
        have.add("a")
    return set(specific) <= have


class LinkRule(Rule):
    """``[audit] [deny] [owner] link [subset] LINK -> TARGET,``: may LINK be created pointing to
    TARGET (``subset``: only when LINK's permissions are a subset of TARGET's)."""

    kind = "file"
    keywords = ("link",)
    extra_qualifiers = ("owner",)

    def __init__(self, path: str, target: str, subset: bool = False, owner: bool = False, audit: bool = False,
                 deny: bool = False, comment: Optional[str] = None) -> None:
        super().__init__(audit=audit, deny=deny, comment=comment)
        if not path or not target:
            raise RuleParseError("link rule needs a link path and a target")
        self.path = aaglob.collapse_slashes(path)
        self.target = aaglob.collapse_slashes(target)
        self.subset = bool(subset)
        self.owner = bool(owner)

    @classmethod
    def parse(cls, text: str) -> "LinkRule":
        quals, rest, comment = cls.split(text)
        if not rest or rest[0] != "link":
            raise RuleParseError("not a link rule: %r" % (text,))
        rest = rest[1:]
        subset = False
        if rest and rest[0] == "subset":
            subset = True
            rest = rest[1:]
        if len(rest) != 3 or rest[1] != "->":
            raise RuleParseError("link rule must be 'link [subset] PATH -> TARGET': %r" % (text,))
        return cls(_read_pattern(rest[0]), _read_pattern(rest[2]), subset, owner=quals["owner"],
                   audit=quals["audit"], deny=quals["deny"], comment=comment)

    def qualifier_prefix(self) -> str:
        return super().qualifier_prefix() + ("owner " if self.owner else "")

    def render_body(self, abi: str = DEFAULT_ABI) -> str:
        return "link %s%s -> %s" % ("subset " if self.subset else "", quote_pattern(self.path),
                                    quote_pattern(self.target))

    def covers(self, other: Rule, variables: Optional[Dict[str, List[str]]] = None) -> bool:
        if not isinstance(other, LinkRule) or not self.covers_qualifiers(other):
            return False
        if self.owner and not other.owner:
            return False
        # "subset" restricts: a subset rule does not cover a plain one.
        if self.subset and not other.subset:
            return False
        return (aaglob.glob_covers(self.path, other.path, variables)
                and aaglob.glob_covers(self.target, other.target, variables))

    def index_key(self) -> tuple:
        return ("file", self.deny)

    def _fields(self) -> Dict[str, Any]:
        return {"link": self.path, "target": self.target, "subset": self.subset, "owner": self.owner}
