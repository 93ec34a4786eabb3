"""Which events (or rules) are already covered by a profile and the files it includes.

Why an index: aa-logprof compares every new rule against every existing rule (and every
abstraction): quadratic (docs/benchmarks.md, *Coverage*). Here each profile's file rules are
bucketed by the literal directory prefix of their (variable-expanded) path pattern, so an event
path ``/a/b/c`` only meets the rules filed under ``/``, ``/a/``, ``/a/b/`` and the few patterns
that start with a glob; other kinds are bucketed by kind. Regexes are compiled once.

Decision for an event (see :meth:`ProfileIndex.decision`):

* ``"deny"`` when a deny rule of the profile (or its includes) matches the access: for file
  events a matching deny rule sharing at least one requested permission (AppArmor denies win);
* ``"allow"`` when the allow rules together grant every requested permission (``w`` grants ``a``;
  ``owner`` rules only count for owner accesses; an exec is allowed by any exec mode on the path);
* ``None`` otherwise (unknown profile, unknown kind, not covered).

Runs on the host where the profiles are (the ``denials`` module's ``skip_covered``) and on the
controller; standard library only (Python 3.8+).
"""
import copy
import os
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import has_glob, literal_prefix, pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.profile_model import (
    Include,
    Profile,
    ProfileError,
    ProfileFile,
)
from ansible_collections.armada.apparmor.plugins.module_utils.rules import FILE_RULE_KINDS, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import Rule, RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule, mask_to_perms
from ansible_collections.armada.apparmor.plugins.module_utils.rules.include import IncludeRule

# Files and directories under /etc/apparmor.d that are not profiles.
SKIP_DIRS = ("abstractions", "tunables", "local", "disable", "force-complain", "cache", "abi", "apache2.d")
SKIP_SUFFIXES = ("~", ".dpkg-new", ".dpkg-old", ".dpkg-dist", ".dpkg-bak", ".rpmnew", ".rpmsave", ".orig", ".rej",
                 ".swp", ".md")
MAX_INCLUDE_DEPTH = 32
MAX_BRACE_EXPANSION = 64
_ALL_PERMS = frozenset("mrwalk")


def _bucket_key(pattern: str) -> str:
    prefix = literal_prefix(pattern)
    return prefix[:prefix.rfind("/") + 1]


def _split_top_braces(pattern: str) -> List[str]:
    """Expand the first top-level ``{a,b}`` group repeatedly (bounded) so patterns like
    ``/{usr/,}bin/x`` land in precise buckets. Returns [pattern] when nothing to expand."""
    results = [pattern]
    for _round in range(8):
        nxt = []
        changed = False
        for pat in results:
            span = _first_brace(pat)
            if span is None:
                nxt.append(pat)
                continue
            start, end, alts = span
            changed = True
            for alt in alts:
                nxt.append(pat[:start] + alt + pat[end:])
        if len(nxt) > MAX_BRACE_EXPANSION:
            return results
        results = nxt
        if not changed:
            break
    return results


def _first_brace(pat: str) -> Optional[Tuple[int, int, List[str]]]:
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            # skip a character class (it may contain braces)
            j = i + 1
            if j < n and pat[j] == "^":
                j += 1
            if j < n and pat[j] == "]":
                j += 1
            while j < n and pat[j] != "]":
                j += 2 if pat[j] == "\\" else 1
            i = j + 1
            continue
        if c == "@" and i + 1 < n and pat[i + 1] == "{":
            return None  # unexpanded variable: leave as is
        if c == "{":
            depth = 0
            alts = []
            cur_start = i + 1
            j = i
            while j < n:
                d = pat[j]
                if d == "\\":
                    j += 2
                    continue
                if d == "{":
                    depth += 1
                elif d == "}":
                    depth -= 1
                    if depth == 0:
                        alts.append(pat[cur_start:j])
                        return i, j + 1, alts
                elif d == "," and depth == 1:
                    alts.append(pat[cur_start:j])
                    cur_start = j + 1
                j += 1
            return None
        i += 1
    return None


class _FileEntry:
    """One expanded path pattern of a file rule, with its compiled regex."""

    __slots__ = ("rule", "pattern", "regex", "perms", "exec_mode", "owner", "deny")

    def __init__(self, rule: FileRule, pattern: str) -> None:
        self.rule = rule
        self.pattern = pattern
        try:
            self.regex = aaglob.compile_glob(pattern)
        except aaglob.GlobError:
            self.regex = None  # unknown variable / malformed: matches nothing
        self.perms = rule.perms if rule.perms is not None else _ALL_PERMS
        self.exec_mode = rule.exec_mode
        self.owner = rule.owner
        self.deny = rule.deny


class RuleSet:
    """The indexed rules of one profile (own rules plus everything included)."""

    def __init__(self) -> None:
        self.file_buckets: Dict[str, List[_FileEntry]] = {}
        self.all_files: List[FileRule] = []  # bare "file," rules
        self.by_kind: Dict[str, List[Rule]] = {}
        self.includes: Set[str] = set()
        self.caps_allow: Set[str] = set()
        self.caps_deny: Set[str] = set()
        self.all_caps_allow = False
        self.all_caps_deny = False
        self.count = 0

    def add(self, rule: Rule, variables: Dict[str, List[str]]) -> None:
        self.count += 1
        if isinstance(rule, FileRule):
            if rule.path is None:
                self.all_files.append(rule)
                return
            try:
                expanded = aaglob.expand_variables(rule.path, variables)
            except aaglob.GlobError:
                expanded = [rule.path]
            for pattern in expanded:
                for part in _split_top_braces(pattern):
                    part = aaglob.collapse_slashes(part)
                    self.file_buckets.setdefault(_bucket_key(part), []).append(_FileEntry(rule, part))
            return
        if rule.kind == "capability":
            names = getattr(rule, "names", None)
            if rule.deny:
                if names is None:
                    self.all_caps_deny = True
                else:
                    self.caps_deny.update(names)
            elif names is None:
                self.all_caps_allow = True
            else:
                self.caps_allow.update(names)
        if isinstance(rule, IncludeRule):
            self.includes.add(rule.target)
            return
        self.by_kind.setdefault(rule.kind, []).append(rule)

    def merge(self, other: "RuleSet") -> None:
        for key, entries in other.file_buckets.items():
            self.file_buckets.setdefault(key, []).extend(entries)
        self.all_files.extend(other.all_files)
        for kind, rules in other.by_kind.items():
            self.by_kind.setdefault(kind, []).extend(rules)
        self.includes |= other.includes
        self.caps_allow |= other.caps_allow
        self.caps_deny |= other.caps_deny
        self.all_caps_allow = self.all_caps_allow or other.all_caps_allow
        self.all_caps_deny = self.all_caps_deny or other.all_caps_deny
        self.count += other.count

    # ---- file lookups --------------------------------------------------------------------------
    def file_candidates(self, path: str) -> Iterable[_FileEntry]:
        buckets = self.file_buckets
        entries = buckets.get("")
        if entries:
            yield from entries
        pos = path.find("/")
        while pos >= 0:
            entries = buckets.get(path[:pos + 1])
            if entries:
                yield from entries
            pos = path.find("/", pos + 1)

    def file_decision(self, path: str, perms: Set[str], owner: bool, exec_needed: bool) -> Optional[str]:
        """deny / allow / None for a literal path and the permissions it needs."""
        granted: Set[str] = set()
        exec_ok = False
        for rule in self.all_files:
            if rule.owner and not owner:
                continue
            if rule.deny:
                return "deny"
            granted |= _ALL_PERMS
        for entry in self.file_candidates(path):
            if entry.regex is None or (entry.owner and not owner):
                continue
            if not entry.regex.fullmatch(path):
                continue
            if entry.deny:
                if perms & entry.perms or (exec_needed and entry.exec_mode):
                    return "deny"
                continue
            granted |= entry.perms
            if entry.exec_mode:
                exec_ok = True
        if "w" in granted:
            granted.add("a")
        if exec_needed and not exec_ok:
            return None
        if perms <= granted:
            return "allow"
        return None


class ProfileIndex:
    """Indexed view of profiles and their includes. Build with :meth:`load` or :meth:`from_text`."""

    def __init__(self, apparmor_d: str = "/etc/apparmor.d", variables: Optional[Dict[str, List[str]]] = None) -> None:
        self.apparmor_d = apparmor_d
        self.variables = dict(variables) if variables is not None else aaglob.load_tunables(apparmor_d)
        self.profiles: Dict[str, RuleSet] = {}
        self.attachments: Dict[str, str] = {}
        self.warnings: List[str] = []
        self._include_cache: Dict[str, Tuple[RuleSet, Dict[str, List[str]]]] = {}
        self._in_progress: Set[str] = set()

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def load(cls, apparmor_d: str = "/etc/apparmor.d", names: Optional[Iterable[str]] = None) -> "ProfileIndex":
        """Index every profile file directly under ``apparmor_d`` (``names``: only those files).
        Unreadable or unparsable files are listed in ``warnings``, never fatal."""
        index = cls(apparmor_d)
        try:
            entries = sorted(os.listdir(apparmor_d)) if names is None else list(names)
        except OSError as exc:
            index.warnings.append("cannot list %s: %s" % (apparmor_d, exc))
            return index
        for name in entries:
            path = name if os.path.isabs(name) else os.path.join(apparmor_d, name)
            base = os.path.basename(path)
            if base in SKIP_DIRS or base.startswith(".") or base.endswith(SKIP_SUFFIXES) or base == "README":
                continue
            if not os.path.isfile(path):
                continue
            try:
                pf = ProfileFile.load(path)
            except (OSError, ProfileError, UnicodeError) as exc:
                index.warnings.append("%s: %s" % (path, exc))
                continue
            index.add_file(pf)
        return index

    @classmethod
    def from_text(cls, text: str, apparmor_d: str = "/etc/apparmor.d", path: Optional[str] = None,
                  variables: Optional[Dict[str, List[str]]] = None) -> "ProfileIndex":
        """Index the profiles of one file's text (includes resolved under ``apparmor_d``)."""
        index = cls(apparmor_d, variables)
        index.add_file(ProfileFile.parse(text, path))
        return index

    def add_file(self, pf: ProfileFile) -> None:
        """Index every profile (children and hats as ``parent//child``) of a parsed file."""
        file_vars = _merge_vars(self.variables, pf.variables)
        for inc in pf.includes:
            # preamble includes (tunables) only contribute variables
            _rs, inc_vars = self._resolve_include(inc, 0)
            file_vars = _merge_vars(file_vars, inc_vars)
        for prof in pf.all_profiles():
            self._add_profile(prof, file_vars)

    def _add_profile(self, prof: Profile, file_vars: Dict[str, List[str]]) -> None:
        variables = dict(file_vars)
        chain = []
        p: Optional[Profile] = prof
        while p is not None:
            chain.append(p)
            p = p.parent
        for p in reversed(chain):
            variables = _merge_vars(variables, p.variables)
        rs = RuleSet()
        for inc in prof.includes:
            inc_rs, _v = self._resolve_include(inc, 0, variables)
            rs.merge(inc_rs)
            rs.includes.add(inc.target)
        for pr in prof.rules:
            if pr.rule is not None:
                rs.add(pr.rule, variables)
            else:
                self.warnings.append("%s: rule not understood, ignored for coverage: %s (%s)"
                                     % (prof.full_name, " ".join(pr.text.split()), pr.error))
        self.profiles[prof.full_name] = rs
        if prof.parent is None and prof.attachment and prof.attachment != prof.name:
            self.attachments.setdefault(prof.attachment, prof.full_name)

    def _include_path(self, inc: Include) -> str:
        if inc.magic or not os.path.isabs(inc.target):
            return os.path.join(self.apparmor_d, inc.target)
        return inc.target

    def _resolve_include(self, inc: Include, depth: int, variables: Optional[Dict[str, List[str]]] = None
                         ) -> Tuple[RuleSet, Dict[str, List[str]]]:
        path = self._include_path(inc)
        return self._load_include(path, inc.if_exists, depth, variables)

    def _load_include(self, path: str, if_exists: bool, depth: int,
                      variables: Optional[Dict[str, List[str]]] = None) -> Tuple[RuleSet, Dict[str, List[str]]]:
        cached = self._include_cache.get(path)
        if cached is not None:
            return cached
        empty: Tuple[RuleSet, Dict[str, List[str]]] = (RuleSet(), {})
        if depth > MAX_INCLUDE_DEPTH or path in self._in_progress:
            self.warnings.append("include loop or depth limit at %s" % path)
            return empty
        if os.path.isdir(path):
            rs = RuleSet()
            found_vars: Dict[str, List[str]] = {}
            for name in sorted(os.listdir(path)):
                if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                    continue
                sub_rs, sub_vars = self._load_include(os.path.join(path, name), True, depth + 1, variables)
                rs.merge(sub_rs)
                found_vars = _merge_vars(found_vars, sub_vars)
            self._include_cache[path] = (rs, found_vars)
            return rs, found_vars
        if not os.path.isfile(path):
            if not if_exists:
                self.warnings.append("include not found: %s" % path)
            self._include_cache[path] = empty
            return empty
        self._in_progress.add(path)
        try:
            pf = ProfileFile.load(path)
        except (OSError, ProfileError, UnicodeError) as exc:
            self.warnings.append("%s: %s" % (path, exc))
            self._in_progress.discard(path)
            self._include_cache[path] = empty
            return empty
        rs = RuleSet()
        found_vars = dict(pf.variables)
        nested = pf.includes
        for inc in nested:
            sub_rs, sub_vars = self._resolve_include(inc, depth + 1, variables)
            rs.merge(sub_rs)
            rs.includes.add(inc.target)
            found_vars = _merge_vars(found_vars, sub_vars)
        use_vars = _merge_vars(variables or self.variables, found_vars)
        for pr in pf.toplevel_rules:
            if pr.rule is not None:
                rs.add(pr.rule, use_vars)
        self._in_progress.discard(path)
        # Cache per path: abstractions use global tunables, so the result does not depend on the
        # including profile's own variables in practice (documented limitation).
        self._include_cache[path] = (rs, found_vars)
        return rs, found_vars

    # ---- queries -------------------------------------------------------------------------------
    def ruleset(self, profile: Optional[str], fold_null: bool = True) -> Optional[RuleSet]:
        """RuleSet of a profile label (``a//b`` children/hats; ``a//null-x`` is, when ``fold_null``, where ``a``'s
        exec rule for ``x`` runs it - its own profile for ``Px``, the child for ``Cx``, else ``a`` - matching
        where rule generation writes its accesses)."""
        if not profile:
            return None
        rs = self.profiles.get(profile)
        if rs is not None:
            return rs
        name = self.attachments.get(profile)
        if name is not None:
            return self.profiles.get(name)
        if "//" in profile:
            parent, _sep, child = profile.partition("//")
            if fold_null and child.startswith("null-"):
                program, _sep, rest = child[len("null-"):].partition("//")
                home = self._exec_home(parent, program)
                return self.ruleset(home + ("//" + rest if rest else ""), fold_null)
        return None

    def _exec_home(self, parent: str, program: str) -> str:
        """The profile ``parent``'s exec rule for ``program`` runs it in (answers.exec_home, read from the rules):
        the target profile for a ``p`` mode, the child ``parent//name`` for a ``c`` mode, else ``parent``."""
        rs = self.ruleset(parent)
        if rs is None:
            return parent
        for entry in rs.file_candidates(program):
            if entry.deny or not entry.exec_mode or entry.regex is None or not entry.regex.fullmatch(program):
                continue
            target = entry.rule.target or program
            if entry.exec_mode[0] in "pP":
                return target
            if entry.exec_mode[0] in "cC":
                return parent + "//" + target
        return parent

    def decision(self, event: Dict[str, Any], profile: Optional[str] = None) -> Optional[str]:
        """"allow", "deny" or None for an event (docs/events.md) against its profile's rules."""
        rs = self.ruleset(profile or event.get("profile"))
        if rs is None:
            return None
        kind = event.get("kind")
        if kind in FILE_RULE_KINDS:
            path = event.get("path")
            if not isinstance(path, str) or not path or "\x00" in path:
                return None
            path = aaglob.collapse_name(path)
            owner = bool(event.get("owner"))
            if kind == "exec":
                return rs.file_decision(path, set(), owner, True)
            mask = (event.get("mask") or {})
            conv = mask_to_perms(mask.get("requested") or mask.get("denied") or "")
            if conv["owner"] and not conv["other"]:
                perms, owner = conv["owner"], True
            else:
                perms = conv["owner"] | conv["other"]
            if not perms:
                return None
            return rs.file_decision(path, perms, owner, False)
        if kind == "capability":
            rule = rule_from_event(event)
            if rule is None:
                return None
            names = getattr(rule, "names", None) or frozenset()
            if rs.all_caps_deny or names & rs.caps_deny:
                return "deny"
            if rs.all_caps_allow or names <= rs.caps_allow:
                return "allow"
            return None
        try:
            rule = rule_from_event(event)
        except (RuleParseError, ValueError):
            return None
        if rule is None:
            return None
        return self._generic_decision(rs, rule)

    def _generic_decision(self, rs: RuleSet, rule: Rule) -> Optional[str]:
        candidates = rs.by_kind.get(rule.kind, ())
        as_deny = copy.copy(rule)
        as_deny.deny = True
        as_deny.audit = False
        allowed = False
        for cand in candidates:
            try:
                if cand.deny:
                    if cand.covers(as_deny, self.variables):
                        return "deny"
                elif not allowed and cand.covers(rule, self.variables):
                    allowed = True
            except (RuleParseError, ValueError, aaglob.GlobError):
                continue
        return "allow" if allowed else None

    def covers_rule(self, rule: Rule, profile: Optional[str] = None) -> bool:
        """Is ``rule`` (allow or deny) already implied by the profile's rules and includes?

        With ``profile`` None, True when any indexed profile covers it (useful for abstractions
        checks); normally pass the profile name."""
        names = [profile] if profile is not None else list(self.profiles)
        for name in names:
            rs = self.ruleset(name)
            if rs is not None and self._ruleset_covers(rs, rule):
                return True
        return False

    def _ruleset_covers(self, rs: RuleSet, rule: Rule) -> bool:
        if isinstance(rule, IncludeRule):
            return rule.target in rs.includes
        if isinstance(rule, FileRule):
            return self._file_rule_covered(rs, rule)
        for cand in rs.by_kind.get(rule.kind, ()):
            try:
                if cand.covers(rule, self.variables):
                    return True
            except (RuleParseError, ValueError, aaglob.GlobError):
                continue
        return False

    def _file_rule_covered(self, rs: RuleSet, rule: FileRule) -> bool:
        for bare in rs.all_files:
            if bare.covers(rule, self.variables):
                return True
        if rule.path is None:
            return False
        try:
            expanded = aaglob.expand_variables(rule.path, self.variables)
        except aaglob.GlobError:
            return False
        needed = set(rule.perms or ())
        for pattern in expanded:
            literal = pattern_literal(pattern) if not has_glob(pattern) else None
            granted: Set[str] = set()
            exec_ok = rule.exec_mode is None
            for entry in self._entries_for_pattern(rs, pattern, literal):
                if entry.deny != rule.deny:
                    continue
                if entry.owner and not rule.owner:
                    continue
                if rule.audit and not entry.rule.audit:
                    continue
                if literal is not None:
                    if entry.regex is None or not entry.regex.fullmatch(literal):
                        continue
                elif not aaglob.glob_covers(entry.pattern, pattern, self.variables):
                    continue
                granted |= entry.perms
                if rule.exec_mode is not None and entry.exec_mode is not None and (
                        rule.deny or (entry.exec_mode == rule.exec_mode and entry.rule.target == rule.target)):
                    exec_ok = True
            if "w" in granted:
                granted.add("a")
            if not (needed <= granted and exec_ok):
                return False
        return True

    def _entries_for_pattern(self, rs: RuleSet, pattern: str, literal: Optional[str]) -> Iterable[_FileEntry]:
        if literal is not None:
            return rs.file_candidates(literal)
        return rs.file_candidates(literal_prefix(pattern))

    def profile_names(self) -> List[str]:
        return sorted(self.profiles)


def _merge_vars(base: Dict[str, List[str]], extra: Dict[str, List[str]]) -> Dict[str, List[str]]:
    if not extra:
        return base
    out = dict(base)
    out.update(extra)
    return out
