"""Review rounds: pending files that add up, and kept events that stop coming back once answered.

Why: the documented loop is run, review, paste, run. If every round's pending file defined the same
variable, pasting round 2 next to (or over) round 1 would replace round 1's answers, and the events round 1
settled would come back as pending. So each pass names its pending file and variable after a pass id
(``apparmor_answers_pending_<id>``, ids sort by time), the roles read every ``apparmor_answers*`` variable
in name order (:func:`combine`), a question decided differently in two rounds is an error naming both, and
the events an answer has settled are dropped from the host's kept events (:func:`unsettled`).

Standard library only, Python 3.8+ (docs/architecture.md).
"""
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils import answers as answers_engine
from ansible_collections.armada.apparmor.plugins.module_utils import events as events_model
from ansible_collections.armada.apparmor.plugins.module_utils.fleet import fleet_key

# Every variable whose name starts with this is read as answers (docs/answers.md).
ANSWERS_PREFIX = "apparmor_answers"
# Pending files define PREFIX_<pass id>; PREFIX alone is a round too (files written before pass ids).
ROUND_PREFIX = "apparmor_answers_pending"
# A pass id: the controller's UTC time of the pass, to the second; sorts like the passes ran.
PASS_ID_FORMAT = "%Y%m%dT%H%M%SZ"
_PASS_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z\Z")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Keys that say what a round decided about a question (the rest is informational or identifies it).
_DECIDING = tuple(k for k in answers_engine.DECISION_KEYS if k not in ("profile", "match", "comment"))
# Lists of a to_rules entry whose events are settled: a rule, a deny rule or an ignore was decided for them.
_SETTLED_LISTS = ("rules", "deny", "ignored")


class RoundsError(ValueError):
    """Answer variables that cannot be combined; the message names the variables and what to do."""


def pass_id(when: Optional[datetime.datetime] = None) -> str:
    """The id of a pass run at ``when`` (default now), e.g. ``20261206T140512Z``."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime(PASS_ID_FORMAT)


def _check_id(pid: str) -> str:
    if not isinstance(pid, str) or not _PASS_ID.match(pid):
        raise RoundsError("pass id %r is not of the form YYYYMMDDTHHMMSSZ" % (pid,))
    return pid


def round_var(prefix: str, pid: str) -> str:
    """The variable a pass's pending file defines: ``PREFIX_<id>``."""
    if not isinstance(prefix, str) or not _VAR_NAME.match(prefix) or not prefix.startswith(ANSWERS_PREFIX):
        raise RoundsError("the pending variable prefix %r must be a variable name starting with %s, so that the "
                          "roles read the pasted file" % (prefix, ANSWERS_PREFIX))
    return "%s_%s" % (prefix, _check_id(pid))


def round_file(path: str, pid: str) -> str:
    """The pending file of a pass: the configured path with ``-<id>`` before its ``.yml``/``.yaml``."""
    pid = _check_id(pid)
    match = re.match(r"^(.*?)(\.ya?ml)?\Z", path, re.S)
    base, ext = match.group(1), match.group(2) or ""
    return "%s-%s%s" % (base, pid, ext)


def is_round(name: str, prefix: str = ROUND_PREFIX) -> bool:
    """Is ``name`` a review round's variable (``PREFIX`` or ``PREFIX_<anything>``)?"""
    return name == prefix or name.startswith(prefix + "_")


def _question(answer: Mapping) -> Tuple[str, str]:
    """What an answer is about: its profile and match, compared as data (key order does not matter)."""
    return (json.dumps(answer.get("profile"), sort_keys=True, default=str),
            json.dumps(answer.get("match"), sort_keys=True, default=str))


def _decision(answer: Mapping) -> Dict[str, Any]:
    return dict((k, answer[k]) for k in _DECIDING if k in answer)


def _describe(answer: Mapping) -> str:
    match = answer.get("match") if isinstance(answer.get("match"), Mapping) else {}
    what = ", ".join("%s=%s" % (k, match[k]) for k in sorted(match))
    return "profile %s, match {%s}" % (answer.get("profile"), what)


def combine(variables: Mapping, prefix: str = ROUND_PREFIX) -> List[Any]:
    """The answers of ``{variable name: value}`` in name order (pass ids sort by time), as one list.

    Each value must be a list (or empty). A question (same profile and match) decided - answer other than
    ``pending`` - in two review rounds (variables ``prefix``/``prefix_*``) with different decisions is an
    error naming both rounds: which one holds is a person's choice, not precedence's. The same decision in
    two rounds is kept once. Answers are validated afterwards by to_rules, like every answer.
    """
    if not isinstance(variables, Mapping):
        raise RoundsError("the answers variables must be a mapping of variable name to list")
    out = []  # type: List[Any]
    decided = {}  # type: Dict[Tuple[str, str], Tuple[str, Dict[str, Any]]]
    for name in sorted(str(n) for n in variables):
        value = variables[name]
        if value is None:
            continue
        if not isinstance(value, (list, tuple)):
            raise RoundsError("%s must be a list of answers (docs/answers.md), got %s; fix or remove it"
                              % (name, type(value).__name__))
        for answer in value:
            if is_round(name, prefix) and isinstance(answer, Mapping) and answer.get("answer") not in (None, "pending"):
                key = _question(answer)
                seen = decided.get(key)
                if seen is not None and seen[1] != _decision(answer):
                    raise RoundsError(
                        "the review rounds %s and %s answer the same question (%s) differently: %s vs %s; keep the "
                        "answer you mean in one round and set the other back to `answer: pending` (or delete it)"
                        % (seen[0], name, _describe(answer), json.dumps(seen[1], sort_keys=True, default=str),
                           json.dumps(_decision(answer), sort_keys=True, default=str)))
                if seen is not None:
                    continue  # the same decision pasted twice: once is enough
                decided[key] = (name, _decision(answer))
            out.append(answer)
    return out


def _settled_ids(entry: Mapping) -> Tuple[set, set]:
    """(fleet ids settled, fleet ids still open) in one to_rules entry and its children."""
    done, open_ = set(), set()
    for child in [entry] + list((entry.get("children") or {}).values()):
        for key in _SETTLED_LISTS:
            for item in child.get(key) or ():
                ids = item.get("events") if key != "ignored" else [item.get("id")]
                done.update(i for i in ids or () if isinstance(i, str))
        for key in ("pending", "unsupported"):
            open_.update(i.get("id") for i in child.get(key) or () if isinstance(i.get("id"), str))
    return done, open_


def unsettled(kept: Iterable[Any], result: Mapping, written: Iterable[str]) -> List[Any]:
    """The kept events of a host minus those this pass's answers settled in a profile written on the host.

    ``result`` is the fleet's to_rules result (its ids are fleet ids, so each host event is matched by its
    identity without the host); ``written`` the profiles whose rules this host just wrote. An event still
    pending anywhere, or of a profile not written here, is kept: it must come back until it is answered.
    """
    written = set(written)
    done, open_ = set(), set()
    for name, entry in (result.get("profiles") or {}).items():
        if name in written and isinstance(entry, Mapping):
            d, o = _settled_ids(entry)
            done |= d
            open_ |= o
        elif isinstance(entry, Mapping):
            open_ |= _settled_ids(entry)[0] | _settled_ids(entry)[1]
    settled = done - open_
    out = []
    for ev in kept:
        if isinstance(ev, Mapping) and "kind" in ev \
                and events_model.event_id(fleet_key(dict(ev))) in settled:
            continue
        out.append(ev)
    return out
