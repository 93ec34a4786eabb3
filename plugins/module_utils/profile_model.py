"""Parse, edit and render AppArmor profile files without losing comments or layout.

Why text-preserving: profiles are hand-maintained; an edit made by automation must leave every
comment, blank line, include and ordering in place and change only what was asked (a new rule, a
header flag). So the model keeps the original text and records, for every statement, where it
sits (character offsets). Edits splice the text and re-parse; render() returns the text.

Statements recognised: preamble comments, ``abi <...>,``, ``include``/``#include``/``include if
exists`` lines, variable assignments (``@{X} = a b``, ``+=``), ``alias`` rules, profile headers
(``profile name [attachment] [flags=(...)] {``, ``/path [flags=(...)] {``, ``hat name {``,
``^name {``), nested child profiles and hats, rules (possibly spanning lines), and comments.
Unknown rules are kept verbatim (``ProfileRule.rule`` is None) so nothing is ever dropped.

Standard library only (runs on managed hosts, Python 3.8+).
"""
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import (
    EscapeError,
    pattern_literal,
    quote_path,
    unquote,
)
from ansible_collections.armada.apparmor.plugins.module_utils.host import MODE_FLAGS
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import Rule, RuleParseError, tokenize

KNOWN_MODES = ("enforce", "complain", "kill", "unconfined", "prompt")

_INCLUDE_RE = re.compile(r'^(?:#include|include)(\s+if\s+exists)?\s+(<[^>\n]*>|"(?:\\.|[^"\\])*"|[^\s#]+)\s*(?:#.*)?$')
_VAR_RE = re.compile(r"^@\{([A-Za-z0-9_]+)\}\s*(\+?=)\s*(.*)$", re.S)
# "#include <x>" is the old directive; "#  include <x>" (with a blank) is a comment, as the
# abstractions' own usage examples ("#   include <abstractions/exo-open>") show.
_INCLUDE_START = re.compile(r'(?:#include|include)[ \t]+(?:if[ \t]+exists[ \t]+)?[<"/A-Za-z]')
_VAR_START = re.compile(r"@\{[A-Za-z0-9_]+\}\s*\+?=")
_FLAGS_RE = re.compile(r"\bflags\s*=\s*\(([^)]*)\)")


def _flags_outside_quotes(text: str):
    """The first ``flags=(...)`` of a header that is not inside a quoted name (a hat may be called
    ``"flags=()"``; the parser reads that as the name)."""
    for m in _FLAGS_RE.finditer(text):
        in_quote = False
        i = 0
        while i < m.start():
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                in_quote = not in_quote
            i += 1
        if not in_quote:
            return m
    return None


class ProfileError(ValueError):
    """The profile text cannot be parsed (unbalanced braces, unterminated quote...)."""


class Statement:
    """One statement of the file with its position: kind is one of abi, include, variable, alias,
    rule, header, close, comment. ``start``/``end`` are character offsets into the text."""

    __slots__ = ("kind", "text", "start", "end", "line", "profile")

    def __init__(self, kind: str, text: str, start: int, end: int, line: int) -> None:
        self.kind = kind
        self.text = text
        self.start = start
        self.end = end
        self.line = line
        self.profile: Optional[Profile] = None

    def __repr__(self) -> str:
        return "<Statement %s line %d %r>" % (self.kind, self.line, self.text[:60])


class Include:
    """An include line: ``target`` is the text between <> or quotes; ``magic`` for <...> forms."""

    def __init__(self, target: str, magic: bool, if_exists: bool, statement: Statement) -> None:
        self.target = target
        self.magic = magic
        self.if_exists = if_exists
        self.statement = statement

    def render(self) -> str:
        """Canonical ``include [if exists] <x>`` text."""
        inner = "<%s>" % self.target if self.magic else quote_path(self.target)
        if not self.magic and not inner.startswith('"'):
            inner = '"%s"' % inner
        return "include %s%s" % ("if exists " if self.if_exists else "", inner)

    def __repr__(self) -> str:
        return "<Include %s>" % self.render()


class ProfileRule:
    """A rule statement inside a profile: the parsed Rule (None when no kind understands it)."""

    def __init__(self, rule: Optional[Rule], statement: Statement, error: Optional[str] = None) -> None:
        self.rule = rule
        self.statement = statement
        self.error = error

    @property
    def text(self) -> str:
        return self.statement.text


class Profile:
    """A profile, child profile or hat, with its header, rules, includes and nested profiles."""

    def __init__(self, header: Statement, parent: Optional["Profile"]) -> None:
        self.header = header
        self.parent = parent
        self.name = ""
        self.attachment: Optional[str] = None
        self.flags: List[str] = []
        self.is_hat = False
        self.keyword: Optional[str] = None  # "profile", "hat", "^" or None
        self.rules: List[ProfileRule] = []
        self.includes: List[Include] = []
        self.variables: Dict[str, List[str]] = {}
        self.children: List[Profile] = []
        self.close: Optional[Statement] = None
        self.statements: List[Statement] = []
        self._parse_header(header.text)

    @property
    def full_name(self) -> str:
        """``parent//child`` path of names, as AppArmor labels name children and hats."""
        if self.parent is None:
            return self.name
        return self.parent.full_name + "//" + self.name

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    def _parse_header(self, text: str) -> None:
        body = text.rstrip()
        if body.endswith("{"):
            body = body[:-1].rstrip()
        m = _flags_outside_quotes(body)
        if m:
            self.flags = [f for f in re.split(r"[\s,]+", m.group(1).strip()) if f]
            body = (body[:m.start()] + body[m.end():]).strip()
        try:
            tokens = tokenize(body)
        except RuleParseError as exc:
            raise ProfileError("bad profile header %r: %s" % (text, exc)) from None
        if not tokens:
            raise ProfileError("profile header without a name: %r" % (text,))
        head = tokens[0]
        if head in ("profile", "hat"):
            self.keyword = head
            self.is_hat = head == "hat"
            tokens = tokens[1:]
            if not tokens:
                raise ProfileError("profile header without a name: %r" % (text,))
            self.name = _read_name(tokens[0])
            rest = tokens[1:]
        elif head.startswith("^"):
            self.keyword = "^"
            self.is_hat = True
            self.name = _read_name(head[1:]) if len(head) > 1 else _read_name(tokens[1])
            rest = tokens[1:] if len(head) > 1 else tokens[2:]
        else:
            self.name = _read_name(head)
            self.attachment = self.name
            rest = tokens[1:]
        for tok in rest:
            if self.attachment is None and "=" not in tok.split('"')[0]:
                self.attachment = _read_name(tok)

    def find_child(self, name: str) -> Optional["Profile"]:
        for child in self.children:
            if child.name == name:
                return child
        return None

    def walk(self) -> Iterable["Profile"]:
        """This profile and every nested one, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return "<Profile %s flags=%s rules=%d>" % (self.full_name, self.flags, len(self.rules))


def _read_name(token: str) -> str:
    """Profile name from a header token (quotes removed, escapes decoded to the literal)."""
    if token.startswith('"'):
        try:
            pattern = unquote(token)
        except EscapeError as exc:
            raise ProfileError(str(exc)) from None
        literal = pattern_literal(pattern)
        return literal if literal is not None else pattern
    return token


class ProfileFile:
    """A parsed profile file. Build with :meth:`parse`; edit with add_rules/set_flags; render()."""

    def __init__(self, text: str, path: Optional[str] = None) -> None:
        self.text = text
        self.path = path
        self.statements: List[Statement] = []
        self.profiles: List[Profile] = []
        self.abi: Optional[str] = None
        self.includes: List[Include] = []
        self.variables: Dict[str, List[str]] = {}
        self.preamble: List[Statement] = []
        # Rules outside any profile: the body of an abstraction / include file.
        self.toplevel_rules: List[ProfileRule] = []

    # ---- parsing -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, path: Optional[str] = None) -> "ProfileFile":
        """Parse profile text. Raises ProfileError (with the line number) on structural errors."""
        if not isinstance(text, str):
            raise ProfileError("profile text must be a string")
        pf = cls(text, path)
        pf.statements = list(_split_statements(text))
        stack: List[Profile] = []
        for st in pf.statements:
            current = stack[-1] if stack else None
            st.profile = current
            if st.kind == "header":
                try:
                    prof = Profile(st, current)
                except ProfileError as exc:
                    raise ProfileError("line %d: %s" % (st.line, exc)) from None
                if current is None:
                    pf.profiles.append(prof)
                else:
                    current.children.append(prof)
                    current.statements.append(st)
                stack.append(prof)
                continue
            if st.kind == "close":
                if not stack:
                    raise ProfileError("line %d: '}' without an open profile" % st.line)
                stack[-1].close = st
                stack.pop()
                continue
            if current is None:
                pf.preamble.append(st)
            else:
                current.statements.append(st)
            if st.kind == "abi":
                m = re.search(r"<([^>]*)>|\"([^\"]*)\"", st.text)
                pf.abi = (m.group(1) or m.group(2)) if m else st.text
            elif st.kind == "include":
                inc = _parse_include(st)
                (current.includes if current else pf.includes).append(inc)
            elif st.kind == "variable":
                _apply_variable(current.variables if current else pf.variables, st)
            elif st.kind == "rule":
                try:
                    rule: Optional[Rule] = parse_rule(st.text)
                    err: Optional[str] = None
                except (RuleParseError, EscapeError, ValueError) as exc:
                    rule, err = None, str(exc)
                # rules outside any profile are the body of an abstraction (include file)
                (current.rules if current else pf.toplevel_rules).append(ProfileRule(rule, st, err))
        if stack:
            raise ProfileError("profile %r is not closed (missing '}')" % stack[-1].full_name)
        return pf

    @classmethod
    def load(cls, path: str) -> "ProfileFile":
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return cls.parse(handle.read(), path)

    # ---- queries -------------------------------------------------------------------------------
    def all_profiles(self) -> List[Profile]:
        out: List[Profile] = []
        for prof in self.profiles:
            out.extend(prof.walk())
        return out

    def find(self, name: Optional[str]) -> Optional[Profile]:
        """Profile by full name (``a//b`` for children/hats), by name, or by attachment.
        None returns the first top-level profile."""
        if name is None:
            return self.profiles[0] if self.profiles else None
        everything = self.all_profiles()
        for prof in everything:
            if prof.full_name == name:
                return prof
        for prof in everything:
            if prof.parent is None and prof.attachment == name:
                return prof
        if "//" in name:
            parent, _sep, child = name.partition("//")
            top = self.find(parent)
            if top is not None:
                for part in child.split("//"):
                    top = top.find_child(part) if top else None
                return top
        return None

    def render(self) -> str:
        """The file text (with every edit applied)."""
        return self.text

    # ---- edits ---------------------------------------------------------------------------------
    def _splice(self, start: int, end: int, new: str) -> None:
        self._reparse(self.text[:start] + new + self.text[end:])

    def _reparse(self, text: str) -> None:
        """Take ``text`` as the file's new content: every offset and profile is re-read from it."""
        fresh = type(self).parse(text, self.path)
        self.__dict__.update(fresh.__dict__)

    def remove_rules(self, profile: Optional[str], rules: Sequence[Rule], abi: str = "3.0") -> List[str]:
        """Remove from one profile's body the statements that are one of ``rules``: rules equal to one
        (however quoted or spaced) and lines whose text is one's rendering for ``abi`` or 3.0 (an include
        line too). Returns the statements removed, in file order."""
        prof = self.find(profile)
        if prof is None:
            return []
        return self._remove_statements(prof.rules, prof.includes, rules, abi)

    def _remove_statements(self, body: Sequence[ProfileRule], includes: Sequence[Include], rules: Sequence[Rule],
                           abi: str) -> List[str]:
        """Cut the matching statements out of the text: the whole line when the statement stands alone on
        it (a trailing comment goes with it), else only the statement."""
        wanted = set(rules)
        keys = {rule_key(r.render(abi)) for r in rules} | {rule_key(r.render("3.0")) for r in rules}
        hits = [pr.statement for pr in body if pr.rule in wanted or rule_key(pr.text) in keys]
        hits += [inc.statement for inc in includes if rule_key(inc.statement.text) in keys]
        text = self.text
        removed: List[str] = []
        for stmt in sorted(hits, key=lambda s: s.start, reverse=True):
            start, end = stmt.start, stmt.end
            line_start = text.rfind("\n", 0, start) + 1
            line_end = text.find("\n", end)
            line_end = len(text) if line_end < 0 else line_end + 1
            rest = text[end:line_end].strip()
            if text[line_start:start].strip() == "" and (rest == "" or rest.startswith("#")):
                start, end = line_start, line_end
            text = text[:start] + text[end:]
            removed.append(stmt.text.strip())
        if removed:
            self._reparse(text)
        return list(reversed(removed))

    def add_rules(self, profile: Optional[str], rules: Sequence[Union[Rule, str]], abi: str = "3.0",
                  comment: Optional[str] = None, create: bool = False, attachment: Optional[str] = None) -> List[str]:
        """Append rules at the end of a profile's body (before its closing brace), indented like the
        existing rules. Rules already present with identical text are skipped. Returns the rule
        lines actually added. With ``create`` a missing hat/child (``a//b``) is created as a hat, or,
        with ``attachment`` (the program a ``Cx`` rule runs), as a child profile ``profile b PATH { }``
        in the parent's mode.

        Rule objects are rendered for ``abi``; strings are parsed first (so an invalid or
        multi-rule string is refused before anything changes).
        """
        prof = self.find(profile)
        if prof is None and create and profile and "//" in profile:
            parent, child = self._split_new_child(profile)
            check_hat_name(child)
            header = ("^%s {" % _header_name(child) if attachment is None
                      else child_profile_header(child, attachment, parent.flags))
            self._insert_block(parent, header, [])
            prof = self.find(parent.full_name + "//" + child)
            if attachment is not None and prof is not None:
                # a child profile starts as aa-logprof starts one (and as learn's minimal profile does): the base
                # abstraction and the program's own mapping, so the program's loader and locale reads are not
                # asked one by one
                self.add_include(prof.full_name, CHILD_STUB_INCLUDE)
                rules = [quote_path(attachment) + " mr,"] + list(rules)
                prof = self.find(prof.full_name)
        if prof is None:
            raise ProfileError("profile %r not found" % (profile,))
        lines = []
        for rule in rules:
            if isinstance(rule, str):
                parsed = parse_rule(rule)
                rule = parsed
            text = rule.render(abi)
            lines.append(text)
        existing = set(" ".join(pr.text.split()) for pr in prof.rules)
        existing.update(" ".join(inc.statement.text.split()) for inc in prof.includes)
        new_lines = []
        for line in lines:
            key = " ".join(line.split())
            if key in existing:
                continue
            existing.add(key)
            new_lines.append(line)
        if not new_lines:
            return []
        if comment:
            new_lines = ["# " + " ".join(comment.splitlines())] + new_lines
        self._insert_block(prof, None, new_lines)
        return [line for line in new_lines if not line.startswith("# ")]

    def _split_new_child(self, profile: str) -> Tuple[Profile, str]:
        """Split ``parent//child`` at the first ``//`` after an existing profile name (children
        from logs may start with '/', e.g. ``p//null-/bin/true`` or ``p///x``)."""
        pos = profile.find("//")
        while pos >= 0:
            parent = self.find(profile[:pos])
            if parent is not None:
                return parent, profile[pos + 2:]
            pos = profile.find("//", pos + 1)
        raise ProfileError("no parent profile found for %r" % (profile,))

    def add_include(self, profile: Optional[str], target: str, if_exists: bool = False) -> bool:
        """Add ``include <target>`` to a profile unless an include of the same target exists."""
        prof = self.find(profile)
        if prof is None:
            raise ProfileError("profile %r not found" % (profile,))
        if any(inc.target == target for inc in prof.includes):
            return False
        if not re.match(r"^[A-Za-z0-9_./+-]+\Z", target) or ".." in target.split("/"):
            raise ProfileError("refusing include target %r (only plain relative names)" % (target,))
        line = "include %s<%s>" % ("if exists " if if_exists else "", target)
        self._insert_block(prof, None, [line])
        return True

    def _insert_block(self, prof: Profile, header: Optional[str], lines: List[str]) -> None:
        """Insert rule lines (or a new hat block when ``header`` is given) before prof's '}'."""
        assert prof.close is not None
        indent = _body_indent(self.text, prof)
        close_start = prof.close.start
        line_start = self.text.rfind("\n", 0, close_start) + 1
        before_close = self.text[line_start:close_start]
        block = [indent + header, indent + "}"] if header is not None else [indent + line for line in lines]
        chunk = "\n".join(block) + "\n"
        if before_close.strip() == "":
            # closing brace on its own line: insert full lines before that line
            self._splice(line_start, line_start, chunk)
        else:
            # "... rule, }" on one line: break the line before the brace
            self._splice(close_start, close_start, "\n" + chunk + " " * (prof.depth * 2))

    def set_flags(self, profile: Optional[str], flags: Sequence[str], recursive: bool = False) -> bool:
        """Replace a profile's header flags (empty list removes ``flags=(...)``). Returns changed."""
        targets = self._targets(profile, recursive)
        changed = False
        # Edit from the end so earlier offsets stay valid; headers are re-found by full name.
        names = [p.full_name for p in targets]
        for name in reversed(names):
            prof = self.find(name)
            if prof is None:
                continue
            if list(prof.flags) == list(flags):
                continue
            new_header = _with_flags(prof.header.text, flags)
            self._splice(prof.header.start, prof.header.end, new_header)
            changed = True
        return changed

    def _targets(self, profile: Optional[str], recursive: bool) -> List[Profile]:
        if profile is None:
            if recursive:
                return self.all_profiles()
            return list(self.profiles)
        prof = self.find(profile)
        if prof is None:
            raise ProfileError("profile %r not found" % (profile,))
        return list(prof.walk()) if recursive else [prof]


class LocalInclude(ProfileFile):
    """A ``local/<file>`` include: rules outside any profile block, which the profile pulls in with
    ``include if exists <local/<file>>`` (package upgrades never touch it). Parsed with the profile
    grammar, so a ``#`` inside a path (``/srv/#cache/** r,``) is part of the rule, not a comment."""

    def append_rules(self, rules: Sequence[Rule], abi: str = "3.0", comment: Optional[str] = None) -> List[str]:
        """Append, rendered for ``abi``, the rules the file does not have yet (an equal rule, or a line
        of the same text), under a ``# comment`` line when given. Returns the lines added."""
        have = {pr.rule for pr in self.toplevel_rules if pr.rule is not None}
        existing = {rule_key(x.statement.text) for x in list(self.toplevel_rules) + list(self.includes)}
        added: List[str] = []
        for rule in rules:
            line = rule.render(abi)
            if rule in have or rule_key(line) in existing:
                continue
            have.add(rule)
            existing.add(rule_key(line))
            added.append(line)
        if not added:
            return []
        text = self.text
        if text and not text.endswith("\n"):
            text += "\n"
        head = "# %s\n" % " ".join(comment.splitlines()) if comment else ""
        self._reparse(text + head + "".join(line + "\n" for line in added))
        return added

    def remove_rules(self, profile: Optional[str], rules: Sequence[Rule], abi: str = "3.0") -> List[str]:
        """Remove the statements that are one of ``rules`` (as :meth:`ProfileFile.remove_rules`);
        ``profile`` must be None: an include file's rules belong to whichever profile includes it."""
        if profile is not None:
            raise ProfileError("a local include has no profile %r" % (profile,))
        return self._remove_statements(self.toplevel_rules, self.includes, rules, abi)


def rule_key(text: str) -> str:
    """Whitespace- and trailing-comma-insensitive form of a rule line, for comparisons."""
    return " ".join(text.strip().rstrip(",").split())


def check_hat_name(name: str) -> str:
    """Refuse hat/child names apparmor_parser rejects or reads as something else: empty, NUL,
    a leading ':' (namespace) or '&' (stacking), or '//' (a nested child). Others are quoted."""
    if not isinstance(name, str) or not name:
        raise ProfileError("invalid hat name %r: empty" % (name,))
    if "\x00" in name:
        raise ProfileError("invalid hat name %r: NUL byte" % (name,))
    if name[0] in ":&":
        raise ProfileError("invalid hat name %r: a leading %r means a namespace or a stack" % (name, name[0]))
    if "//" in name:
        raise ProfileError("invalid hat name %r: '//' separates nested profiles" % (name,))
    return name


# The include every new Cx child profile starts with (roles/learn/templates/minimal_profile.j2 starts top-level
# profiles the same way).
CHILD_STUB_INCLUDE = "abstractions/base"


def child_profile_header(name: str, attachment: str, parent_flags: Sequence[str]) -> str:
    """``profile NAME PATH flags=(MODE) {`` of the child profile a ``Cx`` exec rule runs ``attachment`` in.

    The child takes the parent's mode flags (a child of a complain-mode profile that enforced would break the
    program being learned; enforce switches both, set_profile_mode is recursive). ``attachment`` is written as
    the literal program path; a child named after its program needs no separate attachment.
    """
    if not isinstance(attachment, str) or not attachment.startswith("/") or "\n" in attachment:
        raise ProfileError("child profile attachment %r must be an absolute program path" % (attachment,))
    head = "profile %s" % _header_name(name)
    if name != attachment or _header_name(name) != name:
        try:
            head += " " + quote_path(attachment)
        except EscapeError as exc:
            raise ProfileError("child profile attachment %r: %s" % (attachment, exc)) from None
    flags = [f for f in parent_flags if f in MODE_FLAGS]
    return head + (" flags=(%s)" % ",".join(flags) if flags else "") + " {"


def _header_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:+-]+", name):  # fullmatch: "$" would accept a trailing newline
        return name
    return quote_path(name) if quote_path(name).startswith('"') else '"%s"' % name


def _body_indent(text: str, prof: Profile) -> str:
    """Indentation of the profile's existing rules, else header indent + two spaces."""
    for st in prof.statements:
        if st.kind in ("rule", "include", "comment", "variable", "header"):
            line_start = text.rfind("\n", 0, st.start) + 1
            prefix = text[line_start:st.start]
            if prefix.strip() == "":
                return prefix
    line_start = text.rfind("\n", 0, prof.header.start) + 1
    prefix = text[line_start:prof.header.start]
    base = prefix if prefix.strip() == "" else ""
    return base + "  "


def _with_flags(header: str, flags: Sequence[str]) -> str:
    """Header text with its flags=(...) replaced, added (before '{') or removed."""
    for flag in flags:
        if not re.match(r"^[A-Za-z0-9_=.-]+\Z", flag):
            raise ProfileError("invalid profile flag %r" % (flag,))
    m = _FLAGS_RE.search(header)
    new = "flags=(%s)" % ",".join(flags) if flags else ""
    if m:
        if new:
            return header[:m.start()] + new + header[m.end():]
        before = header[:m.start()].rstrip()
        after = header[m.end():].lstrip()
        return before + " " + after
    if not new:
        return header
    brace = header.rstrip().rfind("{")
    head = header[:brace].rstrip()
    return head + " " + new + " " + header[brace:]


def _parse_include(st: Statement) -> Include:
    m = _INCLUDE_RE.match(st.text.strip())
    if not m:
        raise ProfileError("line %d: bad include %r" % (st.line, st.text))
    target = m.group(2)
    if target.startswith("<"):
        return Include(target[1:-1].strip(), True, bool(m.group(1)), st)
    if target.startswith('"'):
        try:
            pat = unquote(target)
        except EscapeError as exc:
            raise ProfileError("line %d: %s" % (st.line, exc)) from None
        lit = pattern_literal(pat)
        return Include(lit if lit is not None else pat, False, bool(m.group(1)), st)
    return Include(target, False, bool(m.group(1)), st)


def _apply_variable(variables: Dict[str, List[str]], st: Statement) -> None:
    from ansible_collections.armada.apparmor.plugins.module_utils.aaglob import split_values

    m = _VAR_RE.match(st.text.strip())
    if not m:
        raise ProfileError("line %d: bad variable assignment %r" % (st.line, st.text))
    try:
        values = split_values(m.group(3).strip().rstrip(","))
    except EscapeError as exc:
        raise ProfileError("line %d: %s" % (st.line, exc)) from None
    if m.group(2) == "+=":
        variables.setdefault(m.group(1), []).extend(values)
    else:
        variables[m.group(1)] = values


def _split_statements(text: str) -> Iterable[Statement]:
    """Cut the text into statements with offsets.

    Rules end at an unquoted ``,`` outside ``()``/``{}``/``[]``; a ``{`` followed by blank/EOL/``#``
    (and not preceded by ``@``) opens a profile block; a ``}`` when no statement is pending closes
    one; include lines, variable assignments and comments end at the end of their line.
    """
    n = len(text)
    i = 0
    line = 1
    start = -1  # start offset of the pending statement
    start_line = 0
    in_quote = False
    depth = 0  # () {} [] nesting inside a statement (globs, conditionals)

    def pending() -> str:
        return text[start:i] if start >= 0 else ""

    while i < n:
        c = text[i]
        if start < 0:
            if c in " \t\r":
                i += 1
                continue
            if c == "\n":
                line += 1
                i += 1
                continue
            if c == "}":
                yield Statement("close", "}", i, i + 1, line)
                i += 1
                continue
            if c == "#" and not _INCLUDE_START.match(text, i):
                end = text.find("\n", i)
                end = n if end < 0 else end
                yield Statement("comment", text[i:end], i, end, line)
                i = end
                continue
            start = i
            start_line = line
            in_quote = False
            depth = 0
        # inside a statement
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "\n":
                line += 1
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
            i += 1
            continue
        if in_quote:
            if c == "\n":
                line += 1
            i += 1
            continue
        stmt = pending()
        head = stmt.lstrip()
        line_directive = bool(_INCLUDE_START.match(head) or _VAR_START.match(head))
        if c == "\n":
            if line_directive:
                yield _mk(text, start, i, start_line, "include" if "include" in head[:9] else "variable")
                start = -1
            line += 1
            i += 1
            continue
        if c == "#" and not line_directive and text[i - 1] in " \t\n":
            # comment inside a multi-line statement (a '#' after a blank; "/a/#b" is a path)
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == "(" and i > start and text[i - 1] not in " \t\n=(":
            pass  # literal '(' inside a name such as /dev/shm/test(me (apparmor_parser reads it so)
        elif c == ")" and depth == 0:
            pass
        elif c in "([" or (c == "{" and not _opens_block(text, i)):
            depth += 1
        elif c in ")]" or (c == "}" and depth > 0):
            depth = max(0, depth - 1)
        elif c == "{" and depth == 0:
            yield Statement("header", text[start:i + 1], start, i + 1, start_line)
            start = -1
            i += 1
            continue
        elif c == "," and depth == 0 and not line_directive:
            body = text[start:i + 1]
            kind = "rule"
            stripped = body.strip()
            if stripped.startswith("abi ") or stripped.startswith("abi<"):
                kind = "abi"
            elif stripped.startswith("alias "):
                kind = "alias"
            yield Statement(kind, body, start, i + 1, start_line)
            start = -1
            i += 1
            continue
        i += 1
    if start >= 0:
        stmt = text[start:].strip()
        head = stmt
        if _INCLUDE_START.match(head):
            yield _mk(text, start, n, start_line, "include")
        elif _VAR_START.match(head):
            yield _mk(text, start, n, start_line, "variable")
        elif in_quote:
            raise ProfileError("line %d: unterminated quote" % start_line)
        else:
            raise ProfileError("line %d: statement not terminated by ',': %r" % (start_line, stmt[:80]))


def _mk(text: str, start: int, end: int, line: int, kind: str) -> Statement:
    # trim trailing blanks/CR so the statement covers exactly its text
    while end > start and text[end - 1] in " \t\r":
        end -= 1
    return Statement(kind, text[start:end], start, end, line)


def _opens_block(text: str, i: int) -> bool:
    """A '{' opens a profile block when preceded by blank or ')' and followed by blank/EOL/'#'/'}'."""
    prev = text[i - 1] if i > 0 else " "
    nxt = text[i + 1] if i + 1 < len(text) else "\n"
    return nxt in " \t\r\n#" or (nxt == "}" and prev in " \t)\n")


# ---- the functions other engineers call ---------------------------------------------------------
def get_profile_flags(text: str, profile: Optional[str] = None) -> List[str]:
    """Header flags of ``profile`` (full name, name or attachment; None: the first profile)."""
    pf = ProfileFile.parse(text)
    prof = pf.find(profile)
    if prof is None:
        raise ProfileError("profile %r not found" % (profile,))
    return list(prof.flags)


def get_profile_mode(text: str, profile: Optional[str] = None) -> str:
    """"complain", "kill", "unconfined", "prompt" from the flags, else "enforce"."""
    for flag in get_profile_flags(text, profile):
        if flag in KNOWN_MODES:
            return flag
    return "enforce"


def set_profile_mode(text: str, profile: Optional[str], mode: str) -> str:
    """Text with the profile's mode set: mode flags (complain, kill, unconfined, prompt, enforce,
    default_allow) are replaced by ``mode`` (none for "enforce"), other flags kept in order.

    ``profile`` None changes every profile, child profile and hat in the file (as aa-complain
    does for a file); a named profile changes it and the children/hats nested in it. Unchanged text
    is returned as is (callers compare to detect "changed").
    """
    if mode not in KNOWN_MODES:
        raise ProfileError("unknown profile mode %r (expected one of %s)" % (mode, ", ".join(KNOWN_MODES)))
    pf = ProfileFile.parse(text)
    targets = pf._targets(profile, recursive=True)
    for name in reversed([p.full_name for p in targets]):
        prof = pf.find(name)
        if prof is None:
            continue
        flags = [f for f in prof.flags if f not in MODE_FLAGS]
        if mode != "enforce":
            flags.append(mode)
        if flags != prof.flags:
            pf._splice(prof.header.start, prof.header.end, _with_flags(prof.header.text, flags))
    return pf.render()


def set_profile_flags(text: str, profile: Optional[str], flags: Sequence[str]) -> str:
    """Text with the named profile's flags replaced by ``flags`` (empty removes flags=())."""
    pf = ProfileFile.parse(text)
    pf.set_flags(profile, list(flags))
    return pf.render()


def list_profiles(text: str) -> List[Tuple[str, List[str]]]:
    """(full name, flags) of every profile, child and hat in the text."""
    return [(p.full_name, list(p.flags)) for p in ProfileFile.parse(text).all_profiles()]
