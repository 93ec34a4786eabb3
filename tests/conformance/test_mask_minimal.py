"""No generated rule grants a permission its record did not need.

For every record of the visible corpus and of our own cases, each event is turned into rules alone
(answers: allow everything, exec ix) and every rule's permissions must lie inside the record's
DENIED mask - or, only for a record with no denied mask (allowed-but-audited), inside the requested
one. aa-logprof (apparmor.logparser.parse_event_for_tree) writes the denied mask for file, ptrace,
signal and dbus records; an old-format record requests ``mrwIxl`` while only ``l`` was denied.
"""
import glob
import os

from armada_corpus import corpus_dir
from test_profile_conformance import ALLOW_ALL_IX

from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
#: log letters and the profile permission they need (c/d are writes, I/x are exec: exec events)
FILE_LETTERS = {"c": "w", "d": "w", "o": "r"}


def _events(path):
    reader = LogReader(host="mask")
    with open(path, "rb") as fh:
        reader.feed(fh.read() + b"\n", source=os.path.basename(path))
    return reader.result()["events"]


def _allowed_words(event):
    mask = event.get("mask") or {}
    text = mask.get("denied") or mask.get("requested") or ""
    if event["kind"] in ("file", "exec"):
        letters = text.replace(":", "")
        return set(FILE_LETTERS.get(c, c) for c in letters) | ({"w"} if "a" in letters else set())
    words = text.replace(",", " ").split()
    return set(w[len("userns_"):] if w.startswith("userns_") else w for w in words)


def excess(event):
    """Permissions a rule of ``event`` grants beyond what the record needed ([] when none)."""
    if not isinstance(event.get("mask"), dict) or event["kind"] in ("exec", "dbus"):
        return []  # exec rules follow the exec answer; dbus has one word, the access itself
    out = []
    need = _allowed_words(event)
    result = to_rules([event], ALLOW_ALL_IX, abi="5.0", fold_children=False)
    for entry in result["profiles"].values():
        entries = [entry] + list(entry["children"].values())
        for ent in entries:
            for rule in ent["rules"]:
                granted = set(rule.get("perms") or "") if rule["kind"] == "file" else set(rule.get("access") or [])
                extra = granted - need - ({"a"} if "w" in need else set())
                if extra:
                    out.append("%s grants %s" % (rule["text"], sorted(extra)))
    return out


def all_record_files():
    return sorted(glob.glob(os.path.join(corpus_dir(), "*.in")) + glob.glob(os.path.join(CASES, "*.in")))


def test_no_rule_grants_more_than_the_record_needed():
    checked, problems = 0, []
    for path in all_record_files():
        for ev in _events(path):
            if isinstance(ev.get("mask"), dict) and ev["kind"] not in ("exec", "dbus"):
                checked += 1
            problems += ["%s: %s" % (os.path.basename(path), p) for p in excess(ev)]
    assert checked >= 60, checked
    assert not problems, problems


def test_old_format_link_record_grants_only_link():
    """The shape named in issue 15: requested mrwIxl, denied l -> a rule with l only."""
    (ev,) = _events(os.path.join(CASES, "own_file_oldformat_link.in"))
    assert ev["mask"] == {"requested": "mrwIxl::", "denied": "l::"}
    result = to_rules([ev], ALLOW_ALL_IX, abi="3.0", fold_children=False)
    assert [r["text"] for r in result["profiles"]["/usr/bin/own-b"]["rules"]] == ["owner /tmp/own/link l,"]
    assert excess(ev) == []
