"""Registry of rule kinds: parse any rule line, build the rule an event needs, and the event kinds.

Kinds live one per module (``rules/<kind>.py``); each class declares the event kinds it handles
(``events``: identity, match and event fields, see base.EventKind). Every table about kinds elsewhere
(events, answers, suggest) is derived from :data:`EVENT_KINDS` here. Adding a kind: its module, one
line in RULE_CLASSES, its docs (docs/rule-kinds.md, "Adding a rule kind").

The kinds are imported statically, by full collection path: Ansible's module packer (Ansiballz)
finds the module_utils a module needs by reading import statements, so a kind loaded through
importlib would silently be missing on a managed host.
"""
import re
from typing import Any, Dict, List, Optional, Type

from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import EventKind, Rule, RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.capability import CapabilityRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.change_profile import ChangeProfileRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.dbus import DbusRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule, LinkRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.include import IncludeRule, VariableRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.io_uring import IoUringRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.mount import MountRule, RemountRule, UmountRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.mqueue import MqueueRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.network import NetworkRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.pivot_root import PivotRootRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.ptrace import PtraceRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.signal import SignalRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.unix import UnixRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.userns import UsernsRule

# The order kinds are tried in. Include lines come first (``include <x>`` must not be read as a file
# rule), file rules last because their can_parse is the most permissive.
RULE_CLASSES: List[Type[Rule]] = [
    IncludeRule,
    VariableRule,
    CapabilityRule,
    NetworkRule,
    UnixRule,
    SignalRule,
    PtraceRule,
    DbusRule,
    MountRule,
    UmountRule,
    RemountRule,
    PivotRootRule,
    ChangeProfileRule,
    UsernsRule,
    IoUringRule,
    MqueueRule,
    LinkRule,
    FileRule,
]

# Records no rule expresses (docs/events.md): kept as events so they can be reported and answered.
RECORD_ONLY_KINDS = (
    # ``path`` is in their identity and match although the reader never sets it: removing it would change
    # the id of every such event (ids are written into answers)
    EventKind("status", identity=("operations", "name", "info", "error", "path", "target"), match=(),
              fields=("name", "target")),
    EventKind("other", identity=("operations", "name", "info", "error", "path", "target"),
              match=("operations", "name", "path", "target"), fields=("name", "target")),
)

#: every event kind, by name, in registry order (``other`` last: the reader's fallback)
EVENT_KINDS: Dict[str, EventKind] = dict((ek.name, ek) for cls in RULE_CLASSES for ek in cls.events)
EVENT_KINDS.update((ek.name, ek) for ek in RECORD_ONLY_KINDS)
#: kinds written as file rules: letter masks (``rw``), and an answer's glob is the path to write
FILE_RULE_KINDS = tuple(name for name, ek in EVENT_KINDS.items() if ek.file_rule)


# Leading keyword (after qualifiers) -> kinds that declare it, for a fast dispatch: profiles hold
# thousands of rules, and asking every kind's can_parse in turn would dominate parse time.
_HEAD_RE = re.compile(r"^\s*(?:(?:audit|deny|allow|owner|priority=\S+)\s+)*([^\s,(=]+)")
_BY_KEYWORD: Dict[str, List[Type[Rule]]] = {}
for _cls in RULE_CLASSES:
    for _kw in getattr(_cls, "keywords", ()):
        _BY_KEYWORD.setdefault(_kw, []).append(_cls)


def _candidates(text: str) -> List[Type[Rule]]:
    m = _HEAD_RE.match(text)
    if m:
        head = m.group(1)
        if head in _BY_KEYWORD:
            return _BY_KEYWORD[head]
        if head[0] in "/\"{" or head.startswith("@{") or _PERMS_HEAD.match(head):
            return [c for c in RULE_CLASSES if c.kind in ("variable", "file")]
    return RULE_CLASSES


_PERMS_HEAD = re.compile(r"^[mrwalkxpPcCuUi]+\Z")


def parse_rule(text: str) -> Rule:
    """Parse one rule line with the first kind whose can_parse accepts it; RuleParseError otherwise."""
    if not isinstance(text, str):
        raise RuleParseError("rule text must be a string, got %r" % (type(text).__name__,))
    candidates = _candidates(text)
    for group in (candidates, RULE_CLASSES):
        for cls in group:
            if cls.can_parse(text):
                return cls.parse(text)
        if group is RULE_CLASSES or candidates is RULE_CLASSES:
            break
    raise RuleParseError("not a rule this engine knows: %r" % (text,))


def rule_from_event(event: Dict[str, Any]) -> Optional[Rule]:
    """The rule an event needs (first kind that claims it), or None for events no rule expresses."""
    for cls in RULE_CLASSES:
        rule = cls.from_event(event)
        if rule is not None:
            return rule
    return None


__all__ = ["EVENT_KINDS", "FILE_RULE_KINDS", "RULE_CLASSES", "EventKind", "Rule", "RuleParseError", "parse_rule",
           "rule_from_event"]
