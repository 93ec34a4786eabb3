"""Suggestions for pending events, and the pending answers YAML block (docs/answers.md).

aa-logprof offers, for each question, globs of the path and the abstractions that would cover it.
Here the same suggestions are written next to each pending event in a ready-to-edit YAML block in the
answers schema, so the review happens in a text editor / pull request and the reviewed block pastes
back into inventory as is (the informational keys are part of the schema).

Two rules keep suggestions safe:
- globs never go above the event's grandparent directory (``/a/b/c`` gives at most ``/a/**``) and never
  suggest ``/**``;
- an abstraction is suggested only when the rule in it that covers the event is no broader than the
  broadest glob suggested for that event. aa-logprof's ``--allow-all`` happily picks
  ``abstractions/ubuntu-browsers.d/user-files`` for ``/srv/www/x`` because it grants ``/srv/** r``;
  that rule is broader than ``/srv/www/**``, so it is not suggested here.

Standard library only (the engine runs on managed hosts, Python 3.8+).
"""
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.answers import literal_pattern
from ansible_collections.armada.apparmor.plugins.module_utils.provenance import FORGEABLE

# Kind → event fields that identify the access (docs/events.md, Identity), in the order written.
MATCH_FIELDS_BY_KIND = {
    "file": ("path", "mask"),
    "exec": ("path",),
    "capability": ("capname",),
    "network": ("family", "sock_type", "protocol", "mask"),
    "unix": ("sock_type", "mask", "addr", "peer_addr", "peer"),
    "signal": ("signal", "peer", "mask"),
    "ptrace": ("peer", "mask"),
    "dbus": ("bus", "dbus_path", "interface", "member", "dbus_name", "peer", "mask"),
    "mount": ("path", "srcname", "fstype", "flags"),
    "umount": ("path",),
    "remount": ("path", "flags"),
    "pivot_root": ("path", "srcname"),
    "change_profile": ("target",),
    "change_hat": ("target", "path"),
    "userns": ("mask",),
    "io_uring": ("mask", "target"),
    "mqueue": ("path", "mask", "class"),
    "other": ("operations", "name", "path", "target"),
}
# Fields whose values are matched as AppArmor globs, so literal values must be escaped.
_GLOB_FIELDS = ("path", "target", "peer", "addr", "peer_addr", "dbus_path", "interface", "member", "dbus_name",
                "srcname", "name", "flags", "fstype", "bus", "signal", "family", "sock_type", "capname", "class",
                "operations")


def escape_literal(text: str) -> str:
    """A literal name as an AppArmor pattern (answers.literal_pattern): a file named ``a*`` is not a glob.
    Names with a NUL byte are escaped too, so the event can still be answered by exact match."""
    return literal_pattern(str(text))


def _split_ext(name: str) -> Tuple[str, str]:
    """("base", ".ext") for a file name with an extension (not for dotfiles like ``.bashrc``)."""
    m = re.match(r"^(.+?)(\.[^./]+)$", name)
    if not m or not m.group(1) or m.group(1) == ".":
        return name, ""
    return m.group(1), m.group(2)


def glob_suggestions(path: str) -> List[str]:
    """aa-logprof-style globs for a path, most specific first, the escaped path itself first.

    For ``/a/b/c.ext``: ``/a/b/c.ext``, version globs of shared libraries (``libfoo.so.1.2`` →
    ``libfoo.so.*``, ``libdl-2.13.so`` → ``libdl-*.so``), ``/proc/<pid>/`` → ``/proc/*/``,
    ``/home/<user>/`` → ``/home/*/``, then ``/a/b/*.ext``, ``/a/b/*``, ``/a/**.ext``, ``/a/**``.
    Directories (trailing ``/``) get ``/a/b/*/`` and ``/a/**/``. Nothing above the grandparent and
    never ``/**``: broader than that is a decision to type, not to pick from a list.
    """
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        return []
    is_dir = path.endswith("/") and path != "/"
    parts = path.strip("/").split("/")
    if not parts or parts == [""]:
        return [path]
    esc = [escape_literal(p) for p in parts]
    tail = "/" if is_dir else ""
    out = ["/" + "/".join(esc) + tail]
    name = parts[-1]
    parent = "/" + "/".join(esc[:-1]) + ("/" if len(esc) > 1 else "")
    # version-globbed shared libraries
    if not is_dir:
        m = re.match(r"^(.*\.so)\.[0-9][0-9.]*$", name)
        if m:
            out.append(parent + escape_literal(m.group(1)) + ".*")
        m = re.match(r"^(.*?)[-_.]?[0-9][0-9.]*\.so$", name)
        if m and m.group(1):
            sep = name[len(m.group(1))] if name[len(m.group(1))] in "-_." else ""
            out.append(parent + escape_literal(m.group(1)) + sep + "*.so")
    # /proc/<pid>/..., /home/<user>/...
    if len(parts) >= 2 and parts[0] == "proc" and parts[1].isdigit():
        out.append("/proc/*/" + "/".join(esc[2:]) + (tail if len(parts) > 2 else "/"))
    if len(parts) >= 3 and parts[0] == "home":
        out.append("/home/*/" + "/".join(esc[2:]) + tail)
    if len(parts) >= 2:
        base, ext = _split_ext(name)
        if ext and not is_dir:
            out.append(parent + "*" + escape_literal(ext))
        out.append(parent + "*" + tail)
    if len(parts) >= 3:
        grand = "/" + "/".join(esc[:-2]) + "/"
        if not is_dir:
            base, ext = _split_ext(name)
            if ext:
                out.append(grand + "**" + escape_literal(ext))
        out.append(grand + "**" + tail)
    seen = set()
    result = []
    for g in out:
        if g not in seen and g != "/**" and g != "/**/":
            seen.add(g)
            result.append(g)
    return result


def exec_mode_suggestions(path: str) -> List[str]:
    """Exec modes to choose from, safest first (aa-logprof's menu minus the unconfined ones first)."""
    return ["ix", "Px", "Cx", "Pix", "Cix", "px", "cx", "pix", "cix", "Ux", "ux"]


# ---------------------------------------------------------------------------------------------
# Abstractions that already cover an event
# ---------------------------------------------------------------------------------------------

_SAFE_INCLUDE = re.compile(r"^[A-Za-z0-9_.+/-]+\Z")
_SKIP_SUFFIXES = (".dpkg-new", ".dpkg-old", ".dpkg-dist", ".rpmnew", ".rpmsave", "~", ".orig", ".rej")


def _literal_depth(pattern: str) -> int:
    """Path components before the first glob character: ``/srv/**`` -> 1, ``/etc/ssl/certs/*`` -> 3."""
    prefix = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[{" or pattern.startswith("@{", i):
            break
        prefix.append(c)
        i += 1
    text = "".join(prefix)
    return max(0, text.rstrip("/").count("/")) if "/" in text[1:] or text.endswith("/") else 0


def abstraction_rule_ok(pattern: str, path: str) -> bool:
    """Is a covering rule ``pattern`` no broader than needed for ``path``? (docs/answers.md)

    It must stay inside the event's own directory tree (covered by ``<dir of path>/**``) and name at
    least two literal directories (never a whole top-level tree: ``/srv/**``, ``/tmp/**``, ``/home/*/**``).
    """
    parent = path.rstrip("/").rsplit("/", 1)[0]
    if not parent:
        return False
    tree = escape_literal(parent) + "/**"
    if not (pattern == escape_literal(path) or aaglob.glob_covers(tree, pattern)):
        return False
    return _literal_depth(pattern) >= 2


class AbstractionIndex:
    """Which abstractions under ``<base_dir>/abstractions`` cover a file event with narrow-enough rules.

    Built lazily over coverage.ProfileIndex (one probe profile per abstraction, includes resolved and
    cached by the index). A missing directory means no include suggestions: a controller without AppArmor
    installed still gets glob suggestions.
    """

    def __init__(self, base_dir: str = "/etc/apparmor.d", variables: Optional[Dict[str, List[str]]] = None) -> None:
        self.base_dir = base_dir
        self.variables = variables
        self._probes = None  # type: Optional[List[Tuple[str, Any]]]

    def names(self) -> List[str]:
        """Relative names (``abstractions/ssl_certs``) of the abstraction files considered."""
        root = os.path.join(self.base_dir, "abstractions")
        out = []  # type: List[str]
        if not os.path.isdir(root):
            return out
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.startswith(".") or fn.endswith(_SKIP_SUFFIXES) or fn == "README":
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), self.base_dir)
                if _SAFE_INCLUDE.match(rel) and ".." not in rel.split("/"):
                    out.append(rel)
        return out

    def _load(self) -> List[Tuple[str, Any]]:
        if self._probes is not None:
            return self._probes
        from ansible_collections.armada.apparmor.plugins.module_utils import coverage
        names = self.names()
        self._probes = []
        if not names:
            return self._probes
        text = "".join("profile armada_probe_%d {\n  include <%s>\n}\n" % (i, n) for i, n in enumerate(names))
        try:
            index = coverage.ProfileIndex.from_text(text, apparmor_d=self.base_dir, variables=self.variables)
        except Exception:  # unreadable abstractions must not break glob suggestions
            return self._probes
        for i, n in enumerate(names):
            rs = index.ruleset("armada_probe_%d" % i)
            if rs is not None:
                self._probes.append((n, rs))
        return self._probes

    def covering(self, event: Dict[str, Any]) -> List[str]:
        """Abstractions that allow this file event using only rules :func:`abstraction_rule_ok` accepts.

        When one abstraction qualifies only by including another qualifying one, only the included
        (narrower) one is suggested.
        """
        from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import mask_to_perms
        path = event.get("path")
        if event.get("kind") != "file" or not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            return []
        mask = event.get("mask") or {}
        conv = mask_to_perms(mask.get("requested") or mask.get("denied") or "")
        owner = bool(event.get("owner"))
        if conv["owner"] and not conv["other"]:
            perms, owner = set(conv["owner"]), True
        else:
            perms = set(conv["owner"] | conv["other"])
        if not perms:
            return []
        found = []  # type: List[Tuple[str, Any]]
        for name, rs in self._load():
            granted = set()  # type: set
            denied = False
            for entry in rs.file_candidates(path):
                if entry.regex is None or (entry.owner and not owner) or not entry.regex.fullmatch(path):
                    continue
                if entry.deny:
                    denied = denied or bool(perms & set(entry.perms))
                    continue
                if abstraction_rule_ok(entry.pattern, path):
                    granted |= set(entry.perms)
            if "w" in granted:
                granted.add("a")
            if not denied and perms <= granted:
                found.append((name, rs))
        names = set(n for n, _ in found)
        out = []
        for name, rs in found:
            if any(other != name and other in rs.includes for other in names):
                continue  # it qualifies through a narrower abstraction it includes
            out.append(name)
        return sorted(out)


# ---------------------------------------------------------------------------------------------
# The pending block
# ---------------------------------------------------------------------------------------------

def pending_entry(event: Dict[str, Any], label: str, abstractions: Optional[AbstractionIndex] = None) -> Dict[str, Any]:
    """One answer (``answer: pending``) for a pending event, with suggestions, hosts and counts."""
    kind = event.get("kind") or "other"
    match = {"kind": kind}  # type: Dict[str, Any]
    for field in MATCH_FIELDS_BY_KIND.get(kind, ()):
        value = event.get(field)
        if field == "mask":
            mask = value if isinstance(value, dict) else {}
            value = mask.get("requested") or mask.get("denied")
        if value is None or value == "" or value == []:
            continue
        if field == "operations" and isinstance(value, list):
            value = [escape_literal(v) for v in value]
        elif isinstance(value, str) and field in _GLOB_FIELDS:
            value = escape_literal(value)
        match[field] = value
    if kind == "capability" and "capname" not in match and event.get("capability") is not None:
        match["capability"] = event.get("capability")
    entry = {"profile": label if not _has_glob(label) else label, "match": match,
             "answer": "pending"}  # type: Dict[str, Any]
    if kind == "file" and "owner" in event:
        entry["owner"] = bool(event["owner"])
    suggestions = {}  # type: Dict[str, Any]
    path = event.get("path")
    if kind in ("file", "exec") and isinstance(path, str):
        globs = glob_suggestions(path)
        if globs:
            suggestions["globs"] = globs
        if abstractions is not None and kind == "file":
            inc = abstractions.covering(event)
            if inc:
                suggestions["includes"] = inc
    if kind == "exec":
        suggestions["exec_modes"] = exec_mode_suggestions(path or "")
    if suggestions:
        entry["suggestions"] = suggestions
    hosts = event.get("hosts")
    if isinstance(hosts, dict):
        entry["hosts"] = sorted(str(h) for h in hosts)
        entry["counts"] = dict((str(h), int(c)) for h, c in sorted(hosts.items()))
    elif event.get("host"):
        entry["hosts"] = [str(event["host"])]
        entry["counts"] = {str(event["host"]): int(event.get("count") or 1)}
    if event.get("forgeable") is True:  # only seen in sources a local user can write: say so where it is answered
        entry["forgeable"] = True
        # host data: only the known origin names reach the file users paste into inventory
        entry["sources"] = [x for x in event.get("sources") or () if isinstance(x, str) and x in FORGEABLE]
    if event.get("reason"):
        entry["reason"] = event["reason"]
    if event.get("id"):
        entry["id"] = event["id"]
    return entry


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[{")


def pending_list(result: Dict[str, Any], abstractions: Optional[AbstractionIndex] = None) -> List[Dict[str, Any]]:
    """Every pending event of a to_rules result as answer entries, ordered by profile then event."""
    if not isinstance(result, dict) or not isinstance(result.get("profiles"), dict):
        raise ValueError("pending_answers expects the result of to_rules (a mapping with 'profiles')")
    out = []
    for name in sorted(result["profiles"]):
        entry = result["profiles"][name]
        children = entry.get("children") or {}
        groups = [(name, entry)] + [(name + "//" + c, children[c]) for c in sorted(children)]
        for label, ent in groups:
            for ev in ent.get("pending") or []:
                out.append(pending_entry(ev, ev.get("label") or label, abstractions))
    return out


HEADER = """\
# Pending AppArmor answers (armada.apparmor.pending_answers).
# Review each entry: set `answer:` to allow, deny or ignore (or leave it pending), optionally set
# `glob:` to one of suggestions.globs, `include:` to one of suggestions.includes, `exec_mode:` for
# exec events, `owner:`/`audit:`. The suggestions, hosts, counts, reason and id keys are informational
# and may stay: paste the reviewed block into group_vars/host_vars as is (docs/answers.md).
"""


def pending_yaml(result: Dict[str, Any], var_name: Optional[str] = "apparmor_answers_pending",
                 abstractions: Optional[AbstractionIndex] = None, header: bool = True) -> str:
    """The pending block as YAML text; ``var_name=None`` gives a bare list."""
    entries = pending_list(result, abstractions)
    lines = [HEADER.rstrip("\n")] if header else []
    if var_name:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\Z", var_name):
            raise ValueError("var_name %r is not a valid Ansible variable name" % var_name)
        if not entries:
            lines.append("%s: []" % var_name)
            return "\n".join(lines) + "\n"
        lines.append("%s:" % var_name)
        indent = "  "
    else:
        if not entries:
            lines.append("[]")
            return "\n".join(lines) + "\n"
        indent = ""
    for e in entries:
        lines.extend(_emit_item(e, indent))
    return "\n".join(lines) + "\n"


# ---- a small YAML emitter: block mappings, flow lists of scalars, double-quoted strings ----------

def yaml_scalar(value: Any) -> str:
    """A YAML 1.1/1.2 scalar that reads back as exactly ``value`` (strings always double-quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    out = ['"']
    for c in text:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or o in (0x2028, 0x2029, 0xFEFF, 0x85):
            out.append("\\x%02x" % o if o < 0x100 else "\\u%04x" % o)
        elif o > 0xFFFF and not c.isprintable():
            out.append("\\U%08x" % o)
        elif not c.isprintable() and o > 0x7F:
            out.append("\\u%04x" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _emit_value(key: str, value: Any, indent: str) -> List[str]:
    if isinstance(value, dict):
        if not value:
            return ["%s%s: {}" % (indent, key)]
        if all(not isinstance(v, (dict, list)) for v in value.values()):
            return ["%s%s: {%s}" % (indent, key, ", ".join("%s: %s" % (_yaml_key(k), yaml_scalar(v))
                                                            for k, v in value.items()))]
        lines = ["%s%s:" % (indent, key)]
        for k, v in value.items():
            lines.extend(_emit_value(_yaml_key(k), v, indent + "  "))
        return lines
    if isinstance(value, list):
        if not value:
            return ["%s%s: []" % (indent, key)]
        if all(not isinstance(v, (dict, list)) for v in value):
            return ["%s%s: [%s]" % (indent, key, ", ".join(yaml_scalar(v) for v in value))]
        lines = ["%s%s:" % (indent, key)]
        for v in value:
            lines.extend(_emit_item(v, indent + "  "))
        return lines
    comment = "  # allow | deny | ignore | pending" if key == "answer" else ""
    return ["%s%s: %s%s" % (indent, key, yaml_scalar(value) if key != "answer" else value, comment)]


_PLAIN_KEYS = frozenset(("profile", "match", "answer", "glob", "owner", "audit", "exec_mode", "exec_target", "include",
                         "comment", "suggestions", "hosts", "counts", "count", "id", "reason", "first_seen",
                         "last_seen", "globs", "includes", "exec_modes", "forgeable", "sources") + tuple(
    f for fields in MATCH_FIELDS_BY_KIND.values() for f in fields) + ("kind", "capability"))


def _yaml_key(key: Any) -> str:
    """Schema keys plain; anything else (host names: ``yes``, ``null``, ``1.0``...) double-quoted."""
    text = str(key)
    return text if text in _PLAIN_KEYS else yaml_scalar(text)


def _emit_item(item: Any, indent: str) -> List[str]:
    if not isinstance(item, dict):
        return ["%s- %s" % (indent, yaml_scalar(item))]
    lines = []  # type: List[str]
    first = True
    for k, v in item.items():
        sub = _emit_value(_yaml_key(k), v, indent + "  ")
        if first:
            sub[0] = indent + "- " + sub[0][len(indent) + 2:]
            first = False
        lines.extend(sub)
    if first:
        lines.append(indent + "- {}")
    return lines


def to_json(value: Any) -> str:
    """Stable JSON of a pending list (for callers that prefer data over YAML text)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
