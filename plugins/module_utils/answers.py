"""Answers: reviewed decisions about AppArmor events, and the engine that turns events into rules.

aa-logprof asks a question per event and forgets the reply. Here the replies are data kept in
inventory (docs/answers.md), so the same decision applies on every host and every run, and a review
is a diff. This module:

- validates an answers list (:func:`validate_answers`), reporting every problem with the offending
  answer, so a typo never silently turns into "pending forever" or, worse, "allow";
- matches events against answers with documented precedence (:func:`decide`);
- turns events + answers into rules per profile (:func:`to_rules`), with k-of-n host consensus.

The filters in plugins/filter/ are thin adapters over these functions. Standard library only: the
same code runs on managed hosts (Python 3.8+).
"""
import re
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob, breadth, exec_qualifiers, provenance
from ansible_collections.armada.apparmor.plugins.module_utils import events as events_model
from ansible_collections.armada.apparmor.plugins.module_utils import rules as rules_registry
from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import (
    EscapeError,
    check_name,
    check_pattern,
    escape_glob,
    looks_like_pattern,
    pattern_literal,
)
from ansible_collections.armada.apparmor.plugins.module_utils.fleet import compact_json, event_hosts, merge_events
from ansible_collections.armada.apparmor.plugins.module_utils.rules import FILE_RULE_KINDS
from ansible_collections.armada.apparmor.plugins.module_utils.rules.exec import ALLOW_EXEC_MODES, TARGET_EXEC_MODES
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule

# Modes that run the child with no confinement at all: an answer must confirm them (docs/answers.md).
BARE_UNCONFINED_MODES = ("ux", "Ux")

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

ANSWER_VALUES = ("allow", "deny", "ignore", "pending")
DEFAULT_VALUES = ("pending", "allow")

# Keys that decide something. Everything else a user writes is a typo and is rejected.
DECISION_KEYS = ("profile", "match", "answer", "glob", "owner", "audit", "exec_mode", "exec_target",
                 "unconfined_exec", "include", "broad", "comment")
# Informational keys written by pending_answers; accepted (and ignored) so that a reviewed pending
# block pastes back into inventory unchanged.
INFO_KEYS = ("suggestions", "hosts", "counts", "count", "id", "reason", "first_seen", "last_seen", "rule", "logged",
             "comm", "forgeable", "sources", "possible_intrusion")
ANSWER_KEYS = DECISION_KEYS + INFO_KEYS

# The event kinds and the fields an answer may match on, from the kinds' declarations (rules/<kind>.py):
# the record fields every event may carry, then every kind's own. ``host`` matches every host that saw it.
EVENT_KINDS = events_model.KINDS
MATCH_FIELDS = events_model.RECORD_FIELDS + tuple(sorted(
    set(f for ek in rules_registry.EVENT_KINDS.values() for f in ek.fields) - set(events_model.RECORD_FIELDS)))
# Default consensus when the caller does not say otherwise.
DEFAULT_MIN_HOSTS = 1


class AnswersError(ValueError):
    """Invalid answers. ``problems`` lists ``{"index", "answer", "message"}``, one per problem."""

    def __init__(self, problems: List[Dict[str, Any]]) -> None:
        self.problems = problems
        lines = ["%d invalid answer(s):" % len(problems)]
        for p in problems:
            lines.append("- answer #%s %s: %s" % (p.get("index"), compact_json(p.get("answer")), p.get("message")))
        super().__init__("\n".join(lines))


def _problem(index: int, answer: Any, message: str) -> Dict[str, Any]:
    return {"index": index, "answer": answer, "message": message}


def parse_exec_mode(value: Any) -> Tuple[Optional[str], Optional[str]]:
    """Split ``"Px"`` or ``"Px -> target"`` into (mode, target). Raises ValueError when unknown.

    The arrow form is accepted because that is how the mode reads in a profile; ``exec_target`` is
    the structured alternative.
    """
    if value is None:
        return None, None
    if not isinstance(value, str):
        raise ValueError("exec_mode must be a string, got %s" % type(value).__name__)
    text = value.strip()
    target = None
    if "->" in text:
        text, target = (part.strip() for part in text.split("->", 1))
        if not target:
            raise ValueError("exec_mode %r has an empty target after '->'" % value)
    if text not in ALLOW_EXEC_MODES:
        raise ValueError("exec_mode %r is not one of %s" % (value, ", ".join(ALLOW_EXEC_MODES)))
    return text, target


_VARIABLE_START = re.compile(r"@\{[A-Za-z0-9_]+\}")


def file_path_problem(path: str, pattern: bool = False) -> Optional[str]:
    """Why ``path`` cannot be the path of a file or exec rule (None when it can).

    apparmor_parser reads a rule's first word as a path only when it starts with ``/`` (or, in a
    pattern an answer writes, with a variable ``@{NAME}``): any other name from a log (``include``,
    ``deny``, ``profile``, ``relative/x``, ``pipe:[1234]``, ``x y``) would be read as another
    statement (``include r,`` includes a file from the parser's working directory) or fail to compile
    on every host that has the profile.
    """
    if path.startswith("/") or (pattern and _VARIABLE_START.match(path)):
        return None
    return "%r is not an absolute path%s: no file rule can name it" % (
        path, " or a pattern starting with a variable @{NAME}" if pattern else "")


def _valid_glob(pattern: str) -> bool:
    """Can AppArmor's glob layer read ``pattern`` (balanced braces/brackets, no trailing backslash)?"""
    try:
        check_pattern(pattern)
    except EscapeError:
        return False
    return True


def validate_answer(index: int, answer: Any, qualifiers: Optional[exec_qualifiers.Qualifiers] = None,
                    variables: Optional[Dict[str, List[str]]] = None,
                    include_rules: Optional[breadth.IncludeRules] = None) -> List[Dict[str, Any]]:
    """Every problem of one answer (empty list when it is valid). Never raises.

    Checks: mapping, unknown keys, required keys, value types, answer value, match keys and kinds,
    exec_mode known and allowed for the matched kind, named targets only on transition modes, a
    glob only for path kinds and covering the match pattern, include only with allow.
    """
    problems: List[Dict[str, Any]] = []

    def bad(msg: str) -> None:
        problems.append(_problem(index, answer, msg))

    if not isinstance(answer, Mapping):
        bad("an answer must be a mapping, got %s" % type(answer).__name__)
        return problems
    unknown = sorted(str(k) for k in answer if k not in ANSWER_KEYS)
    if unknown:
        bad("unknown key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(ANSWER_KEYS)))
    for key in ("profile", "match", "answer"):
        if key not in answer:
            bad("missing required key %r" % key)
    profile = answer.get("profile")
    if "profile" in answer and (not isinstance(profile, str) or not profile):
        bad("profile must be a non-empty string (a profile name or an AppArmor glob over names)")
    value = answer.get("answer")
    if "answer" in answer and value not in ANSWER_VALUES:
        bad("answer %r is not one of %s" % (value, ", ".join(ANSWER_VALUES)))
    match = answer.get("match")
    kind = None
    if "match" in answer:
        if not isinstance(match, Mapping):
            bad("match must be a mapping of event fields, got %s" % type(match).__name__)
            match = {}
        for key in sorted(str(k) for k in match if k not in MATCH_FIELDS):
            bad("unknown match key %r (event fields: see docs/events.md)" % key)
        kind = match.get("kind")
        if kind is not None:
            kinds = kind if isinstance(kind, list) else [kind]
            for k in kinds:
                if k not in EVENT_KINDS:
                    bad("match kind %r is not an event kind (%s)" % (k, ", ".join(EVENT_KINDS)))
        for key, pattern in match.items():
            if key in ("mask",):
                if not isinstance(pattern, str):
                    bad("match mask must be a string of permissions (e.g. 'rw' or 'send receive')")
            elif isinstance(pattern, list):
                if not pattern or not all(isinstance(p, (str, int, bool)) for p in pattern):
                    bad("match %s: a list must hold strings/numbers (any of them matches)" % key)
            elif pattern is not None and not isinstance(pattern, (str, int, bool)):
                bad("match %s: value must be a string (globs allowed), number, boolean or list" % key)
            for pat in (pattern if isinstance(pattern, list) else [pattern]):
                if key != "mask" and isinstance(pat, str) and looks_like_pattern(pat) and not _valid_glob(pat):
                    bad("match %s %r is not a valid AppArmor pattern" % (key, pat))
    kinds = [] if kind is None else (kind if isinstance(kind, list) else [kind])
    for key in ("owner", "audit", "broad", "unconfined_exec"):
        if key in answer and not isinstance(answer[key], bool):
            bad("%s must be true or false" % key)
    if "owner" in answer and kinds and not set(kinds) <= set(FILE_RULE_KINDS):
        bad("owner applies to file and exec rules only, not to kind %s" % ", ".join(map(str, kinds)))
    # exec_mode
    mode = target = None
    if "exec_mode" in answer:
        try:
            mode, target = parse_exec_mode(answer["exec_mode"])
        except ValueError as exc:
            bad(str(exc))
        if kinds and "exec" not in kinds:
            bad("exec_mode is only allowed for exec events (match kind exec), not for kind %s"
                % ", ".join(map(str, kinds)))
        if value in ("deny", "ignore"):
            bad("exec_mode makes no sense with answer %s (a deny rule forbids the exec outright)" % value)
    if "exec_target" in answer:
        if not isinstance(answer["exec_target"], str) or not answer["exec_target"].strip():
            bad("exec_target must be a non-empty profile name")
        elif target is not None and target != answer["exec_target"]:
            bad("exec_target %r contradicts the target in exec_mode (%r)" % (answer["exec_target"], target))
        target = answer["exec_target"] if isinstance(answer["exec_target"], str) else target
        if "exec_mode" not in answer:
            bad("exec_target needs an exec_mode (one of %s)" % ", ".join(TARGET_EXEC_MODES))
    if mode in BARE_UNCONFINED_MODES and answer.get("unconfined_exec") is not True:
        bad("exec mode %s runs the program with no AppArmor confinement at all (the child is unconfined): set "
            "unconfined_exec: true in the answer to confirm it, or choose ix, Px or Cx" % mode)
    if answer.get("unconfined_exec") is True and (mode is None or not ("u" in mode or "U" in mode)):
        bad("unconfined_exec: true only confirms an unconfined exec mode (ux, Ux, pux, PUx, cux, CUx), not %s"
            % (mode or "an answer without exec_mode"))
    if mode is not None and target is not None and mode not in TARGET_EXEC_MODES:
        bad("exec mode %s cannot have a named target (only %s can)" % (mode, ", ".join(TARGET_EXEC_MODES)))
    if value == "allow" and "exec" in kinds and len(kinds) == 1 and "exec_mode" not in answer \
            and "include" not in answer:
        bad("allowing an exec needs exec_mode (one of %s): how the program runs is the decision"
            % ", ".join(ALLOW_EXEC_MODES))
    # glob
    if "glob" in answer:
        glob = answer["glob"]
        if not isinstance(glob, str) or not glob:
            bad("glob must be a non-empty path pattern")
        else:
            if kinds and not set(kinds) <= set(FILE_RULE_KINDS):
                bad("glob (the path to write) applies to file and exec events only")
            if value in ("ignore", "pending"):
                bad("glob makes no sense with answer %s (nothing is written)" % value)
            problem = file_path_problem(glob, pattern=True)
            if problem:
                bad("glob %s" % problem)
            mpath = match.get("path") if isinstance(match, Mapping) else None
            if not _valid_glob(glob):
                bad("glob %r is not a valid AppArmor pattern" % glob)
            elif isinstance(mpath, str) and mpath and _valid_glob(mpath):
                try:
                    if not aaglob.glob_covers(glob, mpath, breadth.with_standard_variables(variables)):
                        bad("glob %r does not cover the match path %r: it would not allow the events it answers"
                            % (glob, mpath))
                except Exception as exc:  # an unreadable pattern is a user error, not a crash
                    bad("glob %r or match path %r is not a valid AppArmor pattern: %s" % (glob, mpath, exc))
    # include
    if "include" in answer:
        inc = answer["include"]
        if not isinstance(inc, str) or not inc.strip():
            bad("include must be an abstraction path such as abstractions/ssl_certs")
        else:
            inc = inc.strip()
            if inc.startswith("<") or inc.startswith("/") or ".." in inc.split("/") or "\n" in inc or "," in inc:
                bad("include %r must be a relative path under the profile directory, like abstractions/ssl_certs"
                    % inc)
        if value != "allow":
            bad("include is only meaningful with answer allow")
        if "glob" in answer or "exec_mode" in answer:
            bad("include replaces the rule: it cannot be combined with glob or exec_mode")
    if not problems:
        for msg in _qualifier_problems(answer, mode, target, qualifiers or exec_qualifiers.Qualifiers()):
            bad(msg)
        for msg in breadth.answer_problems(answer, variables, include_rules):
            bad(msg)
    return problems


def _qualifier_problems(answer: Mapping, mode: Optional[str], target: Optional[str],
                        qualifiers: exec_qualifiers.Qualifiers) -> List[str]:
    """An exec mode the exec qualifiers forbid for a program the answer names literally or its glob covers.

    Programs an answer matches by a pattern (``/usr/bin/*``) are checked per event in to_rules.
    """
    if mode is None or answer.get("answer") != "allow":
        return []
    paths = answer["match"].get("path")
    programs = [p for p in (paths if isinstance(paths, list) else [paths])
                if isinstance(p, str) and not looks_like_pattern(p)]
    glob = answer.get("glob")
    if isinstance(glob, str):
        programs += qualifiers.entries_covered_by(glob)
    out = []
    for program in sorted(set(programs)):
        why = qualifiers.problem(mode, target, program)
        if why:
            out.append(why)
    return out


class Answer:
    """One validated answer, with what precedence needs precomputed."""

    __slots__ = ("index", "raw", "profile", "match", "answer", "glob", "owner", "audit", "exec_mode",
                 "exec_target", "include", "specificity")

    def __init__(self, index: int, raw: Dict[str, Any]) -> None:
        self.index = index
        self.raw = raw
        self.profile: str = raw["profile"]
        self.match: Dict[str, Any] = dict(raw["match"])
        self.answer: str = raw["answer"]
        self.glob: Optional[str] = raw.get("glob")
        self.owner: Optional[bool] = raw.get("owner")
        self.audit = bool(raw.get("audit", False))
        mode, target = parse_exec_mode(raw.get("exec_mode"))
        self.exec_mode: Optional[str] = mode
        self.exec_target: Optional[str] = raw.get("exec_target") or target
        inc = raw.get("include")
        self.include: Optional[str] = inc.strip() if isinstance(inc, str) else None
        self.specificity = _specificity(self.profile, self.match)

    def ref(self) -> Dict[str, Any]:
        """How results point back to this answer: its position and its deciding keys."""
        return {"index": self.index, "profile": self.profile, "match": self.match, "answer": self.answer}


def _literal_len(value: Any) -> int:
    """Characters before the first glob character: longer literal prefix = more specific pattern."""
    if not isinstance(value, str):
        return 0
    for i, c in enumerate(value):
        if c in "*?[{" or value.startswith("@{", i):
            return i
    return len(value) + 1  # a fully literal value beats any pattern with the same prefix


def _specificity(profile: str, match: Dict[str, Any]) -> Tuple[int, int, int]:
    """Precedence key (higher wins): exact profile, number of match keys, literal length of patterns."""
    exact = 0 if (looks_like_pattern(profile) or profile in ("*", "**")) else 1
    keys = len([k for k in match if k != "kind"]) + (1 if "kind" in match else 0)
    literal = sum(_literal_len(v) for k, v in match.items() if k != "kind")
    return exact, keys, literal


def validate_answers(answers: Any, qualifiers: Optional[exec_qualifiers.Qualifiers] = None,
                     variables: Optional[Dict[str, List[str]]] = None,
                     include_rules: Optional[breadth.IncludeRules] = None) -> List[Answer]:
    """Validate the combined answers list; return Answer objects or raise AnswersError with all problems.

    ``None`` and ``[]`` mean "no answers". A list of lists (one per inventory variable) is flattened,
    since the roles collect every ``apparmor_answers*`` variable. ``qualifiers`` (exec modes per program),
    ``variables`` and ``include_rules`` (what an abstraction grants) feed the exec-qualifier and breadth
    checks.
    """
    if answers is None:
        return []
    if isinstance(answers, Mapping):
        raise AnswersError([_problem(0, answers, "answers must be a list of answers, got a mapping")])
    if not isinstance(answers, (list, tuple)):
        raise AnswersError([_problem(0, answers, "answers must be a list, got %s" % type(answers).__name__)])
    flat: List[Any] = []
    for item in answers:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    problems: List[Dict[str, Any]] = []
    for i, raw in enumerate(flat):
        problems.extend(validate_answer(i, raw, qualifiers, variables, include_rules))
    if problems:
        raise AnswersError(problems)
    return [Answer(i, raw) for i, raw in enumerate(flat)]


# ---------------------------------------------------------------------------------------------
# Matching and precedence
# ---------------------------------------------------------------------------------------------

def _mask_words(kind: str, text: str) -> List[str]:
    """Permissions as a set-able list: file masks are letters, others space/comma separated words."""
    text = text or ""
    if kind in FILE_RULE_KINDS:
        return [c for c in text if not c.isspace()]
    return [w for w in text.replace(",", " ").replace("(", " ").replace(")", " ").split() if w]


def _match_value(pattern: Any, value: Any, variables: Optional[Dict[str, List[str]]]) -> bool:
    """One field: strings are AppArmor globs (``*`` stops at ``/``), others compare equal; lists = any."""
    if isinstance(pattern, list):
        return any(_match_value(p, value, variables) for p in pattern)
    if value is None:
        return False
    if isinstance(value, list):  # event list fields (operations, comms, modes): any element matches
        return any(_match_value(pattern, v, variables) for v in value)
    if isinstance(pattern, bool) or isinstance(value, bool):
        return pattern is value or pattern == value
    if isinstance(pattern, int) and not isinstance(value, str):
        return pattern == value
    if isinstance(pattern, int):
        return str(pattern) == value
    if not isinstance(pattern, str):
        return False
    text = value if isinstance(value, str) else str(value)
    if pattern == text:
        return True
    if "\x00" in text:  # no glob matches a NUL; a name holding one is answered by its exact literal form
        return pattern == escape_glob(text)
    if not looks_like_pattern(pattern):
        return False
    return aaglob.matches(pattern, text, variables=variables)


def profile_matches(pattern: str, label: str, variables: Optional[Dict[str, List[str]]] = None) -> bool:
    """Answer ``profile`` against the label rules are written to. ``*`` and ``**`` alone mean every profile.

    AppArmor's ``*`` does not cross ``/``, which would make ``profile: "*"`` match only names without a
    slash: surprising for "every profile", hence the special case. Any other pattern is a normal glob.
    """
    if pattern in ("*", "**"):
        return True
    if pattern == label or pattern == escape_glob(label):  # the escaped label pending_answers writes
        return True
    return looks_like_pattern(pattern) and aaglob.matches(pattern, label, variables=variables)


def answer_matches(answer: Answer, event: Dict[str, Any], label: str,
                   variables: Optional[Dict[str, List[str]]] = None) -> bool:
    """Does ``answer`` apply to ``event`` written to profile ``label``? Every match key must hold."""
    if not profile_matches(answer.profile, label, variables):
        return False
    kind = event.get("kind")
    for key, pattern in answer.match.items():
        if pattern is None:
            continue
        if key == "mask":
            want = set(_mask_words(kind, pattern))
            mask = event.get("mask") or {}
            got = set(_mask_words(kind, mask.get("requested") or mask.get("denied") or ""))
            if not got or not got <= want:
                return False
        elif key == "host":
            if not all(_match_value(pattern, h, variables) for h in event_hosts(event)):
                return False
        elif key == "capability":
            if not (_match_value(pattern, event.get("capname"), variables)
                    or _match_value(pattern, event.get("capability"), variables)):
                return False
        elif not _match_value(pattern, event.get(key), variables):
            return False
    return True


class Decision:
    """The outcome for one event: which answer applies and what else matched (for conflict reports)."""

    __slots__ = ("answer", "conflict_with", "matched")

    def __init__(self, answer: Optional[Answer], conflict_with: Optional[Answer], matched: List[Answer]) -> None:
        self.answer = answer
        self.conflict_with = conflict_with
        self.matched = matched


def decide(answers: List[Answer], event: Dict[str, Any], label: str,
           variables: Optional[Dict[str, List[str]]] = None) -> Decision:
    """Pick the answer for an event (docs/answers.md, Precedence).

    1. A matching ``deny`` always wins: forbidding is never overridden by an allow (a conflict is
       reported when an allow also matched).
    2. Otherwise the most specific ``allow``/``ignore`` wins: exact profile name over a profile glob,
       then more match keys, then the longer literal part of the patterns; ties go to the earlier
       answer in the combined list.
    3. ``pending`` answers are placeholders (pasted pending blocks): they only apply when nothing else
       matches, and keep the event pending even when the default is ``allow``.
    """
    matched = [a for a in answers if answer_matches(a, event, label, variables)]
    if not matched:
        return Decision(None, None, [])

    def best(cands: List[Answer]) -> Optional[Answer]:
        if not cands:
            return None
        return sorted(cands, key=lambda a: (-a.specificity[0], -a.specificity[1], -a.specificity[2], a.index))[0]

    denies = [a for a in matched if a.answer == "deny"]
    allows = [a for a in matched if a.answer == "allow"]
    if denies:
        return Decision(best(denies), best(allows), matched)
    chosen = best([a for a in matched if a.answer in ("allow", "ignore")])
    if chosen is None:
        chosen = best([a for a in matched if a.answer == "pending"])
    return Decision(chosen, None, matched)


# ---------------------------------------------------------------------------------------------
# to_rules
# ---------------------------------------------------------------------------------------------

_ENTRY_LISTS = ("rules", "deny", "ignored", "pending", "unsupported")


def split_label(event: Dict[str, Any], fold_children: bool = True) -> Tuple[str, Optional[str]]:
    """(profile, child or None) the rules of ``event`` are written to.

    ``//null-...`` children (the unnamed profiles an exec with ``px``/``cx`` to a missing profile
    creates) fold into their parent when ``fold_children`` is true, as aa-logprof does once the exec
    is answered; named children (hats, ``//child``) always stay children. Stacked labels
    (``a//&b``) belong to ``a``.
    """
    label = event.get("profile")
    if not isinstance(label, str) or not label:
        return "", None
    if userns_transition(event):
        return event["execpath"], None
    parent = event.get("parent") or label.split("//", 1)[0]
    child = event.get("child")
    if child is None and "//" in label:
        child = label.split("//", 1)[1]
    if not child or child.startswith("&"):
        return parent, None
    if fold_children and child.startswith("null-"):
        return parent, None
    return parent, child


def _no_rule_reason(event: Dict[str, Any]) -> str:
    """Why an event yields no rule: the cases aa-logprof asks nothing for, else the generic reason."""
    kind = event.get("kind")
    mask = event.get("mask") if isinstance(event.get("mask"), dict) else {}
    if kind == "change_profile" and event.get("info") == "label not found":
        return "the change_profile/change_onexec target does not exist (label not found): aa-logprof writes no rule"
    if kind == "ptrace" and not (mask.get("denied") and event.get("peer")):
        return "ptrace record without a denied mask or peer: aa-logprof ignores it"
    return "no AppArmor rule expresses this event (kind %s)" % kind


def userns_transition(event: Dict[str, Any]) -> bool:
    """An unconfined process creating a user namespace, logged with the executable's path.

    The kernel audits the transition to the profile that allows it; the rule (``audit userns
    create,``, as AppArmor's tools write it) belongs to the profile named by ``execpath``, not to
    ``unconfined`` (docs/conformance.md, userns).
    """
    execpath = event.get("execpath")
    return (event.get("kind") == "userns" and event.get("profile") == "unconfined"
            and isinstance(execpath, str) and execpath.startswith("/"))


def _label(parent: str, child: Optional[str]) -> str:
    return parent if child is None else parent + "//" + child


def _new_entry(child: bool) -> Dict[str, Any]:
    entry: Dict[str, Any] = dict((k, []) for k in _ENTRY_LISTS)
    if child:
        entry["hat"] = True
    else:
        entry["children"] = {}
    return entry


def _pending(event: Dict[str, Any], reason: str, label: str) -> Dict[str, Any]:
    item = dict(event)
    item["reason"] = reason
    item["label"] = label
    item["hosts"] = event_hosts(event)
    return item


def _include_rule(name: str) -> Any:
    """``include <name>`` as a Rule of the include kind (validated name: no quoting issues possible)."""
    return rules_registry.parse_rule("include <%s>" % name)


def _no_w_and_a(perms: Iterable[str]) -> frozenset:
    """``w`` already grants append; apparmor_parser rejects ``w`` and ``a`` together."""
    out = set(perms)
    if "w" in out:
        out.discard("a")
    return frozenset(out)


def _rule_for(event: Dict[str, Any], answer: Optional[Answer], deny: bool, exec_mode: Optional[str],
              exec_target: Optional[str], variables: Optional[Dict[str, List[str]]] = None) -> Any:
    """The Rule an allow/deny decision writes for one event (docs/answers.md, "What is written").

    Returns a Rule, or None when the event kind yields no rule. Raises ValueError when the answer's
    glob does not cover the event (reported as a per-event error).
    """
    kind = event.get("kind")
    if answer is not None and answer.include and not deny:
        return _include_rule(answer.include)
    audit = bool(answer.audit) if answer is not None else False
    if kind in FILE_RULE_KINDS:
        path = event.get("path")
        if not isinstance(path, str) or not path:
            return None
        pattern = None
        if answer is not None and answer.glob:
            if not aaglob.matches(answer.glob, path, variables=variables):
                raise ValueError("glob %r does not cover the event path %r" % (answer.glob, path))
            pattern = answer.glob
        elif deny and answer is not None and isinstance(answer.match.get("path"), str):
            pattern = answer.match["path"]
        if pattern is None:
            try:
                check_name(path)
            except EscapeError:
                return None
            pattern = escape_glob(path)
        if kind == "exec":
            owner = bool(answer.owner) if answer is not None and answer.owner is not None else False
            if deny:
                return FileRule(pattern, frozenset(), "x", None, owner=owner, audit=audit, deny=True)
            perms = frozenset("mr") if exec_mode and "i" in exec_mode else frozenset()
            return FileRule(pattern, perms, exec_mode, exec_target, owner=owner, audit=audit)
        base = FileRule.from_event(event)
        if base is None:
            return None
        owner = answer.owner if answer is not None and answer.owner is not None else base.owner
        return FileRule(pattern, _no_w_and_a(base.perms or ()), None, None, owner=bool(owner), audit=audit,
                        deny=deny)
    rule = rules_registry.rule_from_event(event)
    if rule is None:
        return None
    rule.deny = deny
    if audit or (userns_transition(event) and "AUDIT" in (event.get("modes") or ())):
        rule.audit = True
    return rule


def _merge_key(rule: Any) -> Tuple[Any, ...]:
    """Rules with the same key fold into one: file rules per (side, qualifiers, path), others by equality."""
    if isinstance(rule, FileRule) and rule.path is not None:
        return ("file", rule.deny, rule.audit, rule.owner, rule.path)
    return ("rule", rule)


def _merge_file(a: Any, b: Any) -> Optional[Any]:
    """Union of two file rules with the same key, or None when their exec parts differ (kept apart)."""
    if a.exec_mode and b.exec_mode and (a.exec_mode != b.exec_mode or a.target != b.target):
        return None
    mode = a.exec_mode or b.exec_mode
    target = a.target if a.exec_mode else b.target
    perms = _no_w_and_a(set(a.perms or ()) | set(b.perms or ()))
    return FileRule(a.path, perms, mode, target, owner=a.owner, audit=a.audit, deny=a.deny)


def _as_events(events: Any) -> List[Dict[str, Any]]:
    """Accept a flat event list (one host's or merge_events output), a reader result, or per-host data
    (folded by fleet.merge_events)."""
    if events is None:
        return []
    if isinstance(events, Mapping) and isinstance(events.get("events"), (list, tuple)):
        events = events["events"]
    if isinstance(events, (list, tuple)) and all(isinstance(e, Mapping) and "kind" in e for e in events):
        return [e if isinstance(e, dict) else dict(e) for e in events]
    return merge_events(events)


def to_rules(events: Any, answers: Any = None, default: str = "pending", abi: str = "3.0",
             fold_children: bool = True, min_hosts: int = DEFAULT_MIN_HOSTS,
             variables: Optional[Dict[str, List[str]]] = None, qualifiers: Optional[Mapping] = None,
             include_rules: Optional[breadth.IncludeRules] = None) -> Dict[str, Any]:
    """Turn events into rules per profile, applying answers (docs/answers.md).

    Returns ``{"abi", "profiles": {name: entry}, "conflicts", "errors", "stats"}`` where an entry is
    ``{"rules", "deny", "ignored", "pending", "unsupported", "hosts", "children": {name: entry}}``.
    ``rules``/``deny`` items are the structured rule (``Rule.to_dict(abi)``, its ``text`` rendered for
    ``abi``), the ``events`` (ids) and ``hosts`` behind it and the ``answers`` (indexes, or
    ``"default"``) that decided it. Raises AnswersError for invalid answers and ValueError for bad
    options, before anything is computed. ``qualifiers`` extends the exec qualifiers table
    (exec_qualifiers.py); ``include_rules`` lets the breadth check read abstractions (breadth.py).
    """
    if default not in DEFAULT_VALUES:
        raise ValueError("default must be one of %s, got %r" % (", ".join(DEFAULT_VALUES), default))
    if isinstance(min_hosts, bool) or not isinstance(min_hosts, int) or min_hosts < 1:
        raise ValueError("min_hosts must be an integer >= 1, got %r" % (min_hosts,))
    abi = _check_abi(abi)
    problems = exec_qualifiers.validate_extra(qualifiers)
    if problems:
        raise ValueError("; ".join(problems))
    table = exec_qualifiers.Qualifiers(qualifiers)
    parsed: List[Answer] = (list(answers) if answers and all(isinstance(a, Answer) for a in answers)
                            else validate_answers(answers, table, variables, include_rules))
    evs = _as_events(events)

    # Hosts that reported each profile in this run: the denominator of min_hosts.
    resolved: List[Tuple[Dict[str, Any], str, Optional[str], str]] = []
    label_hosts: Dict[str, set] = {}
    homes: Dict[Tuple[str, str], Tuple[str, Optional[str]]] = {}
    cx_children: Dict[Tuple[str, str], str] = {}  # (parent, child name) of a Cx target -> the program
    for ev in evs:
        parent, child = split_label(ev, fold_children)
        if ev.get("kind") == "change_hat":  # answered for the profile that gets the hat (hats do not nest)
            child = None
        exec_parent = _label(parent, child)  # the label the parent's exec answer is looked up in (self reads)
        chain = null_chain(ev) if fold_children else None
        if chain is not None:
            parent, child = chain[0], None
            for program in chain[1]:  # follow each exec: P//null-X//null-Y is Y run by X run by P
                exec_parent = _label(parent, child)
                key = (exec_parent, program)
                if key not in homes:
                    homes[key] = exec_home(parsed, exec_parent, program, variables)
                home, name = homes[key]
                if name is not None and child is None:  # Cx: a child of the (top-level) profile
                    child = name
                    cx_children[(parent, child)] = program
                elif name is None and home != exec_parent:  # Px: the program's own profile
                    parent, child = home, None
        resolved.append((ev, parent, child, exec_parent))
        label_hosts.setdefault(_label(parent, child), set()).update(event_hosts(ev))

    profiles: Dict[str, Dict[str, Any]] = {}
    builders: Dict[str, _Builder] = {}
    conflicts: List[Dict[str, Any]] = []
    errors: List[Dict[str, Any]] = []
    stats = {"events": len(evs), "allowed": 0, "denied": 0, "ignored": 0, "pending": 0, "unsupported": 0,
             "conflicts": 0}

    for ev, parent, child, exec_parent in resolved:
        label = _label(parent, child)
        if not parent:
            errors.append({"event": ev.get("id"), "message": "event has no profile; skipped"})
            continue
        top = profiles.setdefault(parent, _new_entry(False))
        entry = top if child is None else top["children"].setdefault(child, _new_entry(True))
        if child is not None and cx_children.get((parent, child)):  # a Cx target: a child profile, not a hat
            entry.pop("hat", None)
            entry["add_child"] = {"attachment": cx_children[(parent, child)]}
        builder = builders.setdefault(label, _Builder(entry, abi))
        hosts = event_hosts(ev)
        kind = ev.get("kind")
        if kind in ("status",):
            entry["ignored"].append(_ignored(ev, "status record (profile load/replace), not an access", None))
            stats["ignored"] += 1
            continue
        decision = decide(parsed, ev, label, variables)
        ans = decision.answer
        if decision.conflict_with is not None:
            conflicts.append({"profile": label, "event": ev.get("id"), "kind": kind, "path": ev.get("path"),
                              "deny": decision.answer.ref(), "allow": decision.conflict_with.ref(),
                              "message": "an allow and a deny answer both match; deny wins"})
            stats["conflicts"] += 1
        verdict = ans.answer if ans is not None else None
        if verdict in (None, "pending"):
            by_exec = exec_answer_for_self_read(parsed, ev, exec_parent, variables)
            if by_exec is not None:
                entry["ignored"].append(_ignored(ev, SELF_READ_REASON % (by_exec.index, ev.get("path")), by_exec))
                stats["ignored"] += 1
                continue
        if verdict == "ignore":
            entry["ignored"].append(_ignored(ev, "answer #%d says ignore" % ans.index, ans))
            stats["ignored"] += 1
            continue
        path = ev.get("path")
        if kind in FILE_RULE_KINDS and isinstance(path, str) and path and file_path_problem(path) and not (
                ans is not None and ans.include and verdict != "deny"):
            # never pending: no answer could write it (an include answer writes no path and still applies)
            entry["unsupported"].append(_pending(ev, "%s event path %s" % (kind, file_path_problem(path)), label))
            stats["unsupported"] += 1
            continue
        if verdict is None and provenance.is_forgeable(ev):
            # no person decided and a local user could have written every record of it: never a rule by default
            entry["pending"].append(_pending(
                ev, "forgeable: read only from %s, which any local user can write (docs/security.md, Forged "
                "records); only an answer can allow it" % ", ".join(ev.get("sources") or ["a forgeable source"]),
                label))
            stats["pending"] += 1
            continue
        if verdict == "pending" or (verdict is None and default == "pending"):
            entry["pending"].append(_pending(ev, "explicitly pending (answer #%d)" % ans.index if ans is not None
                                             else "no answer matches", label))
            stats["pending"] += 1
            continue
        if verdict is None and enforce_denial(ev):
            entry["pending"].append(_pending(ev, "denied by an enforcing profile: default allow never allows it "
                                             "(possible intrusion); only an answer naming it decides", label))
            stats["pending"] += 1
            continue
        deny = verdict == "deny"
        if not deny:
            seen = len(hosts)
            reporting = len(label_hosts.get(label, ()))
            if seen < min_hosts:
                entry["pending"].append(_pending(
                    ev, "consensus: seen by %d of the %d host(s) that reported this profile; min_hosts is %d"
                    % (seen, reporting, min_hosts), label))
                stats["pending"] += 1
                continue
        if kind == "change_hat":
            where = _add_hat(top, ev, parent, hosts, ans, deny)
            if where == "allowed":
                stats["allowed"] += 1
            else:
                entry[where[0]].append(_pending(ev, where[1], label) if where[0] == "pending"
                                       else _ignored(ev, where[1], ans))
                stats[where[0]] += 1
            continue
        exec_mode = exec_target = None
        if kind == "exec" and not deny and (ans is None or not ans.include):
            if ans is None or ans.exec_mode is None:
                entry["pending"].append(_pending(
                    ev, "exec needs an answer with exec_mode (%s)" % ("default allow does not choose one"
                                                                       if ans is None else "answer #%d has none"
                                                                       % ans.index), label))
                stats["pending"] += 1
                continue
            exec_mode, exec_target = ans.exec_mode, ans.exec_target
            why = table.problem(exec_mode, exec_target, str(ev.get("path")))
            if why:
                errors.append({"event": ev.get("id"), "profile": label, "answer": ans.ref(), "message": why})
                entry["pending"].append(_pending(ev, "answer error: %s" % why, label))
                stats["pending"] += 1
                continue
        try:
            rule = _rule_for(ev, ans, deny, exec_mode, exec_target, variables)
        except ValueError as exc:
            errors.append({"event": ev.get("id"), "profile": label, "answer": ans.ref() if ans else None,
                           "message": str(exc)})
            entry["pending"].append(_pending(ev, "answer error: %s" % exc, label))
            stats["pending"] += 1
            continue
        if rule is None:
            entry["ignored"].append(_ignored(ev, _no_rule_reason(ev), ans))
            stats["ignored"] += 1
            continue
        problem = builder.add(rule, ev, hosts, ans)
        if problem:
            where, reason = problem
            entry[where].append(_pending(ev, reason, label))
            stats[where] += 1
            if where == "pending":
                errors.append({"event": ev.get("id"), "profile": label, "answer": ans.ref() if ans else None,
                               "message": reason})
            continue
        stats["denied" if deny else "allowed"] += 1

    for builder in builders.values():
        builder.finish()
    _add_exec_targets(profiles, parsed)
    for name, entry in profiles.items():
        entry["hosts"] = sorted(label_hosts.get(name, ()))
        _annotate_pending(entry["pending"], table)
        for cname, centry in entry["children"].items():
            centry["hosts"] = sorted(label_hosts.get(_label(name, cname), ()))
            _annotate_pending(centry["pending"], table)
    return {"abi": abi, "profiles": profiles, "conflicts": conflicts, "errors": errors, "stats": stats}


# ---- where the events of an exec'd program go: its own profile (Px), a child (Cx), the parent (ix) ------

def transition_kind(mode: Optional[str]) -> Optional[str]:
    """"profile" for the p modes (px, Px, pix, PUx...), "child" for the c modes, None for ix/ux (the parent)."""
    if not mode:
        return None
    if mode[0] in "pP":
        return "profile"
    if mode[0] in "cC":
        return "child"
    return None


def null_chain(event: Mapping) -> Optional[Tuple[str, List[str]]]:
    """(PARENT, [X, Y...]) when ``event`` is logged under ``PARENT//null-X//null-Y...`` (programs executed with no
    exec rule yet, running in complain mode: X run by PARENT, Y run by X); None otherwise (hats, named children,
    change_hat records, and names a glob would read differently: those stay in the parent, so a logged name can
    never widen or create a profile)."""
    label = event.get("profile")
    if not isinstance(label, str) or "//null-" not in label or event.get("kind") == "change_hat":
        return None
    parent, *rest = label.split("//")
    if event.get("parent") not in (None, parent) or not parent:
        return None
    programs = []
    for part in rest:
        program = part[len("null-"):] if part.startswith("null-") else ""
        if not program.startswith("/") or escape_glob(program) != program \
                or any(c.isspace() or ord(c) < 32 for c in program):
            return None
        programs.append(program)
    return parent, programs


def exec_home(answers: List[Answer], parent: str, program: str,
              variables: Optional[Dict[str, List[str]]] = None) -> Tuple[str, Optional[str]]:
    """(profile, child) the accesses of ``program`` executed by ``parent`` are written to, as aa-logprof does.

    The parent's exec answer for ``program`` decides: a ``p`` mode (``Px``, ``Pix``, ``PUx``...) gives the program
    its own profile (named after the program, or the ``->`` target), a ``c`` mode a child profile of the parent
    (same naming); ``ix``, ``ux``, no answer or a deny keep them in the parent (the events stay answerable there).
    """
    probe = {"kind": "exec", "profile": parent, "path": program, "mask": {"requested": "x", "denied": "x"}}
    found = decide(answers, probe, parent, variables).answer
    if found is None or found.answer != "allow" or not names_program(found, program):
        return parent, None
    kind = transition_kind(found.exec_mode)
    name = found.exec_target or program
    if kind == "profile":
        return name, None
    if kind == "child":
        return parent, name
    return parent, None


def names_program(answer: Answer, program: str) -> bool:
    """Does ``answer`` name the target of its transition itself (an ``exec_target``, or ``program`` literally
    as its match path or glob)? Only then does a program get a profile or child: a pattern answer
    (``/usr/bin/* Px``) must not let a host create profiles by logging made-up program names."""
    if answer.exec_target:
        return True
    paths = answer.match.get("path")
    literals = [p for p in (paths if isinstance(paths, list) else [paths]) + [answer.glob] if isinstance(p, str)]
    return any(pattern_literal(p) == program for p in literals)


def _add_exec_targets(profiles: Dict[str, Dict[str, Any]], answers: List[Answer]) -> None:
    """Mark the profiles the written exec rules transition to, so that the update role creates them.

    For every allowed exec rule with a literal path and a ``p`` mode, the parent entry lists the target in
    ``exec_targets`` and the target gets an entry (empty when its program logged nothing yet) with
    ``exec_target: {path, parents}``; a ``c`` mode gives the parent's child entry ``add_child: {attachment}``
    (the rules module creates ``profile NAME PATH { }``). Only for answers that name the program
    (:func:`names_program`): glob paths name no single program, nothing is created for them.
    """
    for name in list(profiles):
        entry = profiles[name]
        for rule in entry["rules"]:
            kind = transition_kind(rule.get("exec_mode"))
            path = rule.get("path")
            if kind is None or not isinstance(path, str):
                continue
            program = pattern_literal(path)
            if program is None or file_path_problem(program) or not any(
                    isinstance(i, int) and names_program(answers[i], program) for i in rule.get("answers") or ()):
                continue
            target = rule.get("target") or program
            if kind == "profile":
                if target == name:
                    continue
                entry.setdefault("exec_targets", [])
                if target not in entry["exec_targets"]:
                    entry["exec_targets"].append(target)
                tentry = profiles.setdefault(target, _new_entry(False))
                info = tentry.setdefault("exec_target", {"path": program, "parents": []})
                if name not in info["parents"]:
                    info["parents"].append(name)
            else:
                child = entry["children"].setdefault(target, _new_entry(True))
                child.pop("hat", None)
                child["add_child"] = {"attachment": program}


# ---- an exec answer covers the executed binary's own read (docs/answers.md, "Pending answers") -------

# Permissions a program needs on its own binary to be executed: read and map it.
SELF_READ_PERMS = frozenset("rm")
SELF_READ_REASON = ("covered by the exec answer #%d for %s: ix writes mr with the exec, a transition runs the "
                    "program under its own profile")


def exec_self_read(event: Mapping) -> Optional[str]:
    """The program X when ``event`` is X reading/mapping its own binary right after an exec without a rule.

    In complain mode such a child runs as ``PARENT//null-X`` and its ``r``/``m`` of X is logged besides the
    exec of X (aa-logprof never asks about it: the exec answer covers it). Only that exact shape counts:
    a file event on path X, label ending in ``//null-X``, permissions within ``r m``.
    """
    path, label = event.get("path"), event.get("profile")
    if event.get("kind") != "file" or not isinstance(path, str) or not path.startswith("/"):
        return None
    if not isinstance(label, str) or not label.endswith("//null-" + path):
        return None
    mask = event.get("mask") or {}
    words = set(_mask_words("file", str(mask.get("requested") or mask.get("denied") or "")))
    return path if words and words <= SELF_READ_PERMS else None


def exec_answer_for_self_read(answers: List[Answer], event: Dict[str, Any], label: str,
                              variables: Optional[Dict[str, List[str]]] = None) -> Optional[Answer]:
    """The allow/deny/ignore answer of the exec of X that covers X's own read (see exec_self_read), or None.

    The exec is probed as the parent logged it (label without ``//null-X``), written to the same profile
    ``label``: what the reviewer answered for the exec question decides its read too.
    """
    program = exec_self_read(event)
    if program is None:
        return None
    probe = dict(event, kind="exec", mask={"requested": "x", "denied": "x"},
                 profile=event["profile"][:-len("//null-" + program)])
    probe.pop("child", None)
    found = decide(answers, probe, label, variables).answer
    return found if found is not None and found.answer in ("allow", "deny", "ignore") else None


# Record classes of an enforcing profile refusing an access (aa-logprof's REJECTING events).
REJECTING_MODES = ("DENIED", "KILLED")


def enforce_denial(event: Mapping) -> bool:
    """Was this access refused by an enforcing profile? aa-logprof proposes Deny for those, Allow for
    complain-mode (ALLOWED) ones; here such an event is never allowed by ``default: allow``."""
    modes = event.get("modes")
    return isinstance(modes, (list, tuple)) and any(m in REJECTING_MODES for m in modes)


def _annotate_pending(items: List[Dict[str, Any]], table: exec_qualifiers.Qualifiers) -> None:
    """What the pending file shows a reviewer: aa-logprof's default answer for the event's mode, the
    possible-intrusion flag, and for execs the modes the exec qualifiers allow for that program."""
    for item in items:
        rejected = enforce_denial(item)
        item["suggested_answer"] = "deny" if rejected else "allow"
        if rejected:
            item["possible_intrusion"] = True
        if item.get("kind") == "exec" and isinstance(item.get("path"), str):
            letters = table.letters(item["path"])
            item["exec_qualifiers"] = letters
            item["allowed_exec_modes"] = exec_qualifiers.modes_for(letters)
        if item.get("kind") == "change_hat":
            hat, _why = requested_hat(item, item.get("label") or item.get("parent") or "")
            if hat is not None:
                item["hat"] = hat


def requested_hat(event: Mapping, parent: str) -> Tuple[Optional[str], str]:
    """(hat name, "") a change_hat event asks for in profile ``parent``, or (None, why it cannot be added)."""
    from ansible_collections.armada.apparmor.plugins.module_utils.profile_model import ProfileError, check_hat_name
    target = event.get("target")
    if not isinstance(target, str) or not target:
        return None, "the change_hat record names no hat"
    head, sep, hat = target.rpartition("//")
    if sep and head != parent:
        return None, "change_hat target %r is not a hat of %s (hats do not nest)" % (target, parent)
    try:
        check_hat_name(hat)
    except ProfileError as exc:
        return None, str(exc)
    return hat, ""


def _add_hat(top: Dict[str, Any], event: Dict[str, Any], parent: str, hosts: Dict[str, int],
             answer: Optional[Answer], deny: bool) -> Any:
    """An allowed change_hat adds the hat ``^name {}`` to the profile (aa-logprof's "Add hat"): the child
    entry gets ``add_hat`` (events, hosts, answers), so the rules module creates it even without rules.
    Returns "allowed", or (list, reason) when nothing is added."""
    if deny:
        return ("ignored", "answer #%d denies the hat: none is added (a change_hat to a missing hat fails "
                "in enforce mode)" % answer.index if answer is not None else "hat denied")
    hat, why = requested_hat(event, parent)
    if hat is None:
        return ("pending", "answer error: %s" % why)
    child = top["children"].setdefault(hat, _new_entry(True))
    add = child.setdefault("add_hat", {"events": [], "hosts": [], "answers": []})
    if event.get("id") not in add["events"]:
        add["events"].append(event.get("id"))
    add["hosts"] = sorted(set(add["hosts"]) | set(hosts))
    ref = answer.index if answer is not None else "default"
    if ref not in add["answers"]:
        add["answers"].append(ref)
    return "allowed"


def _ignored(event: Dict[str, Any], reason: str, answer: Optional[Answer]) -> Dict[str, Any]:
    item = dict(event)
    item["reason"] = reason
    if answer is not None:
        item["answer"] = answer.index
    return item


def _check_abi(abi: Any) -> str:
    """Normalise the ABI option to "X.Y" and refuse ones the renderers do not know."""
    from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import KNOWN_ABIS, abi_tuple
    try:
        major, minor = abi_tuple(abi)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    text = "%d.%d" % (major, minor)
    if text not in KNOWN_ABIS:
        raise ValueError("abi %r is not one of %s" % (abi, ", ".join(KNOWN_ABIS)))
    return text


class _Builder:
    """Collects the rules of one profile (or child): merges permissions, drops covered rules, renders."""

    def __init__(self, entry: Dict[str, Any], abi: str) -> None:
        self.entry = entry
        self.abi = abi
        self.items: Dict[Any, Dict[str, Any]] = {}

    def add(self, rule: Any, event: Dict[str, Any], hosts: Dict[str, int],
            answer: Optional[Answer]) -> Optional[Tuple[str, str]]:
        """Add one decided rule; returns (list, reason) when it cannot be written: ``unsupported`` when the
        ABI cannot express it, ``pending`` when it contradicts a rule already written (exec transitions)."""
        key = _merge_key(rule)
        item = self.items.get(key)
        if item is not None and key[0] == "file":
            merged = _merge_file(item["rule"], rule)
            if merged is None:  # same path, another exec transition: apparmor_parser rejects both together
                return ("pending", "conflicting exec transitions for %s in one profile: %s already written, "
                        "answer wants %s" % (rule.path, item["rule"].render(self.abi), rule.render(self.abi)))
            else:
                rule = merged
        if item is None:
            try:
                rule.render(self.abi)
            except Exception as exc:  # the ABI cannot express it: keep the event, say why
                return ("unsupported", "ABI %s cannot express %s: %s" % (self.abi, event.get("kind"), exc))
            item = {"rule": rule, "events": {}, "hosts": set(), "answers": []}  # events: ordered set
            self.items[key] = item
        else:
            item["rule"] = rule if key[0] == "file" else item["rule"]
        item["events"][event.get("id")] = None
        item["hosts"].update(hosts)
        ref = answer.index if answer is not None else "default"
        if ref not in item["answers"]:
            item["answers"].append(ref)
        return None

    def finish(self) -> None:
        """Drop rules another rule of the same side covers, then render into the entry's lists."""
        allow = [i for i in self.items.values() if not i["rule"].deny]
        deny = [i for i in self.items.values() if i["rule"].deny]
        for items, target in ((allow, "rules"), (deny, "deny")):
            kept = _fold_same_text(_drop_covered(items), self.abi)
            out = []
            for item in kept:
                data = item["rule"].to_dict(self.abi)
                if "text" not in data:  # add() checked it renders; if not, fail with the renderer's reason
                    data["text"] = item["rule"].render(self.abi)
                data["events"] = sorted(e for e in item["events"] if e is not None)
                data["hosts"] = sorted(item["hosts"])
                data["answers"] = item["answers"]
                out.append(data)
            out.sort(key=lambda d: (d.get("kind") != "include", d.get("kind"), d["text"]))
            self.entry[target].extend(out)


def _drop_covered(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Remove rules covered by another kept rule (events/hosts move to the covering rule).

    Pairwise only inside an index bucket (``Rule.index_key``), and for file rules only when the
    coverer is a glob whose literal prefix the other path starts with (a literal path covers only the
    identical path, already merged), so thousands of literal rules stay linear.
    """
    buckets: Dict[Any, List[Dict[str, Any]]] = {}
    for item in items:
        buckets.setdefault(item["rule"].index_key(), []).append(item)
    kept: List[Dict[str, Any]] = []
    for bucket in buckets.values():
        alive = list(bucket)
        globs = [o for o in bucket if not _literal_file_rule(o["rule"])]
        for item in bucket:
            if item not in alive:
                continue
            candidates = globs if isinstance(item["rule"], FileRule) else alive
            for other in candidates:
                if other is item or other not in alive or other["rule"] == item["rule"]:
                    continue
                if not _prefix_possible(other["rule"], item["rule"]):
                    continue
                if other["rule"].covers(item["rule"]):
                    other["events"].update(item["events"])
                    other["hosts"].update(item["hosts"])
                    alive.remove(item)
                    break
        kept.extend(alive)
    return kept


def _fold_same_text(items: List[Dict[str, Any]], abi: str) -> List[Dict[str, Any]]:
    """Fold items whose rule renders to the same text for ``abi`` into one (events, hosts, answers merged).

    Different rules can be written identically: at ABI 3.0 a network rule has no access list and no
    addresses, so ``network (send) inet stream`` and ``network (receive) inet stream`` both become
    ``network inet stream,``; writing one line per logged access would repeat it. When the folded rules
    differ, the kept structured rule is the rendered text read back (so its fields say what is written,
    not what one of the events needed), unless that text does not read back to itself.
    """
    groups: Dict[str, Dict[str, Any]] = {}
    order: List[Dict[str, Any]] = []
    for item in items:
        text = item["rule"].render(abi)
        first = groups.get(text)
        if first is None:
            groups[text] = item
            order.append(item)
            continue
        first["events"].update(item["events"])
        first["hosts"].update(item["hosts"])
        for ref in item["answers"]:
            if ref not in first["answers"]:
                first["answers"].append(ref)
        if item["rule"] != first["rule"]:
            first["rule"] = _rule_of_text(text, abi, first["rule"])
    return order


def _rule_of_text(text: str, abi: str, fallback: Any) -> Any:
    """The rule ``text`` reads back as, when it renders to ``text`` again for ``abi``; else ``fallback``."""
    try:
        rule = rules_registry.parse_rule(text)
        if rule.render(abi) == text:
            return rule
    except Exception:  # a kind that does not read back: keep the rule that produced the text
        pass
    return fallback


def _literal_file_rule(rule: Any) -> bool:
    return isinstance(rule, FileRule) and rule.path is not None and pattern_literal(rule.path) is not None


def _prefix_possible(general: Any, specific: Any) -> bool:
    """Cheap necessary condition for a file glob to cover a file rule: literal prefixes agree."""
    if not isinstance(general, FileRule) or not isinstance(specific, FileRule):
        return True
    if general.path is None:
        return True
    if specific.path is None:
        return False
    prefix = _glob_prefix(general.path)
    return specific.path.startswith(prefix) or _glob_prefix(specific.path).startswith(prefix) \
        or prefix.startswith(_glob_prefix(specific.path))


def _glob_prefix(pattern: str) -> str:
    """Pattern text before the first unescaped glob character or variable."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[{" or pattern.startswith("@{", i):
            return pattern[:i]
        i += 1
    return pattern
