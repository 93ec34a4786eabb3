"""Suggestions for pending events, and the pending questions (docs/answers.md, "Pending answers").

aa-logprof offers, for each question, globs of the path and the abstractions that would cover it.
Here the same suggestions are written next to each question - one per profile and access, the masks
united - as an answer in the answers schema, so the review happens in a text editor / pull request and
the reviewed block pastes back into inventory as is (the informational keys are part of the schema).
The YAML text itself (PyYAML, ``!unsafe`` tags) is written by the pending_answers filter on the controller.

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

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, exec_qualifiers
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob
from ansible_collections.armada.apparmor.plugins.module_utils.provenance import FORGEABLE
from ansible_collections.armada.apparmor.plugins.module_utils.rules import EVENT_KINDS, FILE_RULE_KINDS

# Kind -> the event fields a question matches on, in the order written (rules/<kind>.py declares them).
MATCH_FIELDS_BY_KIND = dict((name, ek.match) for name, ek in EVENT_KINDS.items())
# Fields whose values are matched as AppArmor globs, so literal values must be escaped.
_GLOB_FIELDS = ("path", "target", "peer", "addr", "peer_addr", "dbus_path", "interface", "member", "dbus_name",
                "srcname", "name", "flags", "fstype", "bus", "signal", "family", "sock_type", "capname", "class",
                "operations")


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
    esc = [escape_glob(p) for p in parts]
    tail = "/" if is_dir else ""
    out = ["/" + "/".join(esc) + tail]
    name = parts[-1]
    parent = "/" + "/".join(esc[:-1]) + ("/" if len(esc) > 1 else "")
    # version-globbed shared libraries
    if not is_dir:
        m = re.match(r"^(.*\.so)\.[0-9][0-9.]*$", name)
        if m:
            out.append(parent + escape_glob(m.group(1)) + ".*")
        m = re.match(r"^(.*?)[-_.]?[0-9][0-9.]*\.so$", name)
        if m and m.group(1):
            sep = name[len(m.group(1))] if name[len(m.group(1))] in "-_." else ""
            out.append(parent + escape_glob(m.group(1)) + sep + "*.so")
    # /proc/<pid>/..., /home/<user>/..., /usr/lib/<triplet>/...: the tunables first, as aa-logprof offers them
    out.extend(tunable_suggestions(parts, esc, tail))
    if len(parts) >= 2 and parts[0] == "proc" and parts[1].isdigit():
        out.append("/proc/*/" + "/".join(esc[2:]) + tail if len(parts) > 2 else "/proc/*" + tail)
    if len(parts) >= 3 and parts[0] == "home":
        out.append("/home/*/" + "/".join(esc[2:]) + tail)
    if len(parts) >= 2:
        base, ext = _split_ext(name)
        if ext and not is_dir:
            out.append(parent + "*" + escape_glob(ext))
        out.append(parent + "*" + tail)
    if len(parts) >= 3:
        grand = "/" + "/".join(esc[:-2]) + "/"
        if not is_dir:
            base, ext = _split_ext(name)
            if ext:
                out.append(grand + "**" + escape_glob(ext))
        out.append(grand + "**" + tail)
    seen = set()
    result = []
    for g in out:
        if g not in seen and g != "/**" and g != "/**/":
            seen.add(g)
            result.append(g)
    return result


_MULTIARCH = re.compile(r"^[^/]*-linux-gnu[^/]*\Z")  # the value of @{multiarch} in tunables/multiarch


def tunable_suggestions(parts: List[str], esc: List[str], tail: str) -> List[str]:
    """Globs with the standard tunables for a path split in ``parts`` (``esc``: escaped parts):
    ``/home/<user>/x`` and ``/root/x`` -> ``@{HOME}/x``; ``/proc/<pid>/x`` -> ``@{PROC}/@{pid}/x`` (and
    ``task/<tid>`` -> ``task/@{tid}``); ``/usr/lib/<triplet>/x`` -> ``/usr/lib/@{multiarch}/x``, perl modules
    -> ``/usr/lib/@{multiarch}/perl{,5}/**`` (logprof.conf's [globs])."""
    out: List[str] = []
    if len(parts) >= 3 and parts[0] == "home" or len(parts) >= 2 and parts[0] == "root":
        skip = 2 if parts[0] == "home" else 1
        out.append("@{HOME}/" + "/".join(esc[skip:]) + tail)
    if len(parts) >= 2 and parts[0] == "proc" and parts[1].isdigit():
        rest = list(esc[2:])
        if len(parts) >= 4 and parts[2] == "task" and parts[3].isdigit():
            rest[1] = "@{tid}"
        out.append("@{PROC}/@{pid}/" + "/".join(rest) + tail if len(parts) > 2 else "@{PROC}/@{pid}" + tail)
    for depth, prefix in ((2, ("usr", "lib")), (1, ("lib",))):
        if len(parts) > depth + 1 and tuple(parts[:depth]) == prefix and _MULTIARCH.match(parts[depth]):
            base = "/" + "/".join(prefix) + "/@{multiarch}/"
            if parts[depth + 1] in ("perl", "perl5") and len(parts) > depth + 2:
                out.append(base + "perl{,5}/**")
            out.append(base + "/".join(esc[depth + 1:]) + tail)
    return out


def exec_mode_suggestions(path: str) -> List[str]:
    """Exec modes to choose from, safest first, those the shipped exec qualifiers allow for ``path``
    (to_rules gives the inventory-extended list in the event's ``allowed_exec_modes``)."""
    return exec_qualifiers.modes_for(exec_qualifiers.Qualifiers().letters(path))


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
    tree = escape_glob(parent) + "/**"
    if not (pattern == escape_glob(path) or aaglob.glob_covers(tree, pattern)):
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
        self._probes: Optional[List[Tuple[str, Any]]] = None

    def names(self) -> List[str]:
        """Relative names (``abstractions/ssl_certs``) of the abstraction files considered."""
        root = os.path.join(self.base_dir, "abstractions")
        out: List[str] = []
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
        found: List[Tuple[str, Any]] = []
        for name, rs in self._load():
            granted: set = set()
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
# The pending questions: one per profile and access, masks united (the YAML text is the filter's job)
# ---------------------------------------------------------------------------------------------

# File permission letters in the order AppArmor's tools print them; others follow, sorted.
_FILE_MASK_ORDER = "rwacdlkmx"
# Informational keys taken from the events, bounded so one noisy access cannot blow up the file.
MAX_COMMS = 8
MAX_IDS = 32


def _mask_text(event: Dict[str, Any]) -> str:
    mask = event.get("mask")
    mask = mask if isinstance(mask, dict) else {}
    return str(mask.get("requested") or mask.get("denied") or "")


def union_mask(kind: str, masks: List[str]) -> str:
    """The union of requested masks, as one match value: ``wc`` + ``c`` + ``r`` -> ``rwc``; words for other kinds
    (``send`` + ``receive`` -> ``send receive``). An answer's mask matches every event whose mask is a subset."""
    if kind in FILE_RULE_KINDS:
        letters = set(c for m in masks for c in m if not c.isspace())
        return "".join(sorted(letters, key=lambda c: (_FILE_MASK_ORDER.index(c) if c in _FILE_MASK_ORDER
                                                      else len(_FILE_MASK_ORDER), c)))
    words: List[str] = []
    for m in masks:
        for w in m.replace(",", " ").split():
            if w not in words:
                words.append(w)
    return " ".join(words)


def _question_key(event: Dict[str, Any], label: str) -> Tuple[Any, ...]:
    """Events that are one question: same profile label, kind and identity fields, any mask (aa-logprof asks
    once per path with the union of permissions). Old ``OWNER::OTHER`` file masks stay apart (no union)."""
    kind = event.get("kind") or "other"
    key: List[Any] = [label, kind]
    for field in MATCH_FIELDS_BY_KIND.get(kind, ()):
        if field == "mask":
            text = _mask_text(event)
            key.append(text if "::" in text else None)
            continue
        value = event.get(field)
        key.append(json.dumps(value, sort_keys=True, default=str))
    if kind == "capability" and event.get("capname") is None:
        key.append(event.get("capability"))
    return tuple(key)


def _united_event(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One event standing for a question: the first event with the union of masks and owner."""
    first = events[0]
    kind = first.get("kind") or "other"
    united = dict(first)
    masks = [_mask_text(e) for e in events if _mask_text(e)]
    if masks:
        text = masks[0] if "::" in masks[0] else union_mask(kind, masks)
        denied = [str((e.get("mask") or {}).get("denied") or "") for e in events]
        united["mask"] = {"requested": text, "denied": text if any(denied) else ""}
    if "owner" in first:
        united["owner"] = all(bool(e.get("owner")) for e in events)
    return united


def _hosts_of(event: Dict[str, Any]) -> Dict[str, int]:
    hosts = event.get("hosts")
    if isinstance(hosts, dict):
        return dict((str(h), int(c)) for h, c in hosts.items())
    if event.get("host"):
        return {str(event["host"]): int(event.get("count") or 1)}
    return {}


def pending_entry(event: Dict[str, Any], label: str, abstractions: Optional[AbstractionIndex] = None,
                  covered: Optional[List[Dict[str, Any]]] = None, abi: str = "3.0") -> Dict[str, Any]:
    """One question (``answer: pending``) for the events of one access, with suggestions and what was seen.

    ``event`` is one event or the united event of several (:func:`pending_list`); ``covered`` are the events
    the question stands for (every mask, the program's own read under an exec). The profile is
    written glob-escaped: a label such as ``tracked//*`` must match only itself once answered.
    """
    events = list(covered) if covered else [event]
    kind = event.get("kind") or "other"
    match: Dict[str, Any] = {"kind": kind}
    for field in MATCH_FIELDS_BY_KIND.get(kind, ()):
        value = event.get(field)
        if field == "mask":
            value = _mask_text(event) or None
        if value is None or value == "" or value == []:
            continue
        if field == "operations" and isinstance(value, list):
            value = [escape_glob(str(v)) for v in value]
        elif isinstance(value, str) and field in _GLOB_FIELDS:
            value = escape_glob(str(value))
        match[field] = value
    if kind == "capability" and "capname" not in match and event.get("capability") is not None:
        match["capability"] = event.get("capability")
    entry: Dict[str, Any] = {"profile": escape_glob(str(label)), "match": match, "answer": "pending"}
    if kind == "file" and "owner" in event:
        entry["owner"] = bool(event["owner"])
    rule = would_write(events, entry, abi)
    if rule:
        entry["rule"] = rule
    modes = sorted(set(str(m) for e in events for m in (e.get("modes") or [])))
    if modes:
        entry["logged"] = modes
    comms: List[str] = []
    for e in events:
        for c in e.get("comms") or []:
            if str(c) not in comms and len(comms) < MAX_COMMS:
                comms.append(str(c))
    if comms:
        entry["comm"] = comms
    firsts = [e["first_seen"] for e in events if isinstance(e.get("first_seen"), (int, float))]
    lasts = [e["last_seen"] for e in events if isinstance(e.get("last_seen"), (int, float))]
    if firsts:
        entry["first_seen"] = min(firsts)
    if lasts:
        entry["last_seen"] = max(lasts)
    suggestions: Dict[str, Any] = {}
    path = event.get("path")
    if kind in FILE_RULE_KINDS and isinstance(path, str):
        globs = glob_suggestions(path)
        if globs:
            suggestions["globs"] = globs
        if abstractions is not None and kind == "file":
            inc = abstractions.covering(event)
            if inc:
                suggestions["includes"] = inc
    if kind == "exec":
        allowed = event.get("allowed_exec_modes")
        suggestions["exec_modes"] = list(allowed) if isinstance(allowed, list) else exec_mode_suggestions(path or "")
    if kind == "change_hat" and event.get("hat"):
        suggestions["hat"] = event["hat"]
    if event.get("suggested_answer") in ("allow", "deny"):
        suggestions["default_answer"] = event["suggested_answer"]
    if suggestions:
        entry["suggestions"] = suggestions
    hosts: Dict[str, int] = {}
    for e in events:
        for h, c in _hosts_of(e).items():
            hosts[h] = hosts.get(h, 0) + c
    if hosts:
        entry["hosts"] = sorted(hosts)
        entry["counts"] = dict(sorted(hosts.items()))
    reasons: List[str] = []
    for e in events:
        if e.get("reason") and str(e["reason"]) not in reasons:
            reasons.append(str(e["reason"]))
    if reasons:
        entry["reason"] = "; ".join(reasons)
    if any(e.get("possible_intrusion") for e in events):
        entry["possible_intrusion"] = True
    ids = [str(e["id"]) for e in events if e.get("id")][:MAX_IDS]
    if ids:
        entry["id"] = ids[0] if len(ids) == 1 else ids
    if events and all(e.get("forgeable") is True for e in events):
        # only seen in sources a local user can write: say so where it is answered; host data, so only the
        # known origin names reach the file users paste into inventory
        entry["forgeable"] = True
        entry["sources"] = sorted({x for e in events for x in e.get("sources") or ()
                                   if isinstance(x, str) and x in FORGEABLE})
    return entry


def would_write(events: List[Dict[str, Any]], entry: Dict[str, Any], abi: str = "3.0") -> Optional[str]:
    """The rule text(s) ``entry`` writes for its events once answered ``allow`` as is (exec: ``exec_mode: ix``,
    the first suggestion) - computed by to_rules itself, so the informational ``rule:`` cannot drift."""
    from ansible_collections.armada.apparmor.plugins.module_utils import answers as answers_mod
    answer: Dict[str, Any] = {"profile": entry["profile"], "match": entry["match"], "answer": "allow"}
    if "owner" in entry:
        answer["owner"] = entry["owner"]
    if entry["match"].get("kind") == "exec":
        answer["exec_mode"] = "ix"
    try:
        result = answers_mod.to_rules(events, [answer], abi=abi, fold_children="//null-" not in entry["profile"])
    except ValueError:
        return None
    texts: List[str] = []
    for prof in result["profiles"].values():
        for part in [prof] + list(prof.get("children", {}).values()):
            texts.extend(r["text"] for r in part["rules"] if r["text"] not in texts)
    return " ".join(texts) or None


def pending_list(result: Dict[str, Any], abstractions: Optional[AbstractionIndex] = None) -> List[Dict[str, Any]]:
    """The pending events of a to_rules result as questions, grouped by profile (docs/answers.md).

    One question per profile label and access with the union of the requested masks (``agent.conf wc``,
    ``c`` and ``r`` are one question), and a program's own read under its exec (``/usr/bin/tar r`` by
    ``P//null-/usr/bin/tar``) joins the exec question of that program: the exec answer covers it
    (answers.exec_self_read).
    """
    from ansible_collections.armada.apparmor.plugins.module_utils.answers import exec_self_read
    if not isinstance(result, dict) or not isinstance(result.get("profiles"), dict):
        raise ValueError("pending_answers expects the result of to_rules (a mapping with 'profiles')")
    abi = str(result.get("abi") or "3.0")
    out = []
    for name in sorted(result["profiles"]):
        entry = result["profiles"][name]
        children = entry.get("children") or {}
        parts = [(name, entry)] + [(name + "//" + c, children[c]) for c in sorted(children)]
        groups: Dict[Tuple[Any, ...], List[Dict[str, Any]]] = {}
        order: List[Tuple[Any, ...]] = []
        for default_label, part in parts:
            for ev in part.get("pending") or []:
                label = ev.get("label") or default_label
                key = _question_key(ev, label)
                if key not in groups:
                    groups[key] = []
                    order.append(key)
                groups[key].append(ev)
        for key in list(order):
            evs = groups[key]
            program = exec_self_read(evs[0])
            if program is None or any(exec_self_read(e) != program for e in evs):
                continue
            exec_key = _question_key({"kind": "exec", "path": program}, key[0])
            if exec_key in groups:
                groups[exec_key].extend(evs)
                order.remove(key)
        for key in order:
            evs = groups[key]
            main = [e for e in evs if e.get("kind") == key[1]]
            others = [e for e in evs if e.get("kind") != key[1]]
            out.append(pending_entry(_united_event(main), key[0], abstractions, covered=main + others, abi=abi))
    return out
