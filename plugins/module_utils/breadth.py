"""Answers that allow far more than their events, by accident (docs/answers.md, "Too broad").

aa-logprof only offers globs up to the grandparent directory; typing ``/**`` there is a deliberate act.
In inventory the same ``/**`` is one keystroke in a list of answers, and it would silently allow
everything to every matching profile. So an allow answer is refused when its ``glob`` or ``include``
covers whole trees, or when it applies to every profile and every event, unless it says ``broad: true``.

Broad means:
- a path pattern covering every top-level name (``/*``) or every name one level down (``/*/*``):
  ``/**``, ``/*``, ``/*/**``; ``/{,usr/}bin/dash`` is narrow however its first component is written;
- a path pattern covering any file of any home directory (``/home/*/*``: ``@{HOME}/**``, ``/home/**``)
  when the answer may write (its ``match.mask`` is absent or holds ``w a c d l``);
- ``profile: "*"`` (or ``"**"``) with a match that names nothing: no key other than ``kind``, ``mask``,
  ``owner``, ``host``, ... (``match: {}``, ``match: {kind: file}``, ``match: {path: "/**"}``);
- an ``include`` whose abstraction grants such a path (read from the controller's abstractions when
  they are there; without them the include is not judged).

Standard library only (the engine runs on managed hosts, Python 3.8+).
"""
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob

# Values of the standard tunables, used when the caller's variables do not define them, so that
# ``@{HOME}/**`` is judged the same on a controller without AppArmor installed.
STANDARD_VARIABLES = {
    "HOME": ["@{HOMEDIRS}/*/", "/root/"], "HOMEDIRS": ["/home/"], "PROC": ["/proc/"], "sys": ["/sys/"],
    "run": ["/run/", "/var/run/"], "multiarch": ["*-linux-gnu*"],
    "pid": ["{[1-9],[1-9][0-9],[1-9][0-9][0-9],[1-9][0-9][0-9][0-9],[1-9][0-9][0-9][0-9][0-9],"
            "[1-9][0-9][0-9][0-9][0-9][0-9],[1-4][0-9][0-9][0-9][0-9][0-9][0-9]}"],
}
STANDARD_VARIABLES["tid"] = STANDARD_VARIABLES["pid"]
# Probes: a pattern covering one of these covers whole trees of the filesystem.
_TREE_PROBES = ("/*", "/*/*")
_HOME_PROBE = "/home/*/*"
WRITE_LETTERS = "wacdl"
# Match keys that do not say which object an event is about: an every-profile answer holding only these
# matches (nearly) every event.
NON_NAMING_KEYS = ("kind", "mask", "owner", "fsuid", "ouid", "host", "modes", "operations", "comms", "class",
                   "info", "error")


def with_standard_variables(variables: Optional[Dict[str, List[str]]]) -> Dict[str, List[str]]:
    """``variables`` over the standard tunables (a controller without AppArmor still reads ``@{HOME}``)."""
    merged = dict(STANDARD_VARIABLES)
    merged.update(variables or {})
    return merged


def _covers(pattern: str, probe: str, variables: Dict[str, List[str]]) -> bool:
    try:
        return aaglob.glob_covers(pattern, probe, variables)
    except Exception:  # an unreadable pattern is reported by the answer's own validation
        return False


def broad_path(pattern: str, may_write: bool, variables: Optional[Dict[str, List[str]]] = None) -> Optional[str]:
    """Why the path ``pattern`` is too broad for an allow rule, or None."""
    if not isinstance(pattern, str) or not pattern:
        return None
    var = with_standard_variables(variables)
    for probe in _TREE_PROBES:
        if _covers(pattern, probe, var):
            return "%r covers every path of the form %s" % (pattern, probe)
    if may_write and _covers(pattern, _HOME_PROBE, var):
        return "%r allows writing anywhere in every home directory" % pattern
    return None


def may_write(match: Mapping[str, Any]) -> bool:
    """Can the events an answer matches include writes? (no ``mask`` key, or one holding a write letter)"""
    mask = match.get("mask")
    if not isinstance(mask, str):
        return True
    return any(c in WRITE_LETTERS for c in mask)


def matches_everything(profile: Any, match: Mapping[str, Any],
                       variables: Optional[Dict[str, List[str]]] = None) -> bool:
    """``profile: "*"`` with a match naming nothing (or only a whole-tree path)."""
    if profile not in ("*", "**"):
        return False
    for key, value in match.items():
        if key in NON_NAMING_KEYS:
            continue
        if key == "path" and isinstance(value, str) and broad_path(value, False, variables):
            continue
        return False
    return True


def answer_problems(answer: Mapping[str, Any], variables: Optional[Dict[str, List[str]]] = None,
                    include_rules: Optional[Any] = None) -> List[str]:
    """Why an allow answer is too broad (empty when it is not, or when it says ``broad: true``).

    ``include_rules(name)`` returns the allow file rules of an abstraction as (pattern, perms) pairs, or
    None when the abstraction cannot be read on this machine (then it is not judged).
    """
    if answer.get("answer") != "allow" or answer.get("broad") is True:
        return []
    match = answer.get("match")
    match = match if isinstance(match, Mapping) else {}
    out = []
    hint = "; set broad: true on the answer if that is meant"
    if matches_everything(answer.get("profile"), match, variables):
        out.append("profile %r with a match that names nothing allows every event of every profile%s"
                   % (answer.get("profile"), hint))
    glob = answer.get("glob")
    if isinstance(glob, str):
        why = broad_path(glob, may_write(match), variables)
        if why:
            out.append("glob %s%s" % (why, hint))
    inc = answer.get("include")
    if isinstance(inc, str) and include_rules is not None:
        for pattern, perms in include_rules(inc.strip()) or ():
            why = broad_path(pattern, any(c in WRITE_LETTERS for c in perms), variables)
            if why:
                out.append("include %s grants %s (%s)%s" % (inc.strip(), pattern, why, hint))
                break
    return out


IncludeRules = Callable[[str], Optional[List[Tuple[str, str]]]]


def include_reader(apparmor_d: Optional[str]) -> Optional[IncludeRules]:
    """``name -> [(pattern, perms)]`` of the allow file rules an abstraction grants (its includes resolved),
    read from ``apparmor_d`` on this machine; None when ``apparmor_d`` has no abstractions/ (not judged)."""
    if not apparmor_d or not os.path.isdir(os.path.join(apparmor_d, "abstractions")):
        return None
    cache: Dict[str, Optional[List[Tuple[str, str]]]] = {}

    def read(name: str) -> Optional[List[Tuple[str, str]]]:
        if name not in cache:
            cache[name] = _read_include(apparmor_d, name)
        return cache[name]
    return read


def _read_include(apparmor_d: str, name: str) -> Optional[List[Tuple[str, str]]]:
    from ansible_collections.armada.apparmor.plugins.module_utils import coverage
    if not os.path.isfile(os.path.join(apparmor_d, name)):
        return None
    try:
        index = coverage.ProfileIndex.from_text("profile armada_breadth_probe {\n  include <%s>\n}\n" % name,
                                                apparmor_d=apparmor_d)
        rs = index.ruleset("armada_breadth_probe")
    except Exception:  # an abstraction this machine cannot read is not judged
        return None
    if rs is None:
        return None
    out = [("/**", "mrwalk") for rule in rs.all_files if not rule.deny]  # a bare "file," rule
    for bucket in rs.file_buckets.values():
        out.extend((e.pattern, "".join(sorted(e.perms))) for e in bucket if not e.deny)
    return out
